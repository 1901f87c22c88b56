//! The figures of `osprey bench ingest` and their Markdown table in BENCHMARKS.md.

use super::IngestArgs;
use crate::loadgen::LoadgenReport;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// What the Osprey side measured.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub spans_target: u64,
    pub fsync: String,
    pub loadgen: LoadgenReport,
    pub ingest_cpu_secs: f64,
    pub ingest_peak_rss: u64,
    pub shutdown_flush: Duration,
    pub restart_ready: Duration,
    pub compact_peak_rss: u64,
    pub query_peak_rss: u64,
    pub segment_files: u64,
    pub segment_bytes: u64,
    pub stored_spans: u64,
    pub counted_spans: u64,
    pub data_dir_bytes: u64,
    pub lookups: usize,
    pub by_id_p50_ms: f64,
    pub by_id_p99_ms: f64,
    pub red_p50_ms: f64,
    pub red_max_ms: f64,
}

/// What the PostgreSQL baseline measured.
#[derive(Debug, Default, Clone)]
pub struct PgFigures {
    pub spans: u64,
    pub load_secs: f64,
    pub table_bytes: u64,
    pub total_relation_bytes: u64,
    pub data_dir_bytes: u64,
    pub by_id_p50_ms: f64,
    pub by_id_p99_ms: f64,
    pub red_p50_ms: f64,
    pub red_max_ms: f64,
}

pub const BEGIN: &str =
    "<!-- osprey bench ingest: begin (generated; edits inside are overwritten) -->";
pub const END: &str = "<!-- osprey bench ingest: end -->";

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / 1048576.0)
}

fn per_span(bytes: u64, spans: u64) -> f64 {
    bytes as f64 / spans.max(1) as f64
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores ({cpu})")
}

