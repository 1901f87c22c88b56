//! `osprey bench query`: latency of the query front ends (Jaeger, Tempo, SQL over HTTP and
//! over the PostgreSQL protocol) on a store filled by the load generator, after a restart
//! so that the data is read from Parquet segments as in production.

use super::report::write_marked;
use super::server::Server;
use super::{ms, standard_load};
use crate::loadgen::{percentile, run_loadgen};
use anyhow::{bail, Context, Result};
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

const BEGIN: &str =
    "<!-- osprey bench query: begin (generated; `osprey bench query` rewrites it) -->";
const END: &str = "<!-- osprey bench query: end -->";

#[derive(clap::Args, Debug, Clone)]
pub struct QueryArgs {
    /// Spans to load (over one hour of span start times)
    #[arg(long, default_value_t = 2_000_000)]
    pub spans: u64,
    /// Lookups per trace-by-id interface
    #[arg(long, default_value_t = 100)]
    pub lookups: usize,
    /// Jaeger searches to time
    #[arg(long, default_value_t = 50)]
    pub searches: usize,
    /// Times to run /api/dependencies over 24 h
    #[arg(long, default_value_t = 5)]
    pub dependency_runs: usize,
    /// Where to put the data directory [default: a temporary directory]
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The `osprey` binary to benchmark [default: this one]
    #[arg(long)]
    pub osprey_bin: Option<PathBuf>,
    /// The Markdown file whose `bench query` section is replaced with the results
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

/// Times `n` runs of `f`, sorted (ms).
async fn timed<F, Fut>(n: usize, mut f: F) -> Result<Vec<f64>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await?;
        out.push(ms(t.elapsed()));
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

fn row(s: &mut String, what: &str, target: &str, lat: &[f64]) {
    let _ = writeln!(
        s,
        "| {what} | {} | {:.1} | {:.1} | {:.1} | {target} |",
        lat.len(),
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(a: QueryArgs) -> Result<()> {
    let bin = match &a.osprey_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("locating the osprey binary")?,
    };
    let tmp = super::work_tempdir(a.work_dir.as_deref())?;
    let data = tmp.path().join("osprey-data");
    eprintln!("bench query: loading {} spans", a.spans);
    let server = Server::start(&bin, &data, &tmp.path().join("load.log"), &[]).await?;
    let load = standard_load(&server, a.spans);
    let report = run_loadgen(load).await?;
    server.stop().await?;
    let server = Server::start(&bin, &data, &tmp.path().join("query.log"), &[]).await?;

    let ids: Vec<String> = server
        .sql(&format!(
            "select distinct trace_id from spans where random() < {} limit {}",
            ((a.lookups as f64 * 4.0) / report.traces_sent.max(1) as f64).min(1.0),
            a.lookups
        ))
        .await?
        .iter()
        .filter_map(|r| r.first().and_then(|v| v.as_str()).map(str::to_string))
        .collect();
    if ids.is_empty() {
        bail!("found no trace ids to look up");
    }
    // Searches: service + operation + one attribute value seen on that operation.
    let searches: Vec<(String, String, String, String)> = server
        .sql(&format!(
            "select service_name, span_name, span_attributes from spans \
             where random() < 0.01 limit {}",
            a.searches * 4
        ))
        .await?
        .iter()
        .filter_map(|r| {
            let s = |i: usize| r.get(i).and_then(|v| v.as_str()).map(str::to_string);
            let (k, v) = r
                .get(2)?
                .as_object()?
                .iter()
                .find_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))?;
            Some((s(0)?, s(1)?, k, v))
        })
        .take(a.searches)
        .collect();
    if searches.is_empty() {
        bail!("found no span to build searches from");
    }

    let warm = &ids[0];
    server
        .sql(&format!("select * from spans where trace_id = '{warm}'"))
        .await?;
    let sql = timed(ids.len(), |i| {
        let q = format!("select * from spans where trace_id = '{}'", ids[i]);
        let s = &server;
        async move {
            if s.sql(&q).await?.is_empty() {
                bail!("SQL lookup came back empty");
            }
            Ok(())
        }
    })
    .await?;
    let jaeger = timed(ids.len(), |i| {
        let path = format!("/api/traces/{}", ids[i]);
        let s = &server;
        async move { s.get(&path, "application/json").await.map(|_| ()) }
    })
    .await?;
    let tempo = timed(ids.len(), |i| {
        let path = format!("/tempo/api/v2/traces/{}", ids[i]);
        let s = &server;
        async move { s.get(&path, "application/protobuf").await.map(|_| ()) }
    })
    .await?;
    let conf = format!(
        "host=127.0.0.1 port={} user=bench dbname=osprey",
        server.pg_port
    );
    let (client, conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls)
        .await
        .context("connecting to osprey's PostgreSQL port")?;
    tokio::spawn(conn);
    let pg = timed(ids.len(), |i| {
        let q = format!(
            "select span_id, span_name, start_time, duration_ms from spans where trace_id = '{}'",
            ids[i]
        );
        let c = &client;
        async move {
            if c.simple_query(&q).await?.is_empty() {
                bail!("PG lookup came back empty");
            }
            Ok(())
        }
    })
    .await?;
    let search = timed(searches.len(), |i| {
        let (svc, op, k, v) = &searches[i];
        let tags = serde_json::json!({ k.as_str(): v }).to_string();
        let path = format!(
            "/api/traces?service={}&operation={}&tags={}&lookback=1h&limit=20",
            encode(svc),
            encode(op),
            encode(&tags)
        );
        let s = &server;
        async move { s.get(&path, "application/json").await.map(|_| ()) }
    })
    .await?;
    let deps = timed(a.dependency_runs.max(1), |_| {
        let s = &server;
        async move {
            s.get("/api/dependencies?lookback=86400000", "application/json")
                .await
                .map(|_| ())
        }
    })
    .await?;
    server.stop().await?;

    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "## Query front ends (`osprey bench query --spans {}`)\n\n\
         {} spans ({} traces) over one hour, read back from Parquet after a restart; \
         sequential requests from one client on the same 2-core machine.\n",
        a.spans, report.spans_acked, report.traces_sent
    );
    let _ = writeln!(
        s,
        "| query | runs | p50 ms | p99 ms | max ms | target (at 50M spans) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    row(&mut s, "trace by id, SQL (`/api/sql`)", "< 20 ms p99", &sql);
    row(&mut s, "trace by id, PostgreSQL wire", "< 20 ms p99", &pg);
    row(
        &mut s,
        "trace by id, Jaeger `/api/traces/{id}`",
        "< 20 ms p99",
        &jaeger,
    );
    row(
        &mut s,
        "trace by id, Tempo `/api/v2/traces/{id}` (protobuf)",
        "< 20 ms p99",
        &tempo,
    );
    row(
        &mut s,
        "Jaeger search: service + operation + tag, 1 h",
        "< 200 ms p99",
        &search,
    );
    row(&mut s, "Jaeger `/api/dependencies`, 24 h", "< 1 s", &deps);
    let _ = writeln!(
        s,
        "\nReproduce: `cargo build --release && target/release/osprey bench query --spans {}`.",
        a.spans
    );
    let _ = writeln!(s, "{END}");
    println!("{s}");
    write_marked(&a.out, &s, BEGIN, END)?;
    eprintln!("bench query: results written to {}", a.out.display());
    Ok(())
}
