//! Real processes: the built server binary, and a private PostgreSQL cluster for tests that
//! stop the database.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A path to one of the workspace's binaries, built by `scripts/test`.
pub fn binary(name: &str) -> PathBuf {
    PathBuf::from(crate::env("TENANTKIT_TEST_BIN_DIR")).join(name)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections on `port`.
pub async fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

pub fn sigterm(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
}

/// A PostgreSQL cluster of the test's own, which it may stop and start at will.
pub struct PrivatePostgres {
    dir: RemovedOnDrop,
    pub port: u16,
}

/// A folder deleted with its owner (after the cluster in it has stopped).
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn as_postgres_user(program: &std::path::Path) -> Command {
    // initdb refuses to run as root; scripts/test has made sure a `postgres` user exists.
    if nix::unistd::Uid::effective().is_root() {
        let mut command = Command::new("runuser");
        command.arg("-u").arg("postgres").arg("--").arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let bin = PathBuf::from(crate::env("TENANTKIT_TEST_PG_BIN"));
        let path =
            std::env::temp_dir().join(format!("tenantkit-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).expect("temp dir");
        if nix::unistd::Uid::effective().is_root() {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(&path)
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let dir = RemovedOnDrop(path);
        let status = as_postgres_user(&bin.join("initdb"))
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "-D",
            ])
            .arg(dir.0.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        let pg = Self {
            dir,
            port: free_port(),
        };
        pg.start_again();
        pg
    }

    /// Migrates the cluster's `postgres` database and lets the application role log in with
    /// `password`; the application's URL.
    pub async fn migrated_app_url(&self, password: &str) -> String {
        let status = Command::new(binary("tenantkit-admin"))
            .args(["migrate", "--database-url", &self.url("postgres")])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "migrate failed");
        let pool = sqlx::PgPool::connect(&self.url("postgres")).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "alter role tenantkit_app login password '{password}'"
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        format!(
            "postgres://tenantkit_app:{password}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn start_again(&self) {
        let bin = PathBuf::from(crate::env("TENANTKIT_TEST_PG_BIN"));
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.0.display()
        );
        let status = as_postgres_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .arg("-l")
            .arg(self.dir.0.join("log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl start");
        assert!(status.success(), "pg_ctl start failed");
    }

    pub fn stop(&self) {
        let bin = PathBuf::from(crate::env("TENANTKIT_TEST_PG_BIN"));
        let _ = as_postgres_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn sigkill(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("send SIGKILL");
}

/// A Redis of the test's own, which it may stop and start at will. It saves its data when
/// stopped and loads it when started again, as a Redis with persistence does.
pub struct PrivateRedis {
    dir: RemovedOnDrop,
    pub port: u16,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let path =
            std::env::temp_dir().join(format!("tenantkit-redis-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).expect("temp dir");
        let redis = Self {
            dir: RemovedOnDrop(path),
            port: free_port(),
        };
        redis.start_again();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn start_again(&self) {
        let status = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir.0)
            .arg("--pidfile")
            .arg(self.dir.0.join("redis.pid"))
            .arg("--logfile")
            .arg(self.dir.0.join("redis.log"))
            .args(["--save", "3600 1", "--daemonize", "yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-server");
        assert!(status.success(), "redis-server failed");
        for _ in 0..100 {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the private Redis did not answer");
    }

    fn ping(&self) -> bool {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "ping"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Saves and stops; returns once the port is closed.
    pub fn stop(&self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown", "save"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the private Redis did not stop");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown", "nosave"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A TCP relay to `upstream` (host:port) that holds back every chunk the upstream server sends
/// for `delay`: a slow SMTP server, or a distant Redis. Runs until the test's runtime ends.
/// Returns the relay's port.
pub async fn slow_replies_relay(upstream: String, delay: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let port = listener.local_addr().expect("relay address").port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                let up = async {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                };
                let down = async {
                    let mut buffer = [0u8; 16 * 1024];
                    loop {
                        let n = match server_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tokio::time::sleep(delay).await;
                        if client_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    port
}

/// The server binary as operators run it, configured through the environment only, listening
/// on `port`; its logs discarded. `extra` adds or overrides variables.
pub fn server_command(
    database_url: &str,
    redis_url: &str,
    port: u16,
    extra: &[(&str, &str)],
) -> Command {
    let mut command = Command::new(binary("tenantkit-server"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENANTKIT_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("SMTP_URL", crate::env("TENANTKIT_TEST_SMTP"))
        .env("TENANTKIT_SERVER__SHUTDOWN_TIMEOUT_SECS", "10")
        .env("TENANTKIT_DATABASE__ACQUIRE_TIMEOUT_SECS", "1")
        .env("TENANTKIT_LOG__FILTER", "warn")
        .env(
            "TENANTKIT_STORAGE__LOCAL__ROOT",
            std::env::temp_dir().join(format!(
                "tenantkit-test-files-{}",
                uuid::Uuid::now_v7().simple()
            )),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in extra {
        command.env(key, value);
    }
    show_logs(&mut command);
    command
}

/// With `TENANTKIT_TEST_LOGS` set (an env filter, e.g. `info`), a binary's logs go to the test's
/// output instead of nowhere: for finding out why a test of the real binaries failed.
pub fn show_logs(command: &mut Command) {
    if let Ok(filter) = std::env::var("TENANTKIT_TEST_LOGS") {
        command
            .env("TENANTKIT_LOG__FILTER", filter)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
    }
}
