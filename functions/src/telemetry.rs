//! Structured logs through tracing: JSON lines by default (one per
//! request, see `middleware::request_log`), human-readable on request.

use tracing_subscriber::EnvFilter;

use crate::configuration::LogFormat;

/// Installs the global subscriber once; `AI_TEAM_LOG` (or `RUST_LOG`)
/// sets the filter, default `info` (llama.cpp's own messages, target
/// `llama-cpp-2`, from `warn`: it logs ~140 lines at `info` while loading
/// the embedded model). Logs go to stderr so that commands' own output
/// stays clean.
pub fn init(format: LogFormat) {
    init_with(format, "info,sqlx=warn,llama-cpp-2=warn");
}

/// `init` with another default filter (the CLI's `run` keeps stderr quiet).
pub fn init_with(format: LogFormat, default_filter: &str) {
    // The one variable read outside `settings`: the filter is the tracing
    // subscriber's own convention (`EnvFilter`'s `RUST_LOG`), installed
    // before anything logs and never part of the service's settings.
    let filter = std::env::var("AI_TEAM_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(crate::log_stream::LogStreamLayer);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(|| RedactingStderr)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(|| RedactingStderr)
                    .compact(),
            )
            .try_init(),
    };
}

/// Stderr through the redaction pass: the formatter writes each log line
/// in one `write`, so a secret in any field (an error a provider echoed,
/// a URL with a password) is replaced before it leaves the process.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Redacting(std::io::stderr()).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A writer whose every write goes through `ai_team_core::redact`.
struct Redacting<W>(W);

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let redacted = ai_team_core::redact::redact(&text);
        self.0.write_all(redacted.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::Redacting;

    #[test]
    fn log_lines_are_redacted_on_their_way_out() {
        let mut out = Redacting(Vec::new());
        let line = r#"{"level":"WARN","message":"provider said: Incorrect API key provided: sk-proj-Ab12Cd34Ef56Gh78Ij90KlMn","url":"postgres://app:s3cret@db/x"}"#;
        out.write_all(format!("{line}\n").as_bytes()).unwrap();
        let written = String::from_utf8(out.0).unwrap();
        assert!(!written.contains("sk-proj-Ab12"), "{written}");
        assert!(!written.contains("s3cret"), "{written}");
        let v: serde_json::Value =
            serde_json::from_str(written.trim()).expect("still one JSON line");
        assert_eq!(v["level"], "WARN");
    }
}
