//! Probes and metrics for operators: `/healthz` (the process is alive), `/readyz` (it can serve:
//! PostgreSQL and Redis answer, and shutdown has not begun), `/metrics` (Prometheus text).

use std::time::Duration;

use poem::{
    handler,
    http::StatusCode,
    web::{Data, Json},
};
use serde_json::json;

use crate::AppState;

/// A probe must answer within a Kubernetes probe's default timeout (1 s).
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

#[handler]
pub(crate) fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

#[handler]
pub(crate) async fn readyz(state: Data<&AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let (postgres, redis) = tokio::join!(check_postgres(&state), check_redis(&state));
    let shutting_down = state.is_shutting_down();
    let ready = postgres.is_ok() && redis.is_ok() && !shutting_down;
    let verdict = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "postgres": verdict(&postgres), "redis": verdict(&redis) },
        "shutting_down": shutting_down,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn check_postgres(state: &AppState) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("unreachable".to_owned()),
        Err(_) => Err("timeout".to_owned()),
    }
}

async fn check_redis(state: &AppState) -> Result<(), String> {
    let ping = async {
        let mut conn = state.kv.connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("unreachable".to_owned()),
        Err(_) => Err("timeout".to_owned()),
    }
}

#[handler]
pub(crate) fn metrics() -> poem::Response {
    poem::Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(tenantkit_telemetry::metrics().render())
}
