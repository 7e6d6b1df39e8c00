//! The pool against a small SMTP server of our own on 127.0.0.1 (`server.rs`).

mod server;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use lettre::Message;
use secrecy::SecretString;
use tenantkit_config::SmtpSettings;

use super::{SmtpEndpoint, SmtpPool};
use crate::{Mailer, MailerError};
use server::{Behaviour, Encryption, TEST_CA_PEM, TestSmtpServer};

const TIMEOUT: Duration = Duration::from_secs(5);

fn settings(url: &str, pool_size: usize) -> SmtpSettings {
    SmtpSettings {
        url: SecretString::from(url),
        from: "Tenantkit <no-reply@tenantkit.test>".to_owned(),
        timeout: TIMEOUT,
        pool_size,
    }
}

fn mailer(server: &TestSmtpServer, pool_size: usize) -> Mailer {
    Mailer::new(&settings(&server.url(), pool_size)).unwrap()
}

fn pool(url: &str) -> Arc<SmtpPool> {
    SmtpPool::new(SmtpEndpoint::from_url(url).unwrap(), 4, TIMEOUT)
}

/// A message with a line starting with a dot (stuffed on the wire, unstuffed on arrival).
fn message(i: usize) -> Message {
    Message::builder()
        .from("Tenantkit <no-reply@tenantkit.test>".parse().unwrap())
        .to(format!("user{i}@example.test").parse().unwrap())
        .subject(format!("Message {i}"))
        .message_id(Some(format!("<m{i}@tenantkit.test>")))
        .body(format!(
            "Hello {i}\r\n.a line that starts with a dot\r\nbye\r\n"
        ))
        .unwrap()
}

async fn send(pool: &Arc<SmtpPool>, message: &Message) -> Result<(), MailerError> {
    pool.send(message.envelope(), &message.formatted()).await
}

/// Makes the pool's idle connections look idle for `age` already.
fn age_idle_connections(pool: &SmtpPool, age: Duration) {
    for idle in pool.idle().iter_mut() {
        idle.since = Instant::now().checked_sub(age).unwrap();
    }
}

#[tokio::test]
async fn fifty_sequential_sends_share_one_connection_and_arrive_intact() {
    let server = TestSmtpServer::start().await;
    let mailer = mailer(&server, 16);
    let sent: Vec<Message> = (0..50).map(message).collect();
    for message in &sent {
        mailer.send(message.clone()).await.unwrap();
    }
    assert_eq!(server.accepted_connections(), 1);
    assert_eq!(server.noops(), 0, "a connection just used is not checked");
    let received = server.messages();
    assert_eq!(received.len(), 50);
    for (i, (sent, received)) in sent.iter().zip(&received).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(received),
            String::from_utf8_lossy(&sent.formatted()),
            "message {i}"
        );
        let id = format!("Message-ID: <m{i}@tenantkit.test>\r\n");
        assert!(received.windows(id.len()).any(|w| w == id.as_bytes()));
    }
}

#[tokio::test]
async fn concurrent_sends_open_no_more_connections_than_the_pool_size() {
    let server = TestSmtpServer::start_with(Behaviour {
        accept_delay: Duration::from_millis(50),
        ..Behaviour::default()
    })
    .await;
    let mailer = mailer(&server, 4);
    let sends = (0..8).map(|i| {
        let mailer = mailer.clone();
        tokio::spawn(async move { mailer.send(message(i)).await })
    });
    for send in sends.collect::<Vec<_>>() {
        send.await.unwrap().unwrap();
    }
    assert_eq!(server.messages().len(), 8);
    assert!(
        server.accepted_connections() <= 4,
        "{} connections",
        server.accepted_connections()
    );
    // They did overlap: the limit was exercised, not bypassed by sending one at a time.
    assert!(server.peak_open_connections() > 1);
}

#[tokio::test]
async fn a_connection_the_server_just_closed_does_not_fail_the_next_send() {
    let server = TestSmtpServer::start().await;
    let pool = pool(&server.url());
    send(&pool, &message(0)).await.unwrap();
    server.close_connections().await;
    // Idle for less than the NOOP threshold: used at once, found closed, sent on a new one.
    send(&pool, &message(1)).await.unwrap();
    assert_eq!(server.messages().len(), 2);
    assert_eq!(server.accepted_connections(), 2);
}

#[tokio::test]
async fn a_connection_idle_for_a_while_is_checked_with_noop_before_reuse() {
    let server = TestSmtpServer::start().await;
    let pool = pool(&server.url());
    send(&pool, &message(0)).await.unwrap();
    age_idle_connections(&pool, Duration::from_secs(2));
    send(&pool, &message(1)).await.unwrap();
    assert_eq!(server.noops(), 1);
    assert_eq!(server.accepted_connections(), 1, "a live one is reused");

    server.close_connections().await;
    age_idle_connections(&pool, Duration::from_secs(2));
    let (_, reused) = pool.checkout().await.unwrap();
    assert!(!reused, "a connection the server closed was handed out");
    assert_eq!(server.accepted_connections(), 2);
}

#[tokio::test]
async fn idle_connections_past_a_minute_are_closed() {
    let server = TestSmtpServer::start().await;
    let pool = pool(&server.url());
    send(&pool, &message(0)).await.unwrap();
    age_idle_connections(&pool, Duration::from_secs(61));
    pool.close_stale();
    assert!(pool.idle().is_empty());
    // The server sees the session end (QUIT) without being told to close it.
    for _ in 0..200 {
        if server.open_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.open_connections(), 0);
    send(&pool, &message(1)).await.unwrap();
    assert_eq!(server.accepted_connections(), 2);
}

