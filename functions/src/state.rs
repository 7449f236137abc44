//! What every handler borrows: the adapters, built once at start-up.

use std::sync::Arc;

use ai_team_core::Store;
use ai_team_core::agents::Team;
use ai_team_core::engine::Engine;
use ai_team_core::queue::StepQueue;
use ai_team_core::ticket::TicketSource;

use crate::configuration::Config;

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
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        let tickets = crate::integrations::ticket_source(&config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "no ticket source");
            None
        });
        let team = crate::engine::team(&config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the team file cannot be read; the built-in team is shown");
            Team::builtin()
        });
        Self {
            store,
            team: Arc::new(team),
            config: Arc::new(config),
            engine: None,
            queue: None,
            tickets,
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
