//! The AWS Lambda side (feature `lambda`): one HTTP function per endpoint
//! group, the SQS-triggered step and refresh executors, the WebSocket API's
//! function, and the `main` of each binary. The handlers are exposed so that tests invoke them
//! in-process with recorded event payloads. Every client and pool a
//! function uses is built once, in `hosting`, before the runtime loop; the
//! handlers only borrow them.

pub mod batch;
pub mod http;
pub mod refresh;
pub mod serve;
pub mod steps;
pub mod ws;

pub use crate::hosting::{Wired, wire};
pub use http::{api_handler, stream_handler};
pub use refresh::refresh_handler;
pub use serve::{serve_group, serve_refresh, serve_steps, serve_ws};
pub use steps::steps_handler;
pub use ws::ws_handler;
