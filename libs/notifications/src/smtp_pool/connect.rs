//! Where the SMTP server is (read from `smtp.url`) and how one connection to it is opened: our
//! own socket with TCP_NODELAY, handed to lettre, which does the SMTP (EHLO, TLS, AUTH) on it.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use futures::io::{AsyncRead as FuturesRead, AsyncWrite as FuturesWrite};
use lettre::transport::smtp::{
    SMTP_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT,
    authentication::{Credentials, DEFAULT_MECHANISMS},
    client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters},
    extension::ClientId,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use url::{Host, Url};

use crate::MailerError;

pub(crate) struct SmtpEndpoint {
    host: String,
    port: u16,
    security: Security,
    hello_name: ClientId,
    credentials: Option<Credentials>,
}

enum Security {
    Plain,
    /// STARTTLS when the server offers it (`?tls=opportunistic`).
    Opportunistic(TlsParameters),
    /// STARTTLS or no connection (`?tls=required`).
    Required(TlsParameters),
    /// TLS from the first byte (`smtps://`).
    Implicit(TlsParameters),
}

impl SmtpEndpoint {
    /// Reads the URL as lettre's `AsyncSmtpTransport::from_url` does: `smtp://` (plain),
    /// `?tls=required` or `?tls=opportunistic` (STARTTLS, default port 587), `smtps://` (default
    /// port 465), percent-encoded credentials, and a path naming the EHLO host. Messages never
    /// echo the URL: it may carry a password.
    pub(crate) fn from_url(url: &str) -> Result<Self, String> {
        let url = Url::parse(url).map_err(|e| format!("smtp.url is not a valid URL ({e})"))?;
        let host = match url.host() {
            Some(Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err("smtp.url has no host".to_owned()),
        };
        let tls = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let tls_parameters =
            || TlsParameters::new(host.clone()).map_err(|e| format!("smtp.url: TLS: {e}"));
        let (default_port, security) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (SMTP_PORT, Security::Plain),
            ("smtp", Some("required")) => (SUBMISSION_PORT, Security::Required(tls_parameters()?)),
            ("smtp", Some("opportunistic")) => {
                (SUBMISSION_PORT, Security::Opportunistic(tls_parameters()?))
            }
            ("smtps", _) => (SUBMISSIONS_PORT, Security::Implicit(tls_parameters()?)),
            (scheme, tls) => {
                return Err(format!(
                    "smtp.url: unknown scheme {scheme:?} or tls parameter {tls:?} (expected \
                     smtp://, smtp://…?tls=required, smtp://…?tls=opportunistic or smtps://)"
                ));
            }
        };
        let hello_name = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(
                percent_decoded(url.username())?,
                percent_decoded(password)?,
            )),
            None => None,
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            hello_name,
            credentials,
        })
    }

    /// A connection ready for MAIL FROM: greeted, encrypted as configured, authenticated.
    /// `timeout` bounds the TCP connect and, separately, the SMTP handshake.
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
    ) -> Result<AsyncSmtpConnection, MailerError> {
        let socket = self.open_socket(timeout).await?;
        tokio::time::timeout(timeout, self.handshake(socket))
            .await
            .map_err(|_| MailerError::Timeout("connecting"))?
    }

    async fn open_socket(&self, timeout: Duration) -> Result<TcpStream, MailerError> {
        let addresses = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(MailerError::Connect)?;
        let mut last_error = None;
        for address in addresses {
            match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
                Ok(Ok(socket)) => {
                    // The point of this module: without it each message waits ~40 ms for the
                    // server's delayed ACK before its final "\r\n.\r\n" leaves.
                    socket.set_nodelay(true).map_err(MailerError::Connect)?;
                    return Ok(socket);
                }
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => last_error = Some(io::ErrorKind::TimedOut.into()),
            }
        }
        Err(MailerError::Connect(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the SMTP host has no address")
        })))
    }

    /// What lettre's `AsyncSmtpTransport` does on a new connection, on our socket.
    async fn handshake(&self, socket: TcpStream) -> Result<AsyncSmtpConnection, MailerError> {
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(tls) => Box::new(ImplicitTls::handshake(socket, tls).await?),
            _ => Box::new(socket),
        };
        let mut connection =
            AsyncSmtpConnection::connect_with_transport(stream, &self.hello_name).await?;
        match &self.security {
            // lettre's `starttls` fails when the server does not offer it: nothing is sent in
            // the clear past EHLO.
            Security::Required(tls) => connection.starttls(tls.clone(), &self.hello_name).await?,
            Security::Opportunistic(tls) if connection.can_starttls() => {
                connection.starttls(tls.clone(), &self.hello_name).await?
            }
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(connection)
    }
}

