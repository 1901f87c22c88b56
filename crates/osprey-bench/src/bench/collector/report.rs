//! The collector section of BENCHMARKS.md.

use super::{CollectorArgs, Run};
use std::fmt::Write;

pub const BEGIN: &str = "<!-- bench collector: begin -->";
pub const END: &str = "<!-- bench collector: end -->";

pub fn render(runs: &[Run], args: &CollectorArgs, rotel_version: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s, "## Collector: OTLP/gRPC in -> batch -> OTLP/gRPC out\n");
    let _ = writeln!(
        s,
        "`osprey bench collector` ({} s per scenario, {} requests in flight, {} spans per request; \
         client, collector and sink share this machine's 2 cores). Rotel: {}.\n",
        args.duration.as_secs(),
        args.concurrency,
        args.batch,
        rotel_version.unwrap_or("not measured")
    );
    let _ = writeln!(s, "| collector | scenario | delivered spans/s | spans/s per CPU core | CPU s | RSS MiB (peak) | refused spans |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in runs {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.0} ({:.0}) | {} |",
            r.subject,
            r.scenario,
            r.per_sec(),
            r.per_core(),
            r.cpu,
            r.rss_mib,
            r.peak_rss_mib,
            r.refused
        );
    }
    let _ = writeln!(
        s,
        "\n\"Delivered\" counts spans that reached the sink; \"per CPU core\" divides them by the CPU \
         seconds of the collector process alone. Reproduce: `scripts/bench-collector.sh` (installs \
         Rotel from PyPI into .venv-bench, builds the release binary, runs \
         `osprey bench collector`)."
    );
    let _ = writeln!(s, "{END}");
    s
}
