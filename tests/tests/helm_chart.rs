//! The Helm chart (helm/tenantkit) and the container files (deploy/), without a cluster or a
//! Docker daemon: Helm's own engine renders the chart (helm-python-sdk), offline Kubernetes
//! schemas validate the manifests (kubernetes-validate), and the rendered pods' commands and
//! environments run the real binaries here. The Python halves live in tests/helm/.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use tenantkit_tests::{
    env, mail,
    process::{binary, free_port, sigterm},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

fn workspace() -> PathBuf {
    tenantkit_tests::tests_crate_dir()
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Runs `tests/helm/<script>`; panics with its output unless it succeeds. Returns stdout.
fn python(script: &str, args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg("-B") // no __pycache__ in the source tree
        .arg(workspace().join("tests/helm").join(script))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("python3 runs (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // The summary line is the last one; nextest shows it with --no-capture.
    println!("{}", stdout.lines().last().unwrap_or_default());
    stdout
}

#[test]
fn chart_lints_strictly_and_renders_valid_restricted_manifests_for_kubernetes_1_29_and_1_33() {
    python("check_chart.py", &["render"]);
}

#[test]
fn values_schema_refuses_bad_values_each_for_its_own_reason() {
    python("check_chart.py", &["reject"]);
}

#[test]
fn dockerfile_and_compose_build_and_run_the_binaries_the_tests_run() {
    python("check_container.py", &[]);
}

/// One container of the rendered chart, as the kubelet would start it.
struct Container {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    plan: Value,
}

impl Container {
    fn new(plan: &Value) -> Self {
        let argv: Vec<String> = plan["argv"]
            .as_array()
            .expect("argv")
            .iter()
            .map(|a| a.as_str().expect("argv is strings").to_owned())
            .collect();
        let env = plan["env"]
            .as_object()
            .expect("env")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("env is strings").to_owned()))
            .collect();
        Self {
            argv,
            env,
            plan: plan.clone(),
        }
    }

    fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn set_env(&mut self, name: &str, value: String) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value));
    }

    /// A number from the plan: a port, a grace period in seconds.
    fn number(&self, key: &str) -> u64 {
        self.plan[key].as_u64().unwrap_or_else(|| panic!("{key}"))
    }

    /// The image's program (command[0] names one of the binaries in /usr/local/bin) with the
    /// rendered arguments and exactly the rendered environment; PATH only for the preStop
    /// hook's `sleep`.
    fn command(&self) -> Command {
        let program = Path::new(&self.argv[0])
            .file_name()
            .expect("a program")
            .to_str()
            .expect("utf-8");
        assert!(
            ["tenantkit-server", "tenantkit-worker", "tenantkit-admin"].contains(&program),
            "the chart runs {program}, which is not one of the image's binaries"
        );
        let mut command = Command::new(binary(program));
        command
            .args(&self.argv[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// A running container; killed if the test ends before it stops.
struct Pod {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Pod {
    fn start(name: &'static str, container: &Container, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = container
            .command()
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start");
        Self {
            name,
            child: Some(child),
            log,
        }
    }

    fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} log ---\n{text}", self.name)
    }

    fn sigterm(&self) {
        sigterm(self.child.as_ref().expect("running"));
    }

    /// Waits for the exit, at most `limit`.
    async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().expect("running").try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A folder removed with its owner.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends one probe as the kubelet does: HTTP GET, success is 200 to 399 within the timeout.
async fn probe(client: &reqwest::Client, port: u16, spec: &Value) -> Result<u16, String> {
    assert_eq!(spec["scheme"], "HTTP", "only HTTP probes are expected");
    let url = format!(
        "http://127.0.0.1:{port}{}",
        spec["path"].as_str().expect("path")
    );
    let timeout = Duration::from_secs(spec["timeoutSeconds"].as_u64().expect("timeout"));
    match client.get(&url).timeout(timeout).send().await {
        Ok(response) if (200..400).contains(&response.status().as_u16()) => {
            Ok(response.status().as_u16())
        }
        Ok(response) => Err(format!("{url}: {}", response.status())),
        Err(error) => Err(format!("{url}: {error}")),
    }
}

/// Polls a probe until it succeeds `successThreshold` times in a row, within the time the
/// kubelet allows (initial delay + period × failure threshold).
async fn wait_for_probe(client: &reqwest::Client, port: u16, spec: &Value) -> Result<(), String> {
    let seconds = |k: &str| spec[k].as_u64().unwrap_or_else(|| panic!("{k}"));
    let budget = Duration::from_secs(
        seconds("initialDelaySeconds") + seconds("periodSeconds") * seconds("failureThreshold"),
    );
    let deadline = Instant::now() + budget;
    let (mut successes, mut last) = (0, String::new());
    while Instant::now() < deadline {
        match probe(client, port, spec).await {
            Ok(_) => {
                successes += 1;
                if successes >= seconds("successThreshold") {
                    return Ok(());
                }
            }
            Err(error) => (successes, last) = (0, error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "{} did not succeed within {budget:?}: {last}",
        spec["path"]
    ))
}

/// Concurrent clients sending a bounded loop of requests, the way a Service routes traffic to
/// a pod until its endpoint is removed.
struct Load {
    routing: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Cheap pages and probes, each with the statuses it answers when all is well.
const LOAD_PATHS: &[(&str, &[u16])] = &[
    ("/healthz", &[200]),
    ("/readyz", &[200]),
    ("/", &[200]),
    ("/login", &[200]),
    ("/metrics", &[200]),
];
const LOAD_CLIENTS: usize = 8;
const LOAD_MAX_REQUESTS_PER_CLIENT: usize = 20_000;

impl Load {
    fn start(port: u16) -> Self {
        let routing = Arc::new(AtomicBool::new(true));
        let served = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let tasks = (0..LOAD_CLIENTS)
            .map(|n| {
                let (routing, served, failures, client) = (
                    routing.clone(),
                    served.clone(),
                    failures.clone(),
                    client.clone(),
                );
                tokio::spawn(async move {
                    for i in 0..LOAD_MAX_REQUESTS_PER_CLIENT {
                        if !routing.load(Ordering::SeqCst) {
                            return;
                        }
                        let (path, expected) = LOAD_PATHS[(n + i) % LOAD_PATHS.len()];
                        let url = format!("http://127.0.0.1:{port}{path}");
                        match client.get(&url).send().await {
                            Ok(r) if expected.contains(&r.status().as_u16()) => {
                                served.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(r) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{path}: {}", r.status())),
                            Err(error) => failures.lock().unwrap().push(format!("{path}: {error}")),
                        }
                    }
                })
            })
            .collect();
        Self {
            routing,
            served,
            failures,
            tasks,
        }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// The endpoint is gone: no new requests; the ones under way finish.
    async fn stop_routing(self) -> (usize, Vec<String>) {
        self.routing.store(false, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("load client");
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.served.load(Ordering::SeqCst), failures)
    }
}

fn signup_body(email: &str) -> String {
    serde_json::json!({
        "organisation": "Helm Drain", "name": "Ada", "email": email,
        "password": "correct horse battery staple",
    })
    .to_string()
}

/// A sign-up whose headers and first bytes are sent now and the rest later: in flight while
/// the server is told to stop.
async fn start_slow_signup(port: u16, body: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect while still routed");
    let head = format!(
        "POST /api/v1/signups HTTP/1.1\r\nHost: app.example.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..10]).await.unwrap();
    stream
}

async fn finish_slow_signup(mut stream: tokio::net::TcpStream, body: &str) -> String {
    stream.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if rest.len() >= length {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
    String::from_utf8_lossy(&reply).into_owned()
}

/// Every `*_FILE` variable the chart sets names a secret the programs read: pointed at a
/// missing file, the configuration is refused naming that variable (a misspelt name would be
/// ignored and the setting silently left at its default).
fn assert_secret_files_are_read(container: &Container) {
    for (name, _) in container.env.iter().filter(|(k, _)| k.ends_with("_FILE")) {
        let mut probe = Container::new(&container.plan);
        probe.argv = vec!["tenantkit-admin".to_owned(), "check".to_owned()];
        probe.set_env(name, "/nonexistent/secret".to_owned());
        let output = probe.command().output().expect("run tenantkit-admin check");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.code() == Some(2) && stderr.contains(name.as_str()),
            "{name} is not read by the configuration ({}): {stderr}",
            output.status
        );
    }
}

async fn create_empty_database(name: &str) {
    let mut owner = PgConnection::connect(&format!("{}/postgres", env("TENANTKIT_TEST_PG")))
        .await
        .expect("connect as the owner");
    owner
        .execute(sqlx::AssertSqlSafe(format!("create database {name}")))
        .await
        .expect("create the database");
    owner.close().await.ok();
}

/// The migration Job's command migrates a fresh database, and running it again (the next
/// upgrade's hook) changes nothing.
async fn run_migration_job(job: &Container, database: &str) {
    let url = format!("{}/{database}", env("TENANTKIT_TEST_PG"));
    let mut applied = Vec::new();
    for run in ["install", "upgrade"] {
        let output = job.command().output().expect("run the Job's command");
        assert!(
            output.status.success(),
            "the migration Job ({run}) failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut db = PgConnection::connect(&url).await.unwrap();
        let (count,): (i64,) =
            sqlx::query_as("select count(*) from _sqlx_migrations where success")
                .fetch_one(&mut db)
                .await
                .expect("the migrations' history");
        let (queue,): (bool,) = sqlx::query_as(
            "select exists(select 1 from information_schema.schemata where schema_name = 'apalis')",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        let (tenants,): (bool,) =
            sqlx::query_as("select to_regclass('public.tenants') is not null")
                .fetch_one(&mut db)
                .await
                .unwrap();
        db.close().await.ok();
        assert!(
            count > 0 && queue && tenants,
            "{run}: not migrated ({count} migrations, queue schema {queue}, tenants {tenants})"
        );
        applied.push(count);
    }
    assert_eq!(applied[0], applied[1], "the second run applied migrations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_chart_drives_the_real_binaries() {
    let started = Instant::now();
    let database = format!("helm_{}", Uuid::now_v7().simple());
    let scratch = Scratch(std::env::temp_dir().join(format!("tenantkit-{database}")));
    std::fs::create_dir_all(&scratch.0).unwrap();
    create_empty_database(&database).await;
    let plan: Value = serde_json::from_str(&python(
        "plan.py",
        &[
            "--database",
            &database,
            "--root",
            scratch.0.to_str().expect("utf-8 path"),
        ],
    ))
    .expect("the plan is JSON");

    // The hook Job, before anything else (as on `helm install`).
    run_migration_job(&Container::new(&plan["migrations"]), &database).await;
    for component in ["migrations", "web", "worker"] {
        assert_secret_files_are_read(&Container::new(&plan[component]));
    }
    // Stripe's secrets too, as the chart mounts them when billing is on.
    let billing_root = scratch.0.join("billing");
    let billing: Value = serde_json::from_str(&python(
        "plan.py",
        &[
            "--database",
            &database,
            "--root",
            billing_root.to_str().expect("utf-8 path"),
            "--billing",
        ],
    ))
    .expect("the plan is JSON");
    for component in ["web", "worker"] {
        let container = Container::new(&billing[component]);
        assert!(
            container
                .env("TENANTKIT_BILLING__STRIPE_SECRET_KEY_FILE")
                .is_some(),
            "billing on, but {component} gets no Stripe key"
        );
        assert_secret_files_are_read(&container);
    }

    // The web pod listens on the port its probes use; here on a free loopback port instead.
    let mut web = Container::new(&plan["web"]);
    let container_port = web.number("containerPort");
    assert_eq!(
        web.env("TENANTKIT_SERVER__BIND"),
        Some(format!("0.0.0.0:{container_port}").as_str()),
        "the server does not listen on its containerPort"
    );
    let probes = plan["web"]["probes"].clone();
    for kind in ["startup", "readiness", "liveness"] {
        assert_eq!(
            probes[kind]["port"].as_u64(),
            Some(container_port),
            "the {kind} probe asks another port"
        );
    }
    let port = free_port();
    web.set_env("TENANTKIT_SERVER__BIND", format!("127.0.0.1:{port}"));
    let worker = Container::new(&plan["worker"]);
    let mut web_pod = Pod::start("web", &web, &scratch.0);
    let mut worker_pod = Pod::start("worker", &worker, &scratch.0);

    // Startup, then readiness and liveness, exactly as rendered. The kubelet opens a new
    // connection for each probe.
    let client = &reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for kind in ["startup", "readiness", "liveness"] {
        if let Err(error) = wait_for_probe(client, port, &probes[kind]).await {
            panic!("{kind} probe: {error}\n{}", web_pod.logs());
        }
    }
    assert_eq!(
        probe(client, port, &probes["readiness"]).await,
        Ok(200),
        "ready means 200"
    );

    // The worker runs with the rendered settings too: a sign-up's email arrives.
    let email = format!("owner-{database}@example.test");
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/signups"))
        .header("content-type", "application/json")
        .body(signup_body(&email))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", web_pod.logs());

    // Traffic, then the pod is deleted: the kubelet runs preStop while the endpoint
    // controllers take the pod out of rotation (half the sleep here); only then SIGTERM.
    let load = Load::start(port);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_termination = load.served();
    assert!(before_termination > 0, "no request was served");
    let pre_stop: Vec<String> = plan["web"]["preStop"]
        .as_array()
        .expect("a preStop hook")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pre_stop[0], "sleep", "preStop is not a sleep");
    let sleep_secs: u64 = pre_stop[1].parse().expect("seconds");
    let grace = Duration::from_secs(web.number("terminationGracePeriodSeconds"));
    let deletion = Instant::now();
    let mut hook = Command::new(&pre_stop[0])
        .args(&pre_stop[1..])
        .spawn()
        .expect("run the preStop command");
    tokio::time::sleep(Duration::from_millis(sleep_secs * 500)).await;
    let served_while_terminating = load.served() - before_termination;
    // Slow requests that arrived just before the endpoint was removed.
    let slow: Vec<String> = (0..4)
        .map(|i| signup_body(&format!("drain-{i}-{database}@example.test")))
        .collect();
    let mut in_flight = Vec::new();
    for body in &slow {
        in_flight.push((start_slow_signup(port, body).await, body));
    }
    let (served, failures) = load.stop_routing().await;
    assert!(
        tokio::task::spawn_blocking(move || hook.wait())
            .await
            .unwrap()
            .unwrap()
            .success(),
        "the preStop command failed"
    );
    web_pod.sigterm();
    let sigterm_at = deletion.elapsed();

    // Readiness fails at once: the listener is closed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        probe(client, port, &probes["readiness"]).await.is_err(),
        "still ready after SIGTERM"
    );
    // The requests in flight are served to the end.
    for (stream, body) in in_flight {
        let reply = finish_slow_signup(stream, body).await;
        assert!(
            reply.starts_with("HTTP/1.1 202"),
            "an in-flight request was not served: {reply:?}\n{}",
            web_pod.logs()
        );
    }
    let remaining = grace.saturating_sub(deletion.elapsed());
    let status = web_pod.exit_within(remaining).await;
    let exited_at = deletion.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "the server did not exit 0 within the grace period ({grace:?}): {status:?}\n{}",
        web_pod.logs()
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed while draining: {:?}",
        failures.len(),
        served + failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        served_while_terminating > 0,
        "no request was served during preStop"
    );

    // Every sign-up's email went out through the worker, then the worker stops cleanly.
    for recipient in std::iter::once(email.clone())
        .chain((0..slow.len()).map(|i| format!("drain-{i}-{database}@example.test")))
    {
        let received = mail::wait_for(&recipient, 1, Duration::from_secs(30)).await;
        assert!(
            !received.is_empty(),
            "no email reached {recipient}\n{}",
            worker_pod.logs()
        );
    }
    worker_pod.sigterm();
    let worker_grace = Duration::from_secs(worker.number("terminationGracePeriodSeconds"));
    let worker_status = worker_pod.exit_within(worker_grace).await;
    assert!(
        worker_status.is_some_and(|s| s.success()),
        "the worker did not exit 0 within its grace period ({worker_grace:?}): {worker_status:?}\n{}",
        worker_pod.logs()
    );
    println!(
        "chart-driven run: migrations applied twice; probes {}; {served} requests by {LOAD_CLIENTS} clients, \
         {served_while_terminating} during preStop, 0 failed; SIGTERM at {:.1}s after deletion \
         ({sleep_secs}s preStop), exit at {:.1}s of a {}s grace period; {} emails; {:.1}s in all",
        ["startup", "readiness", "liveness"]
            .map(|k| format!("{k} {}", probes[k]["path"].as_str().unwrap_or_default()))
            .join(", "),
        sigterm_at.as_secs_f64(),
        exited_at.as_secs_f64(),
        grace.as_secs(),
        slow.len() + 1,
        started.elapsed().as_secs_f64(),
    );
}
