//! Reads what the real SMTP server (aiosmtpd, Maildir) received.

use std::{path::PathBuf, time::Duration};

/// Every received message's raw text.
pub fn received() -> Vec<String> {
    let dir = PathBuf::from(crate::env("TENANTKIT_TEST_MAILDIR"));
    let mut messages = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    messages.push(text);
                }
            }
        }
    }
    messages
}

/// Messages addressed to `recipient`, waiting up to `timeout` for at least `count`.
pub async fn wait_for(recipient: &str, count: usize, timeout: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let found: Vec<String> = received()
            .into_iter()
            .filter(|m| {
                m.lines()
                    .any(|l| l.starts_with("To: ") && l.contains(recipient))
            })
            .collect();
        if found.len() >= count || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
