//! The server as operators run it: readiness follows PostgreSQL, SIGTERM drains, and secrets
//! never reach the logs.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::Duration,
};

use tenantkit_tests::{
    env,
    process::{PrivatePostgres, free_port, server_command, sigterm, wait_for_port},
};

/// The server binary on `port` with its logs captured (`server_command` discards them).
fn server(database_url: &str, port: u16, extra: &[(&str, &str)]) -> Command {
    let mut command = server_command(database_url, &env("TENANTKIT_TEST_REDIS"), port, extra);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// A server on its own PostgreSQL, its logs discarded.
async fn start_quiet_server(pg: &PrivatePostgres) -> (std::process::Child, u16) {
    let database_url = pg.migrated_app_url("lifecycle-secret-pw").await;
    let port = free_port();
    let child = server(&database_url, port, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for_port(port, Duration::from_secs(20)).await,
        "server did not start"
    );
    (child, port)
}

async fn ready_status(client: &reqwest::Client, port: u16) -> u16 {
    client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn wait_for_ready_status(client: &reqwest::Client, port: u16, want: u16) -> bool {
    for _ in 0..100 {
        if ready_status(client, port).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn readiness_follows_postgres_down_and_back_without_a_restart() {
    let pg = PrivatePostgres::start();
    let (mut child, port) = start_quiet_server(&pg).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(
        wait_for_ready_status(&client, port, 200).await,
        "never ready"
    );

    pg.stop();
    assert!(
        wait_for_ready_status(&client, port, 503).await,
        "still ready with PostgreSQL stopped"
    );
    // The API answers 503 with Retry-After, not 500.
    let response = client
        .post(format!("http://127.0.0.1:{port}/api/v1/signups"))
        .json(&serde_json::json!({
            "organisation": "Down", "name": "Ada", "email": "ada@down.test", "password": "correct horse battery",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    pg.start_again();
    assert!(
        wait_for_ready_status(&client, port, 200).await,
        "not ready again after PostgreSQL came back"
    );
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_refuses_new_ones_and_exits_zero() {
    let pg = PrivatePostgres::start();
    let (mut child, port) = start_quiet_server(&pg).await;

    // Requests in flight: headers sent, body still arriving when SIGTERM lands.
    let body = serde_json::json!({
        "organisation": "Draining", "name": "Ada", "email": "x", "password": "correct horse battery",
    })
    .to_string();
    let mut in_flight = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "POST /api/v1/signups HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(&body.as_bytes()[..10]).unwrap();
        in_flight.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The listener is closed: new connections are refused.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a new connection was accepted during shutdown"
    );

    for mut stream in in_flight {
        stream.write_all(&body.as_bytes()[10..]).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reply = String::new();
        let mut buffer = [0u8; 4096];
        while !reply.contains("\r\n\r\n") || !reply.contains('}') {
            let n = stream.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            reply.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        // The body's email is invalid on purpose: a complete, correct answer proves the
        // request was served to the end.
        assert!(
            reply.starts_with("HTTP/1.1 422"),
            "in-flight request did not complete: {reply:?}"
        );
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn secrets_never_appear_in_logs() {
    let pg = PrivatePostgres::start();
    let database_url = pg.migrated_app_url("lifecycle-secret-pw").await;
    let port = free_port();
    let secret_key = "s3cr3t-key-that-must-never-be-logged-0123456789";
    let mut child = server(
        &database_url,
        port,
        &[
            ("TENANTKIT_SECRET_KEY", secret_key),
            ("TENANTKIT_LOG__FILTER", "trace"),
            ("TENANTKIT_LOG__FORMAT", "json"),
        ],
    )
    .spawn()
    .unwrap();
    assert!(
        wait_for_port(port, Duration::from_secs(20)).await,
        "server did not start"
    );
    let client = reqwest::Client::new();
    assert!(wait_for_ready_status(&client, port, 200).await);
    let password = "my very secret password 123";
    client
        .post(format!("http://127.0.0.1:{port}/api/v1/signups"))
        .json(&serde_json::json!({ "organisation": "Logs", "name": "Ada", "email": "ada@logs.test", "password": password }))
        .send()
        .await
        .unwrap();
    sigterm(&child);
    let output = child.wait_with_output_after_exit();
    assert!(
        output.contains("tenantkit server listening"),
        "logs were not captured: {output}"
    );
    // JSON logs by configuration: every line is one JSON object.
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
    for secret in [secret_key, "lifecycle-secret-pw", password] {
        assert!(
            !output.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}

trait WaitWithOutput {
    fn wait_with_output_after_exit(&mut self) -> String;
}

impl WaitWithOutput for std::process::Child {
    fn wait_with_output_after_exit(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut out) = self.stdout.take() {
            out.read_to_string(&mut text).unwrap();
        }
        if let Some(mut err) = self.stderr.take() {
            err.read_to_string(&mut text).unwrap();
        }
        assert!(self.wait().unwrap().success());
        text
    }
}
