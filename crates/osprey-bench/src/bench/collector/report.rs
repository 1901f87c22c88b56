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
    let find = |who: &str, scenario: &str| {
        runs.iter()
            .find(|r| r.subject.starts_with(who) && r.scenario.starts_with(scenario))
    };
    let _ = writeln!(s, "\nAgainst the targets:\n");
    for (scenario, label) in [
        ("max rate, batch", "batch"),
        ("max rate, pass-through", "pass-through"),
    ] {
        // `find` matches by prefix: the plain pass-through row, then the blocking-queue one.
        let rows: Vec<&Run> = runs
            .iter()
            .filter(|r| r.subject.starts_with("osprey") && r.scenario.starts_with(scenario))
            .collect();
        for o in rows {
            let vs = find("rotel", scenario)
                .map(|r| {
                    format!(
                        "; Rotel {:.0} spans/s/core, so Osprey is at {:.2}x ({})",
                        r.per_core(),
                        o.per_core() / r.per_core().max(1e-9),
                        if o.per_core() >= r.per_core() {
                            "matches Rotel: met"
                        } else {
                            "matches Rotel: not met"
                        }
                    )
                })
                .unwrap_or_default();
            let target = if label == "pass-through" {
                format!(
                    " Target 1M spans/s/core on pass-through: {}.",
                    if o.per_core() >= 1e6 {
                        "met"
                    } else {
                        "not met"
                    }
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "- {}: Osprey {:.0} spans/s per core{vs}.{target}",
                o.scenario,
                o.per_core()
            );
        }
    }
    if let Some(o) = find("osprey", "steady") {
        let _ = writeln!(s, "- memory at {:.0}k spans/s steady: {:.0} MiB RSS (peak {:.0}); target under 200 MiB: {}.", args.steady_rate / 1000.0, o.rss_mib, o.peak_rss_mib, if o.peak_rss_mib < 200.0 { "met" } else { "not met" });
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
