//! The `BlobStore` port: large payloads (full request and response bodies,
//! artifacts) live outside the rows, which keep a reference with its
//! checksum and size.

use async_trait::async_trait;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The key could escape the store (absolute, `..`, empty parts).
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    /// No blob at this URI.
    #[error("blob {0} not found")]
    NotFound(String),
    /// The storage failed or cannot be reached.
    #[error("blob storage unavailable: {0}")]
    Unavailable(String),
}

/// Where large payloads live: request and response bodies, artifacts (adapters: a local directory, S3, Azure Blob).
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `key` (relative, `/`-separated) and returns
    /// its URI; writing the same key again replaces it whole.
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<String, BlobError>;
    /// The bytes stored at `uri` (as `put` returned it).
    async fn get(&self, uri: &str) -> Result<Vec<u8>, BlobError>;
}

/// A key that cannot escape the store: relative, no `..`, no empty parts.
pub fn check_key(key: &str) -> Result<(), BlobError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && !key.contains('\\')
        && key
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidKey(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_cannot_escape() {
        assert!(check_key("calls/ab/request.json").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a//b",
            "a\\b",
            "./a",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
