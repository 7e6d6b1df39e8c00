//! The web and API server.

use std::process::ExitCode;

use tenantkit_config::Settings;
use tenantkit_telemetry::shutdown_signal;
use tenantkit_web::{AppState, Application};

#[tokio::main]
async fn main() -> ExitCode {
    let Some(settings) = Settings::load_or_report() else {
        return ExitCode::from(2);
    };
    tenantkit_telemetry::init_logging(&settings.log);
    // Safe to log: secrets are `SecretString`s and print as [REDACTED].
    tracing::debug!(?settings, "configuration loaded");
    let shutdown = shutdown_signal();
    let state = match AppState::new(settings) {
        Ok(state) => state,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::from(2);
        }
    };
    let app = match Application::build(state).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "cannot bind the listening address");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(address = %app.address(), "tenantkit server listening");
    match app.run_until(shutdown).await {
        Ok(()) => {
            tracing::info!("server stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}
