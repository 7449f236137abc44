//! What every handler borrows: the adapters, built once at start-up.

use std::sync::Arc;

use ai_team_core::Store;
use ai_team_core::engine::Engine;

use crate::configuration::Config;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// The workflow engine; `None` where this host only reads (the
    /// execution triggers then answer 503).
    pub engine: Option<Engine>,
    /// The live fan-out of event logs; `None` where this host does not stream.
    pub events: Option<Arc<crate::events::EventHub>>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        Self {
            store,
            config: Arc::new(config),
            engine: None,
            events: None,
        }
    }

    /// Streams events, polling for other processes' events every `poll`.
    pub fn with_events(mut self, poll: std::time::Duration) -> Self {
        self.events = Some(crate::events::EventHub::new(
            self.store.clone(),
            poll,
            self.config.heartbeat_interval,
        ));
        self
    }

    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = Some(engine);
        self
    }
}
