//! Building and running the server. `Application::build` is shared by `main` and the tests,
//! so tests exercise exactly what production runs.

use std::{future::Future, net::SocketAddr, sync::Arc};

use poem::{EndpointExt, Server, get, listener::TcpAcceptor, middleware::AddData};

use crate::{
    AppState,
    allow::{AllowedMethods, AnnounceAllowedMethods},
    api, health,
    middleware::{BodyLimit, Observe, SecurityHeaders},
    pages,
};

/// JSON bodies larger than this are refused with 413 before they are read.
const MAX_API_BODY_BYTES: usize = 1024 * 1024;

pub struct Application {
    state: AppState,
    acceptor: TcpAcceptor,
    address: SocketAddr,
}

impl Application {
    /// Binds the listener now, so the port is known (and taken) before serving starts.
    pub async fn build(state: AppState) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(state.settings.server.bind).await?;
        let address = listener.local_addr()?;
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        Ok(Self {
            state,
            acceptor,
            address,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes; then readiness fails at once, the listener closes
    /// (new connections are refused) and in-flight requests get `server.shutdown_timeout`.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let state = self.state.clone();
        let timeout = state.settings.server.shutdown_timeout;
        let signal = async move {
            shutdown.await;
            state.begin_shutdown();
            tracing::info!("shutdown requested; draining in-flight requests");
        };
        let result = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(routes(&self.state), signal, Some(timeout))
            .await;
        self.state.db.close().await;
        result
    }
}

pub(crate) fn routes(state: &AppState) -> impl poem::Endpoint + 'static {
    let api = api::service(state);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let allowed = Arc::new(AllowedMethods::from_spec(&api.spec(), "/api/v1"));
    pages::routes()
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at("/metrics", get(health::metrics))
        .at("/webhooks/stripe", poem::post(crate::webhooks::stripe))
        .at(
            "/files/shared/:token",
            get(crate::shared_files::shared_file),
        )
        .at("/api/openapi.json", spec)
        .nest("/api/docs", docs)
        .nest("/api/v1", api.with(BodyLimit(MAX_API_BODY_BYTES)))
        .with(AnnounceAllowedMethods(allowed))
        .with(AddData::new(state.clone()))
        .with(Observe)
        .with(SecurityHeaders {
            hsts: state.settings.server.public_url.scheme() == "https",
        })
}
