//! `osprey bench ui`: server time of the web UI's pages. Loads spans with the load generator
//! (or reuses a data directory), then sends, page by page, the same SQL statements the
//! browser sends to `POST /api/sql` — concurrently where the page runs them concurrently —
//! and reports the wall time until the last answer (p50/p95 over repeats) and the server's
//! memory. The statements are kept in [`pages`] and must follow the JS in
//! crates/osprey-ui/assets/ (each builder names the file it mirrors).

pub mod pages;

use super::report::write_marked;
use super::server::Server;
use super::{ms, standard_load, with_rss_sampling, SERVICES};
use crate::loadgen::{percentile, run_loadgen};
use anyhow::{bail, Context, Result};
use pages::{
    lit, search_check_sql, search_ids_sql, search_rows_sql, statements, time_where, Ctx, PAGES,
    RECENT_WINDOWS_MS, SEARCH_LIMIT, SERVER_KINDS,
};
use serde_json::Value;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BEGIN: &str = "<!-- osprey bench ui: begin (generated; `osprey bench ui` rewrites it) -->";
const END: &str = "<!-- osprey bench ui: end -->";

#[derive(clap::Args, Debug, Clone)]
pub struct UiArgs {
    /// Spans to load (over one hour of span start times)
    #[arg(long, default_value_t = 10_000_000)]
    pub spans: u64,
    /// Timed loads of each page (after one warm-up load)
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Time ranges to show, ending just after the newest span (the first covers all spans)
    #[arg(long, default_value = "2h,15m", value_delimiter = ',', value_parser = humantime::parse_duration)]
    pub ranges: Vec<Duration>,
    /// Use (and keep) this data directory; when it already holds spans, nothing is loaded
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where to put a temporary data directory [default: the system temp dir]
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The `osprey` binary to benchmark [default: this one]
    #[arg(long)]
    pub osprey_bin: Option<PathBuf>,
    /// The Markdown file whose `bench ui` section is replaced with the results
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

/// Sends `stmts` at once; the wall time until the last answer, and the answers.
async fn concurrently(
    server: &Server,
    stmts: &[String],
) -> Result<(Duration, Vec<Vec<Vec<Value>>>)> {
    let t = Instant::now();
    let answers = futures::future::try_join_all(stmts.iter().map(|s| server.sql(s))).await?;
    Ok((t.elapsed(), answers))
}

/// One load of `page`: its server time (the sum over its dependent rounds of requests).
async fn load_page(server: &Server, page: &str, c: &Ctx) -> Result<Duration> {
    let (mut total, answers) = concurrently(server, &statements(page, c)).await?;
    if answers.iter().all(|a| a.is_empty()) {
        bail!("page {page}: every statement came back empty");
    }
    if page == "search" {
        let ids_of = |answers: Vec<Vec<Vec<Value>>>| -> Vec<String> {
            answers
                .first()
                .into_iter()
                .flatten()
                .filter_map(|r| r.first().and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        // search.js runSearch(): the newest windows first, then the whole range.
        let mut found = None;
        for w in RECENT_WINDOWS_MS {
            if w * 2.0 > c.end - c.start {
                break;
            }
            let ws = c.end - w;
            let (t, a) = concurrently(server, &[search_ids_sql(c, ws, c.end)]).await?;
            total += t;
            let ids = ids_of(a);
            if ids.len() >= SEARCH_LIMIT {
                found = Some((ids, Some(ws)));
                break;
            }
        }
        let (ids, ws) = match found {
            Some(f) => f,
            None => {
                let (t, a) = concurrently(server, &[search_ids_sql(c, c.start, c.end)]).await?;
                total += t;
                (ids_of(a), None)
            }
        };
        if ids.is_empty() {
            bail!("page search: no traces found");
        }
        let mut stmts = vec![search_rows_sql(c, &ids)];
        stmts.extend(ws.map(|ws| search_check_sql(c, ws, &ids)));
        let (t, a) = concurrently(server, &stmts).await?;
        total += t;
        if a.get(1).is_some_and(|early| !early.is_empty()) {
            let (t, a) = concurrently(server, &[search_ids_sql(c, c.start, c.end)]).await?;
            total += t;
            let (t, _) = concurrently(server, &[search_rows_sql(c, &ids_of(a))]).await?;
            total += t;
        }
    }
    Ok(total)
}

fn first_str(rows: &[Vec<Value>]) -> Option<String> {
    rows.first()?.first()?.as_str().map(str::to_string)
}

/// Starts the server on the data directory, loading spans first when it holds none.
async fn prepare(a: &UiArgs, bin: &std::path::Path, data: &std::path::Path) -> Result<Server> {
    let fresh = !data.join("MANIFEST").exists();
    let logs = data.parent().unwrap_or(data);
    if fresh {
        eprintln!("bench ui: loading {} spans", a.spans);
        let server = Server::start(bin, data, &logs.join("ui-load.log"), &[]).await?;
        let load = standard_load(&server, a.spans);
        run_loadgen(load).await?;
        server.stop().await?;
    } else {
        eprintln!("bench ui: reusing {}", data.display());
    }
    let server = Server::start(bin, data, &logs.join("ui-query.log"), &[]).await?;
    // Let compaction after the replay settle, so that it does not share the CPU with pages.
    let mut last = f64::NAN;
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(900);
    while since.elapsed() < Duration::from_secs(10) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let m = server.metrics().await?;
        let files = m.get("osprey_store_segment_files").copied().unwrap_or(0.0);
        if files != last {
            last = files;
            since = Instant::now();
        }
    }
    Ok(server)
}

pub async fn run(a: UiArgs) -> Result<()> {
    let bin = match &a.osprey_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("locating the osprey binary")?,
    };
    let tmp = super::work_tempdir(a.work_dir.as_deref())?;
    let data = match &a.data_dir {
        Some(d) => d.clone(),
        None => tmp.path().join("osprey-data"),
    };
    let server = prepare(&a, &bin, &data).await?;
    let stored = server.sql("select count(*) from spans").await?;
    let stored = stored
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let newest = server
        .sql("select cast(max(start_time) as bigint) from spans")
        .await?;
    let newest_ms = newest
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .context("no spans stored")? as f64
        / 1e6;
    let end = newest_ms.floor() + 1000.0;
    // The clicked-through service: the one with most requests; its busiest operation; a trace.
    let service = first_str(
        &server
            .sql(&format!(
                "select service_name from spans where {SERVER_KINDS} group by 1 order by count(*) desc limit 1"
            ))
            .await?,
    )
    .context("no service found")?;
    let operation = first_str(
        &server
            .sql(&format!(
                "select span_name from spans where service_name = {} group by 1 order by count(*) desc limit 1",
                lit(&service)
            ))
            .await?,
    )
    .context("no operation found")?;
    let trace_id = first_str(
        &server
            .sql(&format!(
                "select trace_id from spans where service_name = {} and random() < 0.01 limit 1",
                lit(&service)
            ))
            .await?,
    )
    .context("no trace found")?;

    let mut results = Vec::new();
    for range in &a.ranges {
        let c = Ctx {
            start: end - range.as_millis() as f64,
            end,
            service: service.clone(),
            operation: operation.clone(),
            trace_id: trace_id.clone(),
        };
        let in_range = server
            .sql(&format!(
                "select count(*) from spans where {}",
                time_where(c.start, c.end, "start_time")
            ))
            .await?;
        let in_range = in_range
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_u64)
            .unwrap_or(0);
        for page in PAGES {
            let (lat, rss) = with_rss_sampling(server.pid, async {
                load_page(&server, page, &c).await?; // warm-up
                let mut lat = Vec::new();
                for _ in 0..a.repeats.max(1) {
                    lat.push(ms(load_page(&server, page, &c).await?));
                }
                anyhow::Ok(lat)
            })
            .await;
            // A page whose query fails (e.g. over the query memory limit) is reported as such.
            let lat = lat.map(|mut l| {
                l.sort_by(f64::total_cmp);
                l
            });
            match &lat {
                Ok(l) => eprintln!(
                    "bench ui: {} {page}: p50 {:.0} ms, p95 {:.0} ms",
                    humantime::format_duration(*range),
                    percentile(l, 0.5),
                    percentile(l, 0.95)
                ),
                Err(e) => eprintln!(
                    "bench ui: {} {page}: failed: {e:#}",
                    humantime::format_duration(*range)
                ),
            }
            let lat = lat.map_err(|e| {
                let e = format!("{e:#}");
                if e.contains("Resources exhausted") {
                    return "over the query memory limit".to_string();
                }
                let line = e.lines().next().unwrap_or("").replace('|', "/");
                line.chars().take(100).collect()
            });
            results.push((*range, in_range, page, lat, rss));
        }
    }
    let peak = server.peak_rss()?;
    server.stop().await?;

    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "## Web UI pages (`osprey bench ui`)\n\n\
         Run on {}: {stored} spans stored (loadgen, {SERVICES} services, one hour), read back from Parquet \
         after a restart. For each page, the SQL statements its JS sends to `POST /api/sql` \
         (crates/osprey-bench/src/bench/ui.rs mirrors crates/osprey-ui/assets/*.js), sent \
         concurrently as the browser does; server time is the wall time until the last answer, \
         summed over the page's dependent rounds (search: 3 when the newest minute holds 20 matching traces, more when the search widens). Service and operation pages \
         show the busiest service (`{service}`, operation `{operation}`). {} timed loads per page \
         after a warm-up; same 2-core machine as client and server. Target: < 300 ms at 10M spans.\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        a.repeats.max(1)
    );
    let _ = writeln!(
        s,
        "| range (spans in it) | page | statements | p50 ms | p95 ms | peak RSS MiB |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for (range, n, page, lat, rss) in &results {
        let c = Ctx {
            start: 0.0,
            end: range.as_millis() as f64,
            service: String::new(),
            operation: String::new(),
            trace_id: String::new(),
        };
        let stmts = statements(page, &c).len() + if *page == "search" { 2 } else { 0 };
        let times = match lat {
            Ok(l) => format!("{:.0} | {:.0}", percentile(l, 0.5), percentile(l, 0.95)),
            Err(e) => format!("failed: {e} | –"),
        };
        let _ = writeln!(
            s,
            "| {} ({n}) | {page} | {stmts} | {times} | {} |",
            humantime::format_duration(*range),
            rss / (1 << 20)
        );
    }
    let _ = writeln!(
        s,
        "\nServer peak RSS over the whole run (VmHWM, includes loading): {} MiB.\n\n\
         Reproduce: `cargo build --release --workspace --bins && target/release/osprey bench ui --spans {stored}` \
         (`--data-dir DIR` keeps the data and reuses it on the next run; `--ranges 2h,15m`).",
        peak / (1 << 20),
    );
    let _ = writeln!(s, "{END}");
    println!("{s}");
    write_marked(&a.out, &s, BEGIN, END)?;
    eprintln!("bench ui: results written to {}", a.out.display());
    Ok(())
}
