//! `azure-handler`: the Azure Functions custom handler. Serves the router
//! and the Service Bus queue trigger (steps and refresh jobs) on `FUNCTIONS_CUSTOMHANDLER_PORT`.
//! `main` only wires: the settings, adapters, engine, then the server.

use std::net::SocketAddr;
use std::process::ExitCode;

use ai_team_functions::{AppState, app, azure, hosting, integrations};

#[tokio::main]
async fn main() -> ExitCode {
    let wired = match hosting::settings() {
        Ok(settings) => hosting::wire(settings).await,
        Err(message) => Err(message),
    };
    let wired = match wired {
        Ok(w) => w,
        Err(message) => {
            eprintln!("azure-handler: {message}");
            return ExitCode::from(2);
        }
    };
    let port = wired.host.azure_handler_port.clone();
    let listener = match tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("azure-handler: invalid FUNCTIONS_CUSTOMHANDLER_PORT {port}: {e}");
            return ExitCode::from(2);
        }
    };
    let review = match integrations::review_source(&wired.config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("azure-handler: {e}");
            return ExitCode::from(2);
        }
    };
    // The key the queue's messages are signed with (the connection
    // string's, or the one kept in the database under Entra ID): the
    // queue route runs only signed messages.
    let Some(signer) = wired.message_key.clone() else {
        eprintln!(
            "azure-handler: CLOUD_PROVIDER is not azure: set the Azure settings (README, Configuration)"
        );
        return ExitCode::from(2);
    };
    // Every request arrives from the Functions host on loopback, with the
    // client's address appended to X-Forwarded-For by Azure's front end:
    // one trusted hop unless the operator says otherwise (without it, all
    // clients would share the host's one rate-limit key).
    let mut config = wired.config;
    if !wired.host.trusted_proxies_given {
        config.trusted_proxies = 1;
    }
    let state = match AppState::try_new(wired.store, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("azure-handler: {e}");
            return ExitCode::from(2);
        }
    };
    let api = app(state
        .with_engine(wired.engine.clone())
        .with_events(std::time::Duration::from_millis(500)));
    let router = azure::handler_app(api, wired.engine, review, signer);
    match axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("azure-handler: {e}");
            ExitCode::FAILURE
        }
    }
}
