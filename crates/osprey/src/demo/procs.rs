//! The processes of `osprey demo`: each in its own process group with its output in a log
//! file, readiness polled over HTTP, stopped with the signal that lets it flush its spans.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A started process: what it is, its log, the child (own process group).
pub struct Proc {
    pub name: String,
    log: PathBuf,
    child: Child,
    /// Signal asking it to stop gracefully (Python flushes its spans on SIGINT, not on SIGTERM).
    stop_signal: &'static str,
}

impl Proc {
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        logs: &Path,
        stop_signal: &'static str,
    ) -> Result<Proc> {
        let log = logs.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = file.try_clone().context("duplicating a log file handle")?;
        cmd.stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({program})"))?;
        Ok(Proc {
            name: name.to_string(),
            log,
            child,
            stop_signal,
        })
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Signals the process group, waits up to `grace`, then kills it.
    pub async fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.child.id() {
            let sent = std::process::Command::new("kill")
                .args(["-s", self.stop_signal, "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
            if !sent.is_ok_and(|s| s.success()) {
                let _ = self.child.start_kill();
            }
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(process = %self.name, "did not stop in time; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// Polls `url` until it answers 2xx; fails at once when `proc` exits.
pub async fn wait_http(proc: &mut Proc, url: &str, timeout: Duration) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = proc.exited() {
            bail!(
                "{} exited ({st}) before it was ready:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{} not ready at {url} after {timeout:?}:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