fn percent_decoded(text: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| "smtp.url: the credentials are not UTF-8 once percent-decoded".to_owned())
}

/// A socket wrapped in TLS by lettre itself (same rustls configuration and roots as its own
/// `smtps://` transport), seen as the tokio stream `connect_with_transport` takes. lettre's
/// `AsyncNetworkStream` is deprecated as public API but is its only TLS upgrade for a socket we
/// opened; the alternative is a second rustls configuration of our own.
#[allow(deprecated)]
#[derive(Debug)]
struct ImplicitTls(lettre::transport::smtp::client::AsyncNetworkStream);

#[allow(deprecated)]
impl ImplicitTls {
    async fn handshake(socket: TcpStream, tls: &TlsParameters) -> Result<Self, MailerError> {
        use lettre::transport::smtp::client::AsyncNetworkStream;
        let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(socket));
        stream.upgrade_tls(tls.clone()).await?;
        Ok(Self(stream))
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = ready!(Pin::new(&mut self.0).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

#[cfg(test)]
impl SmtpEndpoint {
    /// The same endpoint trusting only `ca_pem`, the test server's CA.
    pub(crate) fn trusting_only(mut self, ca_pem: &[u8]) -> Self {
        use lettre::transport::smtp::client::{Certificate, CertificateStore};
        let tls = TlsParameters::builder(self.host.clone())
            .certificate_store(CertificateStore::None)
            .add_root_certificate(Certificate::from_pem(ca_pem).unwrap())
            .build_rustls()
            .unwrap();
        self.security = match self.security {
            Security::Plain => Security::Plain,
            Security::Opportunistic(_) => Security::Opportunistic(tls),
            Security::Required(_) => Security::Required(tls),
            Security::Implicit(_) => Security::Implicit(tls),
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(url: &str) -> SmtpEndpoint {
        SmtpEndpoint::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn urls_are_read_as_lettre_reads_them() {
        let plain = read("smtp://127.0.0.1:1025");
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 1025));
        assert!(matches!(plain.security, Security::Plain));
        assert!(plain.credentials.is_none());
        assert_eq!(read("smtp://mail.example.com").port, 25);

        let starttls = read("smtp://user:pass@mail.example.com?tls=required");
        assert_eq!(starttls.port, 587);
        assert!(matches!(starttls.security, Security::Required(_)));
        assert_eq!(
            starttls.credentials,
            Some(Credentials::new("user".into(), "pass".into()))
        );
        let opportunistic = read("smtp://mail.example.com:2525?tls=opportunistic");
        assert_eq!(opportunistic.port, 2525);
        assert!(matches!(opportunistic.security, Security::Opportunistic(_)));

        let implicit = read("smtps://us%40er:p%40ss%3Aw%2Frd%20%25@mail.example.com");
        assert_eq!(implicit.port, 465);
        assert!(matches!(implicit.security, Security::Implicit(_)));
        assert_eq!(
            implicit.credentials,
            Some(Credentials::new("us@er".into(), "p@ss:w/rd %".into()))
        );
        assert_eq!(read("smtps://mail.example.com:2465").port, 2465);

        let named = read("smtp://mail.example.com/client.example.com");
        assert_eq!(
            named.hello_name,
            ClientId::Domain("client.example.com".into())
        );
        assert_eq!(read("smtp://[::1]:25").host, "::1");
    }

    #[test]
    fn unusable_urls_are_refused_without_echoing_them() {
        for url in [
            "not a url",
            "http://user:secret@mail.example.com",
            "smtp://user:secret@mail.example.com?tls=sometimes",
            "smtp:///no-host",
            "smtps://user:%FF%FE@mail.example.com",
        ] {
            let error = SmtpEndpoint::from_url(url)
                .err()
                .unwrap_or_else(|| panic!("{url}"));
            assert!(error.starts_with("smtp.url"), "{url}: {error}");
            assert!(!error.contains("secret"), "{url}: {error}");
        }
    }
}
