//! `ai-team`: the whole service in one local process (`serve`), and the
//! schema on demand (`migrate`). `main` only wires things.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use ai_team_functions::configuration::Config;
use ai_team_functions::refresh_worker::RefreshWorker;
use ai_team_functions::settings::Settings;
use ai_team_functions::worker::Worker;
use ai_team_functions::{
    AppState, app, engine_wiring, hosting, integrations, llm_config, run_cmd, telemetry,
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ai-team",
    version,
    about = "AI Team: a team of AI agents that implements a user story"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (migrations are applied first).
    Serve {
        /// Address to bind (default: HOST, else 127.0.0.1).
        #[arg(long)]
        host: Option<String>,
        /// Port to bind (default: PORT, else 8000; 0 picks a free one).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Apply the migrations to DATABASE_URL and exit.
    Migrate,
    /// Show what the cloud and LLM settings resolve to: the provider, each
    /// service's endpoint and the kind of credential it uses (no secret).
    Cloud,
    /// Run the agent team on a story file, end to end, in this process.
    Run {
        /// The story: Markdown, `# KEY-1: Title` on the first line.
        #[arg(long)]
        story: PathBuf,
        /// The git repository to commit into (created if missing;
        /// default ./ai-team-output/<story key>).
        #[arg(long)]
        repo: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve { .. });
    let code: u8 = match run(cli).await {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("ai-team: {message}");
            2
        }
    };
    if serving {
        // Dropping the runtime would wait for blocking work still running
        // (an embedded model's generation, cut by the shutdown deadline):
        // leave now, as the deadline promised. Standard output is flushed.
        std::process::exit(i32::from(code));
    }
    ExitCode::from(code)
}

async fn run(cli: Cli) -> Result<(), String> {
    // Every section is read and checked here, whatever the command uses:
    // a bad setting stops any command with the variable's name.
    let settings = Settings::from_process_env().map_err(|e| e.to_string())?;
    if matches!(cli.command, Command::Cloud) {
        return show_cloud(&settings);
    }
    // This process is local whatever the cloud section says: the
    // database's queue, blobs on disk.
    let Settings {
        mut config, llm, ..
    } = settings;
    match cli.command {
        Command::Run { .. } => telemetry::init_with(config.log_format, "warn"),
        _ => telemetry::init(config.log_format),
    }
    let db = config.database_url.clone();
    let backend = hosting::connect(&config).await?;
    let store = backend.store.clone();
    let build_engine = async |config: &Config| {
        let llm = llm_config::build(&llm).await.map_err(|e| e.to_string())?;
        engine_wiring::build(config, store.clone(), backend.queue.clone(), llm)
            .map_err(|e| e.to_string())
    };
    match cli.command {
        Command::Run { story, repo } => {
            let repo = run_cmd::target_repository(&story, repo).map_err(|e| e.to_string())?;
            config.local_repositories.push(repo.clone());
            let engine = build_engine(&config).await?;
            let worker = Worker::new(engine.clone(), backend.jobs.clone());
            let summary = run_cmd::run(engine, worker, &story, repo)
                .await
                .map_err(|e| e.to_string())?;
            if summary.completed {
                Ok(())
            } else {
                Err("the execution did not complete (see above)".into())
            }
        }
        Command::Cloud => Ok(()),
        Command::Migrate => {
            tracing::info!(database = db.redacted(), "migrations applied");
            Ok(())
        }
        Command::Serve { host, port } => {
            if let Some(h) = host {
                config.host = h;
            }
            if let Some(p) = port {
                config.port = p;
            }
            // Everything that can still fail on a setting is built before
            // the listener: the engine (the LLM, the code host) and the
            // ticket source.
            let engine = build_engine(&config).await?;
            let review = integrations::review_source(&config).map_err(|e| e.to_string())?;
            let (concurrency, heartbeat_timeout) =
                (config.worker_concurrency, config.heartbeat_timeout);
            let worker_id = config.worker_id.clone();
            let state = AppState::try_new(store.clone(), config)
                .map_err(|e| e.to_string())?
                .with_engine(engine.clone())
                .with_events(std::time::Duration::from_millis(500));
            let addr = format!("{}:{}", state.config.host, state.config.port);
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let local = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(address = %local, database = db.redacted(), "listening");
            ai_team_functions::log_stream::start(store.clone());
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let worker = Worker::new(engine.clone(), backend.jobs.clone());
            let worker_task =
                tokio::spawn(worker.run(concurrency, heartbeat_timeout, stop_rx.clone()));
            let refresh =
                RefreshWorker::new(store.clone(), backend.jobs.clone(), review, &worker_id);
            let refresh_task = tokio::spawn(refresh.run(stop_rx));
            let releaser = Worker::new(engine.clone(), backend.jobs.clone());
            let hub = state.events.clone();
            let router = app(state);
            let (down_tx, mut down_rx) = tokio::sync::watch::channel(false);
            let mut server = tokio::spawn(async move {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = down_rx.wait_for(|down| *down).await;
                })
                .await
            });
            let served = tokio::select! {
                r = &mut server => r,
                () = shutdown() => {
                    // Stop taking steps first, then end the open streams
                    // (SSE and WebSocket clients would hold the graceful
                    // shutdown forever), then stop accepting requests.
                    let _ = stop_tx.send(true);
                    if let Some(hub) = &hub {
                        hub.close();
                    }
                    let _ = down_tx.send(true);
                    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
                    let served = match tokio::time::timeout_at(deadline, &mut server).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::warn!("connections still open at the deadline: closed");
                            server.abort();
                            Ok(Ok(()))
                        }
                    };
                    // A step still running at the deadline is cut like a
                    // crash: its lease is given back below.
                    if tokio::time::timeout_at(deadline, worker_task).await.is_err() {
                        tracing::warn!("a step was still running at the deadline; its lease is released");
                    }
                    let _ = tokio::time::timeout_at(deadline, refresh_task).await;
                    served
                }
            };
            // Another worker resumes this one's steps and jobs at once,
            // without waiting for the leases to expire.
            if let Err(e) = releaser.recover().await {
                tracing::warn!(error = %e, "could not release this worker's leases");
            }
            tracing::info!("stopped");
            match served {
                Ok(r) => r.map_err(|e| format!("server error: {e}")),
                Err(e) => Err(format!("server task: {e}")),
            }
        }
    }
}

/// How long `serve` waits, after SIGTERM or Ctrl-C, for in-flight steps
/// and connections before it cuts them and exits.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// `ai-team cloud`: the resolution, without connecting to anything.
fn show_cloud(settings: &Settings) -> Result<(), String> {
    let provider = &settings.cloud;
    println!("provider: {}", provider.name());
    let mut lines = provider.resolved(&settings.config);
    lines.push(llm_config::resolved(&settings.llm));
    let width = lines.iter().map(|l| l.service.len()).max().unwrap_or(0);
    for l in lines {
        println!("{:width$}  {}  [{}]", l.service, l.endpoint, l.credential);
    }
    Ok(())
}
