//! A minimal SMTP server on 127.0.0.1 for the pool's tests: it speaks just enough SMTP (EHLO,
//! STARTTLS, AUTH, MAIL, RCPT, DATA, NOOP, RSET, QUIT), optionally behind TLS, and records the
//! connections it accepted and the messages and AUTH lines it received.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpListener,
    sync::broadcast,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

/// The CA that signed the server's `localhost` certificate, for the client to trust.
pub const TEST_CA_PEM: &[u8] = include_bytes!("test-ca.pem");

#[derive(Clone, Copy, Default)]
pub enum Encryption {
    #[default]
    None,
    /// TLS from the first byte (`smtps://`).
    Implicit,
    /// Plain until the client sends STARTTLS, which is offered.
    StartTls,
}

#[derive(Clone, Copy, Default)]
pub struct Behaviour {
    pub encryption: Encryption,
    /// How long the server takes to accept a message (to make concurrent sends overlap).
    pub accept_delay: Duration,
    /// Hang up right after the n-th message's final dot (counting from 1), without answering:
    /// the client cannot know whether it was accepted.
    pub hang_up_after_message: Option<usize>,
}

pub struct TestSmtpServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    kick: broadcast::Sender<()>,
}

#[derive(Default)]
struct State {
    accepted: AtomicUsize,
    open: AtomicUsize,
    peak_open: AtomicUsize,
    noops: AtomicUsize,
    messages: Mutex<Vec<Vec<u8>>>,
    /// Each AUTH line, and whether it came over TLS.
    auth: Mutex<Vec<(String, bool)>>,
}

impl TestSmtpServer {
    pub async fn start() -> Self {
        Self::start_with(Behaviour::default()).await
    }

    pub async fn start_with(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let (kick, _) = broadcast::channel(4);
        let acceptor = tls_acceptor();
        let server_state = Arc::clone(&state);
        let server_kick = kick.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&server_state);
                let kicked = server_kick.subscribe();
                let acceptor = acceptor.clone();
                state.accepted.fetch_add(1, Ordering::SeqCst);
                let open = state.open.fetch_add(1, Ordering::SeqCst) + 1;
                state.peak_open.fetch_max(open, Ordering::SeqCst);
                tokio::spawn(async move {
                    let session = Session {
                        state: &state,
                        behaviour,
                        kicked,
                    };
                    session.run(socket, acceptor).await;
                    state.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { addr, state, kick }
    }

    /// `smtp://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn accepted_connections(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    pub fn peak_open_connections(&self) -> usize {
        self.state.peak_open.load(Ordering::SeqCst)
    }

    pub fn noops(&self) -> usize {
        self.state.noops.load(Ordering::SeqCst)
    }

    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.state.messages.lock().unwrap().clone()
    }

    pub fn auth_lines(&self) -> Vec<(String, bool)> {
        self.state.auth.lock().unwrap().clone()
    }

    /// Closes every open connection the way a server ending idle sessions does: `421`, then
    /// hang up. Returns once they are closed.
    pub async fn close_connections(&self) {
        let _ = self.kick.send(());
        for _ in 0..200 {
            if self.state.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the server's connections did not close");
    }
}

fn tls_acceptor() -> TlsAcceptor {
    let chain = CertificateDer::pem_slice_iter(include_bytes!("localhost-chain.pem"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("localhost-key.pem")).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

struct Session<'a> {
    state: &'a State,
    behaviour: Behaviour,
    kicked: broadcast::Receiver<()>,
}

/// How a stretch of the dialogue ended.
enum End<S> {
    Closed,
    StartTls(S),
}

impl Session<'_> {
    async fn run(mut self, socket: tokio::net::TcpStream, acceptor: TlsAcceptor) {
        match self.behaviour.encryption {
            Encryption::None => {
                self.dialogue(socket, true, false, false).await;
            }
            Encryption::Implicit => {
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                self.dialogue(tls, true, true, false).await;
            }
            Encryption::StartTls => {
                if let End::StartTls(socket) = self.dialogue(socket, true, false, true).await {
                    let Ok(tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    self.dialogue(tls, false, true, false).await;
                }
            }
        }
    }

    async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: S,
        greet: bool,
        encrypted: bool,
        offer_starttls: bool,
    ) -> End<S> {
        let mut stream = BufReader::new(stream);
        if greet
            && reply(&mut stream, "220 inbox.test ESMTP\r\n")
                .await
                .is_err()
        {
            return End::Closed;
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = tokio::select! {
                read = stream.read_until(b'\n', &mut line) => read,
                _ = self.kicked.recv() => {
                    let _ = reply(&mut stream, "421 4.4.2 inbox.test closing idle session\r\n").await;
                    return End::Closed;
                }
            };
            if !matches!(read, Ok(n) if n > 0) {
                return End::Closed;
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            let verb = text
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let answer = match verb.as_str() {
                "EHLO" => {
                    let mut lines = vec!["inbox.test", "8BITMIME", "SMTPUTF8", "AUTH PLAIN LOGIN"];
                    if offer_starttls {
                        lines.push("STARTTLS");
                    }
                    let last = lines.len() - 1;
                    lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
                        .collect()
                }
                "STARTTLS" if offer_starttls => {
                    if reply(&mut stream, "220 2.0.0 go ahead\r\n").await.is_err() {
                        return End::Closed;
                    }
                    return End::StartTls(stream.into_inner());
                }
                "AUTH" => {
                    self.state.auth.lock().unwrap().push((text, encrypted));
                    "235 2.7.0 authenticated\r\n".to_owned()
                }
                "NOOP" => {
                    self.state.noops.fetch_add(1, Ordering::SeqCst);
                    "250 2.0.0 ok\r\n".to_owned()
                }
                "HELO" | "MAIL" | "RCPT" | "RSET" => "250 2.0.0 ok\r\n".to_owned(),
                "DATA" => {
                    if reply(&mut stream, "354 end with <CRLF>.<CRLF>\r\n")
                        .await
                        .is_err()
                    {
                        return End::Closed;
                    }
                    let Some(message) = read_message(&mut stream).await else {
                        return End::Closed;
                    };
                    let received = {
                        let mut messages = self.state.messages.lock().unwrap();
                        messages.push(message);
                        messages.len()
                    };
                    if self.behaviour.hang_up_after_message == Some(received) {
                        return End::Closed;
                    }
                    // (A zero sleep would still wait for the timer's next 1 ms tick.)
                    if !self.behaviour.accept_delay.is_zero() {
                        tokio::time::sleep(self.behaviour.accept_delay).await;
                    }
                    "250 2.0.0 queued\r\n".to_owned()
                }
                "QUIT" => {
                    let _ = reply(&mut stream, "221 2.0.0 bye\r\n").await;
                    return End::Closed;
                }
                _ => "500 5.5.2 unknown command\r\n".to_owned(),
            };
            if reply(&mut stream, &answer).await.is_err() {
                return End::Closed;
            }
        }
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    text: &str,
) -> std::io::Result<()> {
    stream.get_mut().write_all(text.as_bytes()).await?;
    stream.get_mut().flush().await
}

/// The message up to the lone dot, dot-stuffing undone; the CRLF before the dot belongs to the
/// terminator.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut BufReader<S>) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if stream.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" {
            message.truncate(message.len().saturating_sub(2));
            return Some(message);
        }
        let unstuffed = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        message.extend_from_slice(unstuffed);
    }
}
