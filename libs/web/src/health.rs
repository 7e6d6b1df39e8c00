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
    let redis = async {
        let mut conn = state.kv.connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    let (postgres, redis) = tokio::join!(probe(state.db.ping()), probe(redis));
    let shutting_down = state.is_shutting_down();
    let ready = postgres == "ok" && redis == "ok" && !shutting_down;
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "postgres": postgres, "redis": redis },
        "shutting_down": shutting_down,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// "ok", "unreachable" or "timeout": a verdict safe to publish (no addresses, no errors).
async fn probe<T, E>(check: impl Future<Output = Result<T, E>>) -> &'static str {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(_)) => "ok",
        Ok(Err(_)) => "unreachable",
        Err(_) => "timeout",
    }
}

#[handler]
pub(crate) fn metrics() -> poem::Response {
    poem::Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(tenantkit_telemetry::metrics().render())
}
