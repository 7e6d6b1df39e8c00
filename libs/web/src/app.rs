//! Building and running the server. `Application::build` is shared by `main` and the tests,
//! so tests exercise exactly what production runs.

use std::{
    convert::Infallible, future::Future, net::SocketAddr, pin::pin, sync::Arc, time::Duration,
};

use poem::{
    Addr, Endpoint, EndpointExt,
    endpoint::BoxEndpoint,
    get,
    http::uri::Scheme,
    middleware::AddData,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use crate::{
    AppState,
    allow::{AllowedMethods, AnnounceAllowedMethods},
    api, health,
    middleware::{BodyLimit, Observe, RefuseUndecodable, SecurityHeaders},
    pages,
};

/// JSON bodies larger than this are refused with 413 before they are read.
const MAX_API_BODY_BYTES: usize = 1024 * 1024;

/// Form bodies (`application/x-www-form-urlencoded`) larger than this are refused with 413.
/// The largest form, the platform admin's entitlement overrides, is a few hundred bytes;
/// poem's `Form` would otherwise read any length into memory.
const MAX_FORM_BODY_BYTES: usize = 64 * 1024;

/// A client has this long to send a request's head (request line and headers), counted from
/// when the server starts waiting for it (a new connection, or the end of the previous
/// response); then the connection is closed. Without it a client trickling a header byte a
/// second holds a connection and its task for ever, and a few hundred such clients
/// (slowloris) use up the server's file descriptors. poem's `Server` gives hyper no timer, so
/// hyper's own 30 s default never applies. Real clients send a head in one or two packets;
/// ten seconds leaves room for a bad mobile link, and also ends idle keep-alive connections.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a request's head (request line and every header) may take: beyond it the answer
/// is 431 and the connection closes. It is what each connection may buffer before a request
/// starts; hyper's default is 400 KiB. Browsers' heads are 1–4 KiB with cookies.
const MAX_REQUEST_HEAD_BYTES: usize = 32 * 1024;

/// At shutdown, how long a connection that has not sent its first request yet may take to
/// send it before it is closed. Clients send the request right after connecting; silent
/// connections only delay the exit by this much.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

pub struct Application {
    state: AppState,
    listener: TcpListener,
    address: SocketAddr,
}

impl Application {
    /// Binds the listener now, so the port is known (and taken) before serving starts.
    pub async fn build(state: AppState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(state.settings.server.bind).await?;
        let address = listener.local_addr()?;
        Ok(Self {
            state,
            listener,
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
        let Self {
            state,
            listener,
            address,
        } = self;
        let endpoint: Arc<BoxEndpoint<'static>> =
            Arc::new(routes(&state).map_to_response().boxed());
        let (closing, closing_seen) = watch::channel(false);
        let mut connections = JoinSet::new();
        let serve = |socket, remote| {
            serve_connection(
                socket,
                address,
                remote,
                Arc::clone(&endpoint),
                closing_seen.clone(),
            )
        };
        let mut shutdown = pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((socket, remote)) => {
                        connections.spawn(serve(socket, remote));
                    }
                    Err(error) => {
                        // Out of file descriptors, most likely: retrying at once would spin.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(finished) = connections.join_next(), if !connections.is_empty() => {
                    log_panic(finished);
                }
            }
        }
        state.begin_shutdown();
        tracing::info!("shutdown requested; draining in-flight requests");
        // The kernel completes handshakes before `accept`: connections in the backlog are
        // open for their clients, whose requests may already be sent. Closing the listener
        // would reset them, so they are taken and served first.
        for (socket, remote) in take_backlog(listener) {
            connections.spawn(serve(socket, remote));
        }
        let _ = closing.send(true);
        let drained = tokio::time::timeout(state.settings.server.shutdown_timeout, async {
            while let Some(finished) = connections.join_next().await {
                log_panic(finished);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                connections = connections.len(),
                "shutdown timeout reached; closing the connections still open"
            );
            connections.shutdown().await;
        }
        state.db.close().await;
        Ok(())
    }
}

/// Accepts every connection already waiting in `listener`'s backlog, then closes it (new
/// connections are refused from then on). The accept calls are made directly, not through
/// the runtime's readiness events, which may not have reported the latest arrivals yet.
fn take_backlog(listener: TcpListener) -> Vec<(tokio::net::TcpStream, SocketAddr)> {
    let mut taken = Vec::new();
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot take the listener's backlog");
            return taken;
        }
    };
    loop {
        match listener.accept() {
            Ok((socket, remote)) => {
                match socket
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpStream::from_std(socket))
                {
                    Ok(socket) => taken.push((socket, remote)),
                    Err(error) => tracing::warn!(%error, "cannot serve a connection"),
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                if error.kind() != std::io::ErrorKind::WouldBlock {
                    tracing::warn!(%error, "cannot accept a connection");
                }
                return taken;
            }
        }
    }
}

fn log_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::error!(%error, "a connection's task panicked");
    }
}

/// One connection, HTTP/1.1 with upgrades, until the client closes it, a deadline passes or
/// the server shuts down (then the request in flight, if any, completes first). HTTP/2 ends
/// at the proxy in front: cleartext HTTP/2 (which poem's server also accepted) has no
/// deadline for its preface, and nothing here used it.
async fn serve_connection(
    socket: tokio::net::TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    endpoint: Arc<BoxEndpoint<'static>>,
    mut closing: watch::Receiver<bool>,
) {
    let (request_seen, mut first_request) = watch::channel(false);
    let service = hyper::service::service_fn(move |request| {
        let endpoint = Arc::clone(&endpoint);
        request_seen.send_if_modified(|seen| !std::mem::replace(seen, true));
        async move {
            let request = poem::Request::from((
                request,
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(remote)),
                Scheme::HTTP,
            ));
            let response: hyper::Response<
                http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>,
            > = endpoint.get_response(request).await.into();
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
        .with_upgrades();
    let mut connection = pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = closing.wait_for(|closing| *closing) => {}
    }
    // A connection accepted just before shutdown has its first request on the way (the
    // client saw the connection open): closing it now would fail that request.
    if !*first_request.borrow() {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = tokio::time::timeout(FIRST_REQUEST_GRACE, first_request.wait_for(|seen| *seen)) => {}
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
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
        .with(RefuseUndecodable {
            max_form_bytes: MAX_FORM_BODY_BYTES,
        })
        .with(AddData::new(state.clone()))
        .with(Observe)
        .with(SecurityHeaders {
            hsts: state.settings.server.public_url.scheme() == "https",
        })
}
