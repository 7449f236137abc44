//! The AWS Lambda side (feature `lambda`): the handlers the Lambda
//! binaries run, exposed here so that tests invoke them in-process with
//! recorded event payloads. Every client and pool is built once, in
//! `hosting::wire`, before the runtime loop; the handlers only borrow them.

pub mod http;
pub mod steps;

pub use crate::hosting::{Wired, wire};
pub use http::api_handler;
pub use steps::steps_handler;
