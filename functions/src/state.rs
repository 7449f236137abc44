//! What every handler borrows: the adapters, built once at start-up.

use std::sync::Arc;

use ai_team_core::Store;

use crate::configuration::Config;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        Self {
            store,
            config: Arc::new(config),
        }
    }
}
