//! What every handler borrows: the adapters, built once at start-up.

use std::sync::Arc;

use ai_team_core::Store;
use ai_team_core::agents::Team;
use ai_team_core::engine::Engine;
use ai_team_core::queue::StepQueue;
use ai_team_core::ticket::TicketSource;

use crate::configuration::{Config, ConfigError};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// The workflow engine; `None` where this host only reads (the
    /// execution triggers then answer 503).
    pub engine: Option<Engine>,
    /// Where refresh jobs are sent; the engine's queue by default.
    pub queue: Option<Arc<dyn StepQueue>>,
    /// Where `from-jira` reads stories: Jira, else the story folder.
    pub tickets: Option<Arc<dyn TicketSource>>,
    /// The live fan-out of event logs; `None` where this host does not stream.
    pub events: Option<Arc<crate::event_hub::EventHub>>,
    /// The agent team (`/agents`, the agents' names in workflow details).
    pub team: Arc<Team>,
}

impl AppState {
    /// The state over `store` and `config` with its ticket source (Jira,
    /// else the story folder) built from the integrations section: what a
    /// host serving `from-jira` uses at start-up, the error naming the
    /// variable.
    pub fn try_new(store: Arc<dyn Store>, config: Config) -> Result<Self, ConfigError> {
        let tickets = crate::integrations::ticket_source(&config)?;
        Ok(Self {
            tickets,
            ..Self::without_tickets(store, config)
        })
    }

    /// `try_new` for tests and benches, whose settings are their own: a
    /// ticket source that cannot be built is logged and left out (hosts
    /// use `try_new`, which stops start-up instead).
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        let tickets = crate::integrations::ticket_source(&config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "no ticket source");
            None
        });
        Self {
            tickets,
            ..Self::without_tickets(store, config)
        }
    }

    /// The state of a host whose routes read no tickets (every endpoint
    /// group but workflows): no Jira client is built.
    pub fn without_tickets(store: Arc<dyn Store>, config: Config) -> Self {
        Self {
            store,
            team: config.team.team.clone(),
            config: Arc::new(config),
            engine: None,
            queue: None,
            tickets: None,
            events: None,
        }
    }

    /// Streams events, polling for other processes' events every `poll`.
    pub fn with_events(mut self, poll: std::time::Duration) -> Self {
        self.events = Some(crate::event_hub::EventHub::with_limits(
            self.store.clone(),
            poll,
            self.config.heartbeat_interval,
            self.config.heartbeat_timeout,
            crate::event_hub::StreamLimits {
                per_workflow: self.config.max_streams_per_workflow,
                total: self.config.max_streams,
            },
        ));
        self
    }

    pub fn with_engine(mut self, engine: Engine) -> Self {
        if self.queue.is_none() {
            self.queue = Some(engine.queue.clone());
        }
        self.team = engine.team.clone();
        self.engine = Some(engine);
        self
    }

    pub fn with_queue(mut self, queue: Arc<dyn StepQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    pub fn with_tickets(mut self, tickets: Arc<dyn TicketSource>) -> Self {
        self.tickets = Some(tickets);
        self
    }
}