#[tokio::test]
async fn a_message_whose_reply_was_lost_is_never_sent_again() {
    let server = TestSmtpServer::start_with(Behaviour {
        hang_up_after_message: Some(2),
        ..Behaviour::default()
    })
    .await;
    let pool = pool(&server.url());
    send(&pool, &message(0)).await.unwrap();
    // The second goes out on the reused connection, and the server hangs up after its final
    // dot: it may have been accepted, so the send fails instead of repeating it.
    let error = send(&pool, &message(1)).await.unwrap_err();
    assert!(matches!(error, MailerError::Send(_)), "{error:?}");
    assert_eq!(server.messages().len(), 2);
    assert_eq!(server.accepted_connections(), 1);
    // The broken connection was dropped, not returned to the pool.
    send(&pool, &message(2)).await.unwrap();
    assert_eq!(server.accepted_connections(), 2);
}

/// Before the pool had its own sockets (TCP_NODELAY), each message waited ~40 ms for the
/// server's delayed ACK before its final "\r\n.\r\n" left: 50 took over 2 s.
#[tokio::test]
async fn sequential_sends_do_not_wait_for_delayed_acks() {
    let server = TestSmtpServer::start().await;
    let mailer = mailer(&server, 16);
    mailer.send(message(0)).await.unwrap();
    let started = Instant::now();
    for i in 1..=50 {
        mailer.send(message(i)).await.unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "50 sequential sends over {} connection(s): {elapsed:?}, {:.0} messages/s",
        server.accepted_connections(),
        50.0 / elapsed.as_secs_f64()
    );
    assert_eq!(server.accepted_connections(), 1);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn invalid_urls_fail_in_new_with_a_settings_error() {
    for url in [
        "not a url",
        "http://127.0.0.1:25",
        "smtp://127.0.0.1:25?tls=sometimes",
        "smtp://",
    ] {
        match Mailer::new(&settings(url, 4)) {
            Err(MailerError::Settings(message)) => {
                assert!(message.contains("smtp.url"), "{url}: {message}")
            }
            Err(other) => panic!("{url}: {other:?}"),
            Ok(_) => panic!("{url} accepted"),
        }
    }
}

#[tokio::test]
async fn credentials_are_percent_decoded_and_sent_with_auth() {
    let server = TestSmtpServer::start().await;
    let url = format!(
        "smtp://user%40example.test:p%40ss%3Aw%2Frd%20%25@{}",
        server.addr
    );
    send(&pool(&url), &message(0)).await.unwrap();
    // base64("\0user@example.test\0p@ss:w/rd %")
    assert_eq!(
        server.auth_lines(),
        [(
            "AUTH PLAIN AHVzZXJAZXhhbXBsZS50ZXN0AHBAc3M6dy9yZCAl".to_owned(),
            false
        )]
    );
}

#[tokio::test]
async fn smtps_speaks_tls_from_the_first_byte() {
    let server = TestSmtpServer::start_with(Behaviour {
        encryption: Encryption::Implicit,
        ..Behaviour::default()
    })
    .await;
    let url = format!("smtps://user:pass@localhost:{}", server.addr.port());
    let endpoint = SmtpEndpoint::from_url(&url)
        .unwrap()
        .trusting_only(TEST_CA_PEM);
    let pool = SmtpPool::new(endpoint, 4, TIMEOUT);
    for i in 0..3 {
        send(&pool, &message(i)).await.unwrap();
    }
    assert_eq!(server.messages()[2], message(2).formatted());
    assert_eq!(server.accepted_connections(), 1);
    assert!(server.auth_lines().iter().all(|(_, tls)| *tls));
}

#[tokio::test]
async fn tls_required_upgrades_with_starttls_before_auth() {
    let server = TestSmtpServer::start_with(Behaviour {
        encryption: Encryption::StartTls,
        ..Behaviour::default()
    })
    .await;
    let url = format!(
        "smtp://user:pass@localhost:{}?tls=required",
        server.addr.port()
    );
    let endpoint = SmtpEndpoint::from_url(&url)
        .unwrap()
        .trusting_only(TEST_CA_PEM);
    send(&SmtpPool::new(endpoint, 4, TIMEOUT), &message(0))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 1);
    let auth = server.auth_lines();
    assert_eq!(auth.len(), 1);
    assert!(auth[0].1, "AUTH went in the clear");
}

#[tokio::test]
async fn tls_required_sends_nothing_to_a_server_without_starttls() {
    let server = TestSmtpServer::start().await;
    let url = format!("smtp://user:pass@{}?tls=required", server.addr);
    let error = send(&pool(&url), &message(0)).await.unwrap_err();
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    assert!(server.auth_lines().is_empty());
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn smtps_refuses_a_certificate_it_does_not_trust() {
    let server = TestSmtpServer::start_with(Behaviour {
        encryption: Encryption::Implicit,
        ..Behaviour::default()
    })
    .await;
    // The default roots do not include the test CA.
    let url = format!("smtps://user:pass@localhost:{}", server.addr.port());
    let error = send(&pool(&url), &message(0)).await.unwrap_err();
    assert!(
        matches!(error, MailerError::Send(ref e) if e.is_tls() || e.to_string().contains("certificate")),
        "{error:?}"
    );
    assert!(server.auth_lines().is_empty());
}
