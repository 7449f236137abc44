//! The domain of AI Team: the records of API.md as types, the validated
//! inputs that reach the store, and the ports (traits) that adapters in
//! `ai-team-providers` implement. Nothing here knows about HTTP, SQL or a
//! cloud: the dependency arrows point inwards.

#![warn(missing_docs)]

pub mod agents;
pub mod answers;
pub mod blob;
pub mod budgets;
pub mod catalog;
pub mod codehost;
pub mod compare;
pub mod conversation_review;
pub mod delivery;
pub mod engine;
pub mod error;
pub mod execution_meta;
pub mod fanout;
pub mod frames;
pub mod governance;
pub mod ledger;
pub mod llm;
pub mod models;
pub mod money;
pub mod push;
pub mod query;
pub mod queue;
pub mod redact;
pub mod refresh;
pub mod repository;
pub mod run_state;
pub mod steps;
pub mod store;
pub mod story;
pub mod ticket;
pub mod tracking;
pub mod verification;
pub mod views;
pub mod workflow_event;

pub use error::StoreError;
pub use store::Store;
pub use workflow_event::WorkflowEvent;
