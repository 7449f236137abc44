//! `BlobStore` adapters. Local: files under a data directory.

mod local;

pub use local::LocalBlobStore;