/// The generated section, between [`BEGIN`] and [`END`].
pub fn render(f: &Figures, pg: Option<&PgFigures>, a: &IngestArgs) -> String {
    let l = &f.loadgen;
    let rate = l.spans_per_sec;
    let bytes_span = per_span(f.segment_bytes, f.stored_spans);
    let peak_rss = f
        .ingest_peak_rss
        .max(f.compact_peak_rss)
        .max(f.query_peak_rss);
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "### `osprey bench ingest` — {} spans, fsync `{}`\n",
        f.spans_target, f.fsync
    );
    let _ = writeln!(
        s,
        "Run on {}, {}. Command: `osprey bench ingest --spans {} --concurrency {} --batch {} --fsync {}{}`.\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        machine(),
        a.spans,
        a.concurrency,
        a.batch,
        a.fsync,
        a.pg_spans.map(|n| format!(" --pg-spans {n}")).unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "| figure | target | Osprey | PostgreSQL baseline | Osprey vs baseline |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let pg_rate = pg.map(|p| p.spans as f64 / p.load_secs.max(1e-9));
    let ratio = |ours: f64, theirs: Option<f64>, higher_better: bool| match theirs {
        Some(t) if t > 0.0 && ours > 0.0 => {
            let r = if higher_better { ours / t } else { t / ours };
            if r >= 1.0 {
                format!("{r:.1}× better")
            } else {
                format!("{:.1}× worse", 1.0 / r)
            }
        }
        _ => "—".into(),
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "—".into());
    let _ = writeln!(
        s,
        "| ingest, spans/s sustained (WAL on, acknowledged) | ≥ 500,000 ({}) | {:.0} | {} (COPY, 2 streams) | {} |",
        verdict(rate >= 500_000.0),
        rate,
        opt(pg_rate.map(|r| format!("{r:.0}"))),
        ratio(rate, pg_rate, true)
    );
    let _ = writeln!(
        s,
        "| client export latency p50 / p99 (1000-span requests) | — | {:.1} / {:.1} ms | — | — |",
        l.latency_p50_ms, l.latency_p99_ms
    );
    let _ = writeln!(
        s,
        "| server CPU during ingest | — | {:.2} cores ({:.0} CPU-s) | — | — |",
        f.ingest_cpu_secs / l.elapsed_secs.max(1e-9),
        f.ingest_cpu_secs
    );
    let pg_bytes = pg.map(|p| per_span(p.total_relation_bytes, p.spans));
    let _ = writeln!(
        s,
        "| bytes per span on disk (after flush + compaction) | ≤ 40 ({}) | {:.1} | {} (table + indexes) | {} |",
        verdict(bytes_span <= 40.0),
        bytes_span,
        opt(pg_bytes.map(|b| format!("{b:.0}"))),
        ratio(bytes_span, pg_bytes, false)
    );
    let _ = writeln!(
        s,
        "| trace by id p50 / p99 ({} lookups, via SQL) | p99 < 20 ms ({}) | {:.1} / {:.1} ms | {} | {} |",
        f.lookups,
        verdict(f.by_id_p99_ms < 20.0),
        f.by_id_p50_ms,
        f.by_id_p99_ms,
        opt(pg.map(|p| format!("{:.1} / {:.1} ms", p.by_id_p50_ms, p.by_id_p99_ms))),
        ratio(f.by_id_p99_ms, pg.map(|p| p.by_id_p99_ms), false)
    );
    let _ = writeln!(
        s,
        "| RED + p50/p95/p99 per service over 1 h, median / max of {} | < 500 ms ({}) | {:.0} / {:.0} ms | {} | {} |",
        a.red_runs,
        verdict(f.red_max_ms < 500.0),
        f.red_p50_ms,
        f.red_max_ms,
        opt(pg.map(|p| format!("{:.0} / {:.0} ms", p.red_p50_ms, p.red_max_ms))),
        ratio(f.red_p50_ms, pg.map(|p| p.red_p50_ms), false)
    );
    let _ = writeln!(
        s,
        "| server peak RSS (ingest / compaction / queries) | < 2 GiB ({}) | {} / {} / {} | — | — |",
        verdict(peak_rss < 2 << 30),
        mib(f.ingest_peak_rss),
        mib(f.compact_peak_rss),
        mib(f.query_peak_rss)
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Spans acknowledged {}, counted by SQL after restart {} ({}); rejected {}, failed {}, retries {}. \
         Parquet: {} files, {}; whole data dir after restart {}. Graceful stop (flush) took {:.1} s; \
         restart to ready (WAL replay) {:.1} s.",
        l.spans_acked,
        f.counted_spans,
        if l.spans_acked == f.counted_spans { "all present, none duplicated" } else { "**MISMATCH**" },
        l.spans_rejected,
        l.spans_failed,
        l.retry_count(),
        f.segment_files,
        mib(f.segment_bytes),
        mib(f.data_dir_bytes),
        f.shutdown_flush.as_secs_f64(),
        f.restart_ready.as_secs_f64()
    );
    if let Some(p) = pg {
        let _ = writeln!(
            s,
            "\nBaseline: PostgreSQL (Debian's server) with Promscale's span layout (PK (span_id, trace_id, start_time), \
             btree (trace_id, parent_span_id) include (span_id), GIN jsonb_path_ops on span_tags and resource_tags, \
             btree start_time), jsonb tag maps, loaded by COPY in batches of {} spans, each COPY its own transaction \
             (synchronous_commit on). {} spans in {:.0} s; table {} + indexes {}; data dir {} (with WAL).",
            a.batch.max(1000) * 10,
            p.spans,
            p.load_secs,
            mib(p.table_bytes),
            mib(p.total_relation_bytes.saturating_sub(p.table_bytes)),
            mib(p.data_dir_bytes)
        );
    }
    let _ = writeln!(s, "{END}");
    s
}

/// Replaces the generated section of `path` (or appends it; creates the file if needed).
pub fn write_section(path: &Path, section: &str) -> Result<()> {
    write_marked(path, section, BEGIN, END)
}

/// Replaces the text between `begin` and `end` in `path` with `section` (which carries the
/// markers), or appends `section` when the markers are not there yet.
pub fn write_marked(path: &Path, section: &str, begin: &str, end: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if e > b => format!(
            "{}{}{}",
            &old[..b],
            section.trim_end(),
            &old[e + end.len()..]
        ),
        _ => format!("{}\n{}", old.trim_end(), format_args!("\n{section}")),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_is_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("B.md");
        std::fs::write(&p, "# B\n\nintro\n").unwrap();
        write_section(&p, &format!("{BEGIN}\none\n{END}\n")).unwrap();
        std::fs::write(&p, std::fs::read_to_string(&p).unwrap() + "\n## after\n").unwrap();
        write_section(&p, &format!("{BEGIN}\ntwo\n{END}\n")).unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.starts_with("# B\n\nintro\n"), "{s}");
        assert!(s.contains("two") && !s.contains("one"), "{s}");
        assert!(s.contains("## after"), "{s}");
    }
}
