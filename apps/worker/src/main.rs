//! The background job worker: runs the queues' jobs until SIGTERM/Ctrl-C, then stops taking new
//! ones and lets the running ones finish.

use std::process::ExitCode;

use tenantkit_config::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(settings) = Settings::load_or_report() else {
        return ExitCode::from(2);
    };
    tenantkit_telemetry::init_logging(&settings.log);
    match tenantkit_worker::run(&settings, tenantkit_telemetry::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "worker failed");
            ExitCode::FAILURE
        }
    }
}
