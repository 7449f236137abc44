//! Blobs as files under a data directory, written to a temporary name and
//! renamed so that a reader never sees half a file.

use std::path::PathBuf;

use ai_team_core::blob::{BlobError, BlobStore, check_key};
use async_trait::async_trait;

const SCHEME: &str = "local://";

pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

fn io(e: std::io::Error) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<String, BlobError> {
        check_key(key)?;
        let path = self.root.join(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(format!("{SCHEME}{key}"))
    }

    async fn get(&self, uri: &str) -> Result<Vec<u8>, BlobError> {
        let key = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| BlobError::InvalidKey(uri.to_owned()))?;
        check_key(key)?;
        match tokio::fs::read(self.root.join(key)).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(uri.to_owned()))
            }
            Err(e) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_and_refuses_escapes() {
        let dir = std::env::temp_dir().join(format!("ai_team_blob_{}", std::process::id()));
        let store = LocalBlobStore::new(&dir);
        let uri = store
            .put("calls/abc/request.json", b"{\"a\":1}")
            .await
            .unwrap();
        assert_eq!(uri, "local://calls/abc/request.json");
        assert_eq!(store.get(&uri).await.unwrap(), b"{\"a\":1}");
        store.put("calls/abc/request.json", b"2").await.unwrap();
        assert_eq!(store.get(&uri).await.unwrap(), b"2");
        assert!(matches!(
            store.put("../escape", b"x").await,
            Err(BlobError::InvalidKey(_))
        ));
        assert!(matches!(
            store.get("local://../etc/passwd").await,
            Err(BlobError::InvalidKey(_))
        ));
        assert!(matches!(
            store.get("local://calls/none").await,
            Err(BlobError::NotFound(_))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
