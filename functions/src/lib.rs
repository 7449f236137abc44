//! The HTTP surface of AI Team (API.md) as one axum `Router`, built by
//! [`startup::app`] from the adapters in an [`state::AppState`], and the
//! pieces every host of it shares: the settings (read once, in
//! [`settings`]), telemetry, errors.
//! The same router serves `ai-team serve`, tests, the Azure Functions
//! host, and, one endpoint group per function, the Lambda functions.

#[cfg(feature = "azure")]
pub mod azure;
pub mod cloud;
pub mod configuration;
pub mod engine_wiring;
pub mod error;
pub mod event_hub;
pub mod extract;
pub mod groups;
pub mod hosting;
pub mod integrations;
pub mod llm_config;
pub mod log_stream;
pub mod middleware;
pub mod openapi;
pub mod refresh_worker;
pub mod routes;
pub mod run_cmd;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod worker;

pub use groups::RouteGroup;
pub use startup::{app, app_for, app_with};
pub use state::AppState;

#[cfg(feature = "lambda")]
pub mod lambda;
