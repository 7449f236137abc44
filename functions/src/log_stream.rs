//! Every log line at info or above about a workflow is also a `log` event
//! on its stream (API.md "Real-time streaming"): a tracing layer picks the
//! lines that carry a `workflow_id` field and hands them to a task that
//! appends them to the workflow's event log. Request lines
//! (`ai_team::http`) and the event log's own lines (`ai_team::events`) are
//! left out: the first are about requests, the second already are events.

use std::sync::{Arc, OnceLock};

use ai_team_core::Store;
use ai_team_core::WorkflowEvent;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines waiting to be written; past this, lines are dropped (and counted
/// in the next one) rather than holding the logging thread.
const QUEUE: usize = 1024;

/// One log line about a workflow.
#[derive(Debug)]
struct Line {
    workflow_id: i64,
    execution_id: Option<i64>,
    level: &'static str,
    message: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

static SINK: OnceLock<mpsc::Sender<Line>> = OnceLock::new();

/// The layer `telemetry::init` installs; inert until `start`.
pub struct LogStreamLayer;

#[derive(Default)]
struct Fields {
    workflow_id: Option<i64>,
    execution_id: Option<i64>,
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "workflow_id" => self.workflow_id = Some(value),
            "execution_id" => self.execution_id = Some(value),
            name => {
                self.rest.insert(name.into(), json!(value));
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_i64(field, i64::try_from(value).unwrap_or(i64::MAX));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest.insert(field.name().into(), json!(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest
                .insert(field.name().into(), json!(format!("{value:?}")));
        }
    }
}

impl<S: Subscriber> Layer<S> for LogStreamLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(sink) = SINK.get() else { return };
        let meta = event.metadata();
        if *meta.level() > Level::INFO
            || matches!(meta.target(), "ai_team::http" | "ai_team::events")
        {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(workflow_id) = fields.workflow_id else {
            return;
        };
        let _ = sink.try_send(Line {
            workflow_id,
            execution_id: fields.execution_id,
            level: match *meta.level() {
                Level::ERROR => "error",
                Level::WARN => "warning",
                _ => "info",
            },
            message: fields.message,
            fields: fields.rest,
        });
    }
}

/// Starts writing the lines into `store` (once per process).
pub fn start(store: Arc<dyn Store>) {
    let (tx, mut rx) = mpsc::channel::<Line>(QUEUE);
    if SINK.set(tx).is_err() {
        return;
    }
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let fields = (!line.fields.is_empty()).then(|| {
                let mut fields = serde_json::Value::Object(line.fields);
                ai_team_core::redact::redact_value(&mut fields);
                fields
            });
            let event = WorkflowEvent::Log {
                level: line.level.to_string(),
                message: ai_team_core::redact::redact_text(&line.message),
                timestamp: chrono::Utc::now(),
                fields,
            };
            // A line about a workflow that is gone (or a store that is
            // down) is only a log line.
            let _ = store
                .append_events(line.workflow_id, line.execution_id, &[event.into()])
                .await;
        }
    });
}
