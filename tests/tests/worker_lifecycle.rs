//! Workers come and go (rolling restarts) without dropping or repeating a job: a stopping
//! worker finishes its running job, and a starting one leaves its live peers' jobs alone.

use std::time::Duration;

use tenantkit_tests::{TestApp, mail, settings_for, worker::RunningWorker};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

/// A TCP relay to the real SMTP server that holds back the server's greeting for `delay`,
/// so a delivery is reliably in flight for that long. Reports each accepted connection.
async fn slow_smtp_relay(delay: Duration) -> (u16, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = tenantkit_tests::env("TENANTKIT_TEST_SMTP")
        .trim_start_matches("smtp://")
        .to_owned();
    let (accepted, accepted_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let _ = accepted.send(());
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut server = TcpStream::connect(&upstream).await.unwrap();
                tokio::time::sleep(delay).await;
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                let up = tokio::io::copy(&mut client_read, &mut server_write);
                let down = async {
                    let mut buffer = [0u8; 4096];
                    loop {
                        let n = server_read.read(&mut buffer).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        client_write.write_all(&buffer[..n]).await?;
                    }
                };
                let _ = tokio::join!(up, down);
            });
        }
    });
    (port, accepted_rx)
}

/// Signs up an organisation and waits until the worker has begun delivering its welcome
/// email through the relay; returns the recipient.
async fn sign_up_and_await_delivery(
    app: &TestApp,
    accepted: &mut mpsc::UnboundedReceiver<()>,
    label: &str,
) -> String {
    let recipient = format!("{label}-{}@workers.test", uuid::Uuid::now_v7().simple());
    app.sign_up(&format!("{label} Co"), &recipient).await;
    tokio::time::timeout(Duration::from_secs(30), accepted.recv())
        .await
        .expect("the job never started");
    recipient
}

/// Settings whose SMTP goes through the relay on `port`.
fn through_relay(app: &TestApp, port: u16, extra: &[(&str, &str)]) -> tenantkit_config::Settings {
    let smtp = format!("smtp://127.0.0.1:{port}");
    let mut overrides = vec![("smtp.url", smtp.as_str())];
    overrides.extend_from_slice(extra);
    settings_for(&app.db, &overrides)
}

async fn job_status(app: &TestApp) -> String {
    sqlx::query_scalar("select status from apalis.jobs")
        .fetch_one(&app.db.owner)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_worker_finishes_the_running_job() {
    let app = TestApp::spawn().await;
    let (relay_port, mut accepted) = slow_smtp_relay(Duration::from_secs(2)).await;
    let worker = RunningWorker::start(through_relay(&app, relay_port, &[]));

    // The delivery has started (the worker is talking to SMTP) when we ask it to stop.
    let recipient = sign_up_and_await_delivery(&app, &mut accepted, "drain").await;
    worker.stop_within(Duration::from_secs(30)).await;
    assert_eq!(
        mail::wait_for(&recipient, 1, Duration::from_secs(5))
            .await
            .len(),
        1,
        "the running job was not finished"
    );
    assert_eq!(job_status(&app).await, "Done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_worker_does_not_take_a_job_a_live_worker_is_running() {
    let app = TestApp::spawn().await;
    let (relay_port, mut accepted) = slow_smtp_relay(Duration::from_secs(4)).await;
    let first = RunningWorker::start(through_relay(&app, relay_port, &[]));
    let recipient = sign_up_and_await_delivery(&app, &mut accepted, "rolling").await;
    // A second worker starts while the first is mid-job, as in a rolling deployment.
    let second = RunningWorker::start(through_relay(&app, relay_port, &[]));

    assert_eq!(
        mail::wait_for(&recipient, 1, Duration::from_secs(30))
            .await
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        accepted.try_recv().is_err(),
        "a second SMTP delivery was attempted"
    );
    assert_eq!(
        mail::wait_for(&recipient, 2, Duration::from_millis(100))
            .await
            .len(),
        1
    );
    first.stop_within(Duration::from_secs(30)).await;
    second.stop_within(Duration::from_secs(30)).await;
    assert_eq!(job_status(&app).await, "Done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_at_the_shutdown_deadline_is_released_to_another_worker() {
    let app = TestApp::spawn().await;
    let (relay_port, mut accepted) = slow_smtp_relay(Duration::from_secs(20)).await;
    let impatient = through_relay(&app, relay_port, &[("worker.shutdown_timeout_secs", "1")]);
    let worker = RunningWorker::start(impatient);
    let recipient = sign_up_and_await_delivery(&app, &mut accepted, "released").await;
    // The deadline is 1 s; the delivery would take 20.
    worker.stop_within(Duration::from_secs(10)).await;
    let (status, lock): (String, Option<String>) =
        sqlx::query_as("select status, lock_by from apalis.jobs")
            .fetch_one(&app.db.owner)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), lock),
        ("Pending", None),
        "the held job was not released"
    );

    // A healthy worker picks it up right away and the email arrives, once.
    let healthy = RunningWorker::start(settings_for(&app.db, &[]));
    assert_eq!(
        mail::wait_for(&recipient, 1, Duration::from_secs(20))
            .await
            .len(),
        1
    );
    healthy.stop_within(Duration::from_secs(30)).await;
    assert_eq!(job_status(&app).await, "Done");
}
