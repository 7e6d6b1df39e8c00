//! Browser journeys: node scripts under `tests/browser` that drive Debian's Chromium with
//! playwright-core against the real application. `scripts/test` installs Chromium, Node.js and
//! the scripts' npm packages (`npm ci --prefix tests/browser`).

use std::{
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
};

/// How long one journey may take unless `TENANTKIT_BROWSER_TIMEOUT_SECS` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The folder of the journey scripts and their `package.json`.
pub fn scripts_dir() -> PathBuf {
    crate::tests_crate_dir().join("browser")
}

/// Where screenshots go: `TENANTKIT_TEST_ARTIFACTS` (`scripts/test` points it into the cargo
/// target folder), else a folder in the system's temporary folder.
pub fn artifacts_root() -> PathBuf {
    std::env::var_os("TENANTKIT_TEST_ARTIFACTS")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tenantkit-browser-artifacts"))
}

/// What a journey that passed printed, and where its screenshots are.
pub struct JourneyOutput {
    pub output: String,
    pub artifacts: PathBuf,
}

/// Runs `node tests/browser/<script>` with `env` added to this process's environment, echoing
/// its output as it comes (nextest shows it for a failed test), and fails the test with that
/// output when the script exits non-zero or outlives the time limit. The script gets
/// `TENANTKIT_TEST_ARTIFACTS` set to a folder of its own (emptied first) under
/// [`artifacts_root`].
pub async fn run_journey(script: &str, env: &[(&str, String)]) -> JourneyOutput {
    let dir = scripts_dir();
    let path = dir.join(script);
    assert!(path.is_file(), "no browser journey at {}", path.display());
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{} has no node_modules/playwright-core: run `npm ci --prefix tests/browser` \
         (scripts/test does)",
        dir.display()
    );
    let name = script.trim_end_matches(".mjs").trim_end_matches(".js");
    let artifacts = artifacts_root().join(name);
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", artifacts.display()));
    let limit = std::env::var("TENANTKIT_BROWSER_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);

    eprintln!(
        "browser journey {script}: screenshots in {}",
        artifacts.display()
    );
    let mut command = Command::new("node");
    command
        .arg(&path)
        .current_dir(&dir)
        .env("TENANTKIT_TEST_ARTIFACTS", &artifacts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap_or_else(|e| {
        panic!("cannot start node ({e}): scripts/test installs Node.js and Chromium")
    });

    let lines = Arc::new(Mutex::new(Vec::new()));
    let pumps = [
        tokio::spawn(pump(child.stdout.take(), lines.clone(), name.to_owned())),
        tokio::spawn(pump(child.stderr.take(), lines.clone(), name.to_owned())),
    ];
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => Ok(status.expect("wait for node")),
        Err(_) => Err(stop(&mut child).await),
    };
    for pump in pumps {
        // The pipes close with the process; a grandchild holding them must not hang the test.
        let _ = tokio::time::timeout(Duration::from_secs(5), pump).await;
    }
    let output = lines.lock().expect("output lines").join("\n");

    let failure = match status {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("exited with {status}")),
        Err(how) => Some(format!(
            "did not finish within {} s (then {how})",
            limit.as_secs()
        )),
    };
    if let Some(failure) = failure {
        panic!(
            "browser journey {script} {failure}; screenshots in {}\n\
             ---- output of node {} ----\n{output}\n---- end of output ----",
            artifacts.display(),
            path.display()
        );
    }
    JourneyOutput { output, artifacts }
}

/// Echoes each line to stderr as it arrives and keeps it.
async fn pump(
    stream: Option<impl AsyncRead + Unpin>,
    lines: Arc<Mutex<Vec<String>>>,
    name: String,
) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        eprintln!("[{name}] {line}");
        lines.lock().expect("output lines").push(line);
    }
}

/// SIGTERM first (Playwright closes the browser on it), then SIGKILL; says which it took.
async fn stop(child: &mut Child) -> &'static str {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let stopped: Result<std::io::Result<ExitStatus>, _> =
            tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        if stopped.is_ok() {
            return "stopped with SIGTERM";
        }
    }
    let _ = child.kill().await;
    "killed"
}
