//! The PostgreSQL baseline: a throwaway PostgreSQL server (Debian's binaries), a span table
//! shaped like Promscale's (jsonb tag maps, its trace-id and tag indexes, a start-time index
//! standing in for the hypertable's), fed by `COPY` from the same synthetic workload.

use super::server::dir_bytes;
use crate::gen::{Generator, WorkloadConfig};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::SinkExt;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

/// Promscale's storage layout, minus what needs TimescaleDB or the promscale extension:
/// PK (span_id, trace_id, start_time), btree (trace_id, parent_span_id) INCLUDE (span_id),
/// GIN jsonb_path_ops on span_tags and resource_tags, and a start_time btree (the hypertable's
/// time index). Tags are stored denormalised as jsonb rather than as ids into tag tables.
pub const SCHEMA: &str = "
create table span (
    trace_id uuid not null,
    span_id bigint not null,
    parent_span_id bigint,
    trace_state text,
    service_name text not null,
    span_name text not null,
    span_kind text not null,
    start_time timestamptz not null,
    end_time timestamptz not null,
    duration_ms double precision not null,
    status_code text not null,
    status_message text,
    span_tags jsonb not null,
    resource_tags jsonb not null,
    events jsonb,
    primary key (span_id, trace_id, start_time)
);
create index span_trace_parent on span using btree (trace_id, parent_span_id) include (span_id);
create index span_tags_gin on span using gin (span_tags jsonb_path_ops);
create index span_resource_tags_gin on span using gin (resource_tags jsonb_path_ops);
create index span_start_time on span using btree (start_time);
";

/// A PostgreSQL server in a temporary directory.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres_user: bool,
}

fn find_bin_dir() -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().ok_or_else(|| anyhow!("no PostgreSQL server found under /usr/lib/postgresql (run scripts/install-postgres.sh)"))
}

impl Postgres {
    /// initdb + start on a free port. PostgreSQL refuses to run as root, so as root the
    /// server runs as the `postgres` user Debian's package creates.
    pub fn start(dir: &Path) -> Result<Postgres> {
        let bin = find_bin_dir()?;
        std::fs::create_dir_all(dir)?;
        let as_postgres_user = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false);
        if as_postgres_user {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let pg = Postgres {
            bin,
            dir: dir.to_path_buf(),
            port,
            as_postgres_user,
        };
        let data = pg.data_dir();
        pg.run_pg(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "osprey",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let opts = format!(
            "-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c shared_buffers=2GB -c max_wal_size=8GB \
             -c checkpoint_timeout=30min -c maintenance_work_mem=1GB -c work_mem=256MB",
            sock = dir.display()
        );
        let log = format!("{}/postgres.log", dir.display());
        pg.run_pg(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &opts, "-w", "start"],
        )?;
        Ok(pg)
    }

    fn data_dir(&self) -> String {
        format!("{}/data", self.dir.display())
    }

