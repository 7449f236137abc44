//! The `BlobStore` port on Amazon S3: one bucket, keys as given (checked
//! by the port's rules), URIs `s3://bucket/key`. A `get` of a URI naming
//! another bucket is refused: this store reads only what it wrote.
//! Against an emulator (an endpoint override) addressing is path-style,
//! since `bucket.127.0.0.1` does not resolve.

use ai_team_core::blob::{BlobError, BlobStore, check_key};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;

#[derive(Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// Over the shared AWS configuration (`aws::load_config`).
    pub fn from_config(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Self::new(Client::from_conf(s3), bucket)
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The key of a URI of this bucket.
    fn key_of<'a>(&self, uri: &'a str) -> Result<&'a str, BlobError> {
        let key = uri
            .strip_prefix("s3://")
            .and_then(|rest| rest.strip_prefix(self.bucket.as_str()))
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| BlobError::InvalidKey(uri.to_owned()))?;
        check_key(key)?;
        Ok(key)
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    #[tracing::instrument(skip(self, bytes), fields(bucket = %self.bucket, size = bytes.len()))]
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<String, BlobError> {
        check_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(bytes.to_vec().into())
            .send()
            .await
            .map_err(|e| BlobError::Unavailable(DisplayErrorContext(e).to_string()))?;
        Ok(self.uri(key))
    }

    #[tracing::instrument(skip(self), fields(bucket = %self.bucket))]
    async fn get(&self, uri: &str) -> Result<Vec<u8>, BlobError> {
        let key = self.key_of(uri)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                if e.as_service_error()
                    .is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key)
                {
                    return Err(BlobError::NotFound(uri.to_owned()));
                }
                return Err(BlobError::Unavailable(DisplayErrorContext(e).to_string()));
            }
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| BlobError::Unavailable(e.to_string()))?;
        Ok(bytes.into_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> S3BlobStore {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        S3BlobStore::new(Client::from_conf(conf), "artifacts")
    }

    #[test]
    fn uris_name_the_bucket_and_other_buckets_are_refused() {
        let s = store();
        assert_eq!(s.uri("calls/1.json"), "s3://artifacts/calls/1.json");
        assert_eq!(
            s.key_of("s3://artifacts/calls/1.json").unwrap(),
            "calls/1.json"
        );
        for bad in [
            "s3://other/calls/1.json",
            "s3://artifactsx/a",
            "local://calls/1.json",
            "s3://artifacts/../x",
            "s3://artifacts/",
        ] {
            assert!(s.key_of(bad).is_err(), "{bad}");
        }
    }
}
