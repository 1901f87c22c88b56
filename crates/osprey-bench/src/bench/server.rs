//! An `osprey up` child process for benchmarks: free loopback ports, readiness, `/proc`
//! readings of its CPU time and memory, `/metrics` and `/api/sql` calls, graceful stop.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `osprey up`.
pub struct Server {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT` of the OTLP/gRPC receiver.
    pub grpc_endpoint: String,
    /// `http://127.0.0.1:PORT` of the query API.
    pub query_url: String,
    /// The PostgreSQL wire port (database `osprey`, no password).
    pub pg_port: u16,
    http: reqwest::Client,
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    /// Starts `bin up` on `data_dir` with free ports and `extra` flags; waits until ready.
    pub async fn start(
        bin: &Path,
        data_dir: &Path,
        log: &Path,
        extra: &[String],
    ) -> Result<Server> {
        let grpc = free_port()?;
        let http_port = free_port()?;
        let pg_port = free_port()?;
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--otlp-grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
            .args(["--pg-addr", &format!("127.0.0.1:{pg_port}")])
            .args(["--otlp-http-addr", "none", "--grpc-addr", "none"])
            .args(["--jaeger-thrift-addr", "none", "--jaeger-grpc-addr", "none"])
            .args(["--zipkin-addr", "none"])
            .args(extra)
            .env("OSPREY_LOG", "info,datafusion=warn,h2=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let mut server = Server {
            child,
            pid,
            grpc_endpoint: format!("http://127.0.0.1:{grpc}"),
            query_url: format!("http://127.0.0.1:{http_port}"),
            pg_port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()?,
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "osprey up exited during startup ({status}); see {}",
                    log.display()
                );
            }
            let ready = server
                .http
                .get(format!("{}/readyz", server.query_url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(ready, Ok(r) if r.status().is_success()) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "osprey up was not ready after 10 minutes; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// User+system CPU seconds the server has used so far.
    pub fn cpu_secs(&self) -> Result<f64> {
        proc_cpu_secs(self.pid)
    }

    /// Peak resident set size so far (VmHWM), bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        proc_status_kib(self.pid, "VmHWM:").map(|k| k * 1024)
    }

    /// `/metrics` as name → value.
    pub async fn metrics(&self) -> Result<HashMap<String, f64>> {
        let text = self
            .http
            .get(format!("{}/metrics", self.query_url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect())
    }

    /// GETs `path` on the query port (with `accept` as Accept header); fails unless 200.
    pub async fn get(&self, path: &str, accept: &str) -> Result<bytes::Bytes> {
        let resp = self
            .http
            .get(format!("{}{path}", self.query_url))
            .header("accept", accept)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        Ok(body)
    }

    /// Runs a query through `POST /api/sql`; returns the rows.
    pub async fn sql(&self, sql: &str) -> Result<Vec<Vec<Value>>> {
        let resp = self
            .http
            .post(format!("{}/api/sql", self.query_url))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .context("/api/sql answered with a body that is not JSON")?;
        if !status.is_success() {
            bail!(
                "query failed ({status}): {}\n  query: {sql}",
                body.get("error").and_then(Value::as_str).unwrap_or("?")
            );
        }
        let rows = body
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("/api/sql answer has no rows"))?;
        Ok(rows
            .iter()
            .map(|r| r.as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// SIGTERM, then waits for the graceful shutdown (which flushes the buffer to Parquet).
    pub async fn stop(mut self) -> Result<Duration> {
        let t0 = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Some(st) = self.child.try_wait()? {
                if !st.success() {
                    bail!("osprey up exited with {st} on shutdown");
                }
                return Ok(t0.elapsed());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("osprey up did not stop within 10 minutes of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ: 100 on every Linux build that
/// matters; `getconf CLK_TCK` when available).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn proc_cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ticks / clock_ticks())
}

pub fn proc_status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
}

/// Total size of the regular files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
