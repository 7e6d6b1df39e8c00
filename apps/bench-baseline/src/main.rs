//! The baseline of `scripts/bench`'s W1: a bare poem server (the same runtime and HTTP stack
//! as `tenantkit-server`, no middleware, no authentication, no database) answering the route
//! shape of a file's metadata, `GET /api/v1/tenants/{tenant}/files/{file}`, with fixed JSON:
//! the bytes the real server answered for the same call, read from a file at start-up.
//!
//!     tenantkit-bench-baseline 127.0.0.1:PORT BODY.json

use std::process::ExitCode;

use poem::{
    EndpointExt, Response, Route, Server, get, handler, http::header, listener::TcpListener,
    web::Data,
};

#[derive(Clone)]
struct Body(&'static [u8]);

#[handler]
fn metadata(body: Data<&Body>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(body.0.0)
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(bind), Some(path), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: tenantkit-bench-baseline <address:port> <body.json>");
        return ExitCode::from(2);
    };
    let body = match std::fs::read(&path) {
        Ok(bytes) => Body(bytes.leak()),
        Err(error) => {
            eprintln!("cannot read {path}: {error}");
            return ExitCode::from(2);
        }
    };
    let app = Route::new()
        .at("/api/v1/tenants/:tenant_id/files/:file_id", get(metadata))
        .at("/healthz", get(healthz))
        .data(body);
    match Server::new(TcpListener::bind(bind)).run(app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("server failed: {error}");
            ExitCode::FAILURE
        }
    }
}
