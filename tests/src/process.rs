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