    fn run_pg(&self, tool: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args);
        run(&mut cmd)
    }

    pub async fn connect(&self) -> Result<Client> {
        let conf = format!(
            "host=127.0.0.1 port={} user=osprey dbname=postgres",
            self.port
        );
        let (client, conn) = tokio_postgres::connect(&conf, NoTls)
            .await
            .context("connecting to the baseline PostgreSQL")?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "baseline PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    /// Bytes under the data directory (table, indexes, WAL).
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(Path::new(&self.data_dir()))
    }

    pub fn stop(&self) -> Result<()> {
        self.run_pg(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"],
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// What loading the baseline measured.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    pub spans: u64,
    pub elapsed: Duration,
    pub table_bytes: u64,
    pub total_relation_bytes: u64,
}

/// Loads `spans` spans of the workload with `streams` concurrent COPY streams, each COPY
/// committed per batch of about `batch` spans (synchronous_commit on: durable like Osprey's
/// `--fsync always`).
pub async fn load(
    pg: &Postgres,
    workload: WorkloadConfig,
    spans: u64,
    streams: usize,
    batch: usize,
) -> Result<LoadResult> {
    let client = pg.connect().await?;
    client
        .batch_execute(SCHEMA)
        .await
        .context("creating the baseline schema")?;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams.max(1) {
        let client = pg.connect().await?;
        let (next, sent) = (next.clone(), sent.clone());
        let cfg = workload.clone();
        tasks.push(tokio::spawn(async move {
            let mut gen = Generator::new(cfg)?;
            let mut buf = String::with_capacity(8 << 20);
            loop {
                let claimed = sent.fetch_add(batch as u64, std::sync::atomic::Ordering::Relaxed);
                if claimed >= spans {
                    break;
                }
                let limit = (spans - claimed).min(batch as u64) as usize;
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let n = gen.fill_batch(index, limit, limit);
                if n == 0 {
                    continue;
                }
                buf.clear();
                gen.for_each_span(|service, res, span| {
                    copy_row(&mut buf, service, &res.attributes, span)
                });
                let sink = client
                    .copy_in("copy span from stdin")
                    .await
                    .context("starting COPY")?;
                futures::pin_mut!(sink);
                sink.send(Bytes::from(std::mem::take(&mut buf)))
                    .await
                    .context("COPY data")?;
                sink.finish().await.context("finishing COPY")?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = t0.elapsed();
    client.batch_execute("vacuum analyze span").await?;
    let row = client
        .query_one(
            "select count(*), pg_table_size('span'), pg_total_relation_size('span') from span",
            &[],
        )
        .await?;
    Ok(LoadResult {
        spans: row.get::<_, i64>(0) as u64,
        elapsed,
        table_bytes: row.get::<_, i64>(1) as u64,
        total_relation_bytes: row.get::<_, i64>(2) as u64,
    })
}

/// Escapes a value for COPY's text format.
fn copy_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn ts(out: &mut String, ns: u64) {
    let secs = (ns / 1_000_000_000) as i64;
    let micros = (ns % 1_000_000_000) / 1000;
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let _ = write!(out, "{}.{micros:06}+00", t.format("%Y-%m-%d %H:%M:%S"));
}

fn span_id_i64(id: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(id.try_into().ok()?))
}

fn json_value(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        Some(Av::StringValue(s)) => J::String(s.clone()),
        Some(Av::BoolValue(b)) => J::Bool(*b),
        Some(Av::IntValue(i)) => J::from(*i),
        Some(Av::DoubleValue(d)) => J::from(*d),
        Some(Av::BytesValue(b)) => J::String(hex::encode(b)),
        Some(Av::ArrayValue(a)) => J::Array(a.values.iter().map(json_value).collect()),
        Some(Av::KvlistValue(kv)) => json_map(&kv.values),
        Some(Av::StringValueStrindex(_)) | None => J::Null,
    }
}

fn json_map(kvs: &[KeyValue]) -> serde_json::Value {
    serde_json::Value::Object(
        kvs.iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.as_ref().map(json_value).unwrap_or_default(),
                )
            })
            .collect(),
    )
}

/// One span as a COPY text row in [`SCHEMA`]'s column order.
pub fn copy_row(out: &mut String, service: &str, resource: &[KeyValue], s: &Span) {
    let _ = write!(out, "{}\t", hex::encode(&s.trace_id));
    let _ = write!(out, "{}\t", span_id_i64(&s.span_id).unwrap_or(0));
    match span_id_i64(&s.parent_span_id) {
        Some(p) => {
            let _ = write!(out, "{p}\t");
        }
        None => out.push_str("\\N\t"),
    }
    copy_text(out, &s.trace_state);
    out.push('\t');
    copy_text(out, service);
    out.push('\t');
    copy_text(out, &s.name);
    out.push('\t');
    out.push_str(
        SpanKind::try_from(s.kind)
            .unwrap_or(SpanKind::Unspecified)
            .as_str_name(),
    );
    out.push('\t');
    ts(out, s.start_time_unix_nano);
    out.push('\t');
    ts(out, s.end_time_unix_nano);
    let _ = write!(
        out,
        "\t{}\t",
        s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as f64 / 1e6
    );
    let status = s.status.as_ref();
    out.push_str(
        StatusCode::try_from(status.map_or(0, |st| st.code))
            .unwrap_or(StatusCode::Unset)
            .as_str_name(),
    );
    out.push('\t');
    copy_text(out, status.map_or("", |st| st.message.as_str()));
    out.push('\t');
    copy_text(out, &json_map(&s.attributes).to_string());
    out.push('\t');
    copy_text(out, &json_map(resource).to_string());
    out.push('\t');
    if s.events.is_empty() {
        out.push_str("\\N");
    } else {
        let events: Vec<serde_json::Value> = s
            .events
            .iter()
            .map(|e| serde_json::json!({"time_unix_nano": e.time_unix_nano, "name": e.name, "attributes": json_map(&e.attributes)}))
            .collect();
        copy_text(out, &serde_json::Value::Array(events).to_string());
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_and_have_every_column() {
        let mut gen = Generator::new(WorkloadConfig {
            seed: 3,
            services: 20,
            start_offset: Duration::ZERO,
            base_time_ns: 1_700_000_000_000_000_000,
        })
        .unwrap();
        let n = gen.fill_batch(0, 200, 10_000);
        let mut out = String::new();
        gen.for_each_span(|svc, res, span| copy_row(&mut out, svc, &res.attributes, span));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), n);
        for l in lines {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 15, "{l}");
            assert_eq!(cols[0].len(), 32);
            assert!(cols[7].ends_with("+00"), "{}", cols[7]);
            assert!(
                serde_json::from_str::<serde_json::Value>(&cols[12].replace("\\\\", "\\")).is_ok(),
                "{}",
                cols[12]
            );
        }
        let mut esc = String::new();
        copy_text(&mut esc, "a\tb\nc\\d");
        assert_eq!(esc, "a\\tb\\nc\\\\d");
    }
}
