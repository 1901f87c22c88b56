"""The web UI on 9201 in headless Chromium (Debian's `chromium`, driven by playwright-core from
tests/ui): `osprey up` fed by `osprey loadgen`, then tests/ui/ui_test.mjs loads every page
(no console errors allowed), compares the overview's numbers with what `POST /api/sql` gives
here for the same range, clicks overview -> service -> operation -> trace -> span details and
search -> trace, and saves screenshots ($OSPREY_UI_SCREENSHOTS, default tests/ui/screenshots).

The range is explicit (`?start=&end=` from the data's own first and last start times), so
nothing depends on the wall clock. scripts/install-test-deps.sh installs chromium and runs
`npm ci` in tests/ui.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import requests

from conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "tests" / "ui"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SPANS = 4000
SERVER_KINDS = "('SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER')"


def _need_tools():
    node = shutil.which("node")
    assert node, "node not found: run scripts/install-test-deps.sh"
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} not found: run scripts/install-test-deps.sh (apt-get install chromium)"
    assert (UI / "node_modules" / "playwright-core").is_dir(), \
        "tests/ui/node_modules missing: run scripts/install-test-deps.sh (npm ci in tests/ui)"
    return node


def _expected(srv, start_ms: int, end_ms: int) -> dict:
    """What the overview must show, computed here with plain SQL (the range holds every span)."""
    total = srv.rows("select count(*) as n from spans")[0]["n"]
    in_range = srv.rows(f"select count(*) as n from spans where start_time >= to_timestamp_millis({start_ms})"
                        f" and start_time < to_timestamp_millis({end_ms})")[0]["n"]
    assert in_range == total, (in_range, total)
    services = {r["service_name"]: {"requests": 0, "errors": 0}
                for r in srv.rows("select distinct service_name from spans")}
    for r in srv.rows(f"select service_name, count(*) as n from spans where span_kind in {SERVER_KINDS} group by 1"):
        services[r["service_name"]]["requests"] = r["n"]
    for r in srv.rows(f"select service_name, count(*) as n from spans where span_kind in {SERVER_KINDS}"
                      " and status_code = 'STATUS_CODE_ERROR' group by 1"):
        services[r["service_name"]]["errors"] = r["n"]
    # The overview's p99 comes from the span_stats histograms (within 2 % of the exact
    # percentile); ui_test.mjs checks it within 5 % of the exact percentile_cont over the raw
    # spans. (approx_percentile_cont, a t-digest, is itself 5-16 % above the exact value for
    # the busiest services here: 300-400 requests, sparse tails.)
    for r in srv.rows(f"select service_name, percentile_cont(duration_ms, 0.99) as p99 from spans"
                      f" where span_kind in {SERVER_KINDS} group by 1"):
        services[r["service_name"]]["p99"] = r["p99"]
    ranked = sorted(services.items(), key=lambda kv: -kv[1]["requests"])
    assert ranked[0][1]["requests"] > ranked[1][1]["requests"], "need one busiest service"
    edges = srv.rows("select count(*) as n from (select distinct p.service_name as a, c.service_name as b"
                     " from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id"
                     " where c.service_name <> p.service_name) d")[0]["n"]
    # The busiest service's callers and callees (service page), from the raw parent/child join.
    busiest = ranked[0][0].replace("'", "''")
    join = ("from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id"
            " where c.service_name <> p.service_name and p.span_kind in ('SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER')"
            f" and c.span_kind in {SERVER_KINDS}")
    callers = {r["s"]: r["n"] for r in srv.rows(
        f"select p.service_name as s, count(*) as n {join} and c.service_name = '{busiest}' group by 1")}
    callees = {r["s"]: r["n"] for r in srv.rows(
        f"select c.service_name as s, count(*) as n {join} and p.service_name = '{busiest}' group by 1")}
    assert callers or callees, "the busiest service calls or is called"
    slowest = srv.rows(f"select trace_id from spans where service_name = '{busiest}' and span_kind in {SERVER_KINDS}"
                       " order by duration_ms desc limit 1")[0]["trace_id"]
    # The search page's default answer for the busiest service: newest first, by first span.
    search_ids = [r["trace_id"] for r in srv.rows(
        f"select trace_id from spans where service_name = '{busiest}'"
        f" and start_time >= to_timestamp_millis({start_ms}) and start_time < to_timestamp_millis({end_ms})"
        " group by trace_id order by min(start_time) desc limit 20")]
    trace = srv.rows("select trace_id, count(*) as n from spans group by trace_id order by n desc, trace_id limit 1")[0]
    return {
        "services": services,
        "busiest": ranked[0][0],
        "total_requests": sum(v["requests"] for v in services.values()),
        "total_errors": sum(v["errors"] for v in services.values()),
        "total_spans": total,
        "edges": edges,
        "callers": callers,
        "callees": callees,
        "slowest_trace": slowest,
        "search_ids": search_ids,
        "trace_id": trace["trace_id"],
        "trace_spans": trace["n"],
    }


def test_ui_pages_numbers_and_flows(server, binary, tmp_path):
    node = _need_tools()
    out = subprocess.run(
        [str(binary), "loadgen", "--endpoint", f"http://{server.otlp_grpc}", "--spans", str(SPANS),
         "--start-offset", "20m", "--seed", "7", "--services", "12"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"loadgen failed: {out.stdout}\n{out.stderr}"
    m = re.search(r"spans acknowledged\s+(\d+)", out.stdout + out.stderr)
    assert m and int(m.group(1)) > SPANS // 2, out.stdout + out.stderr
    sent = int(m.group(1))  # whole traces: about SPANS
    wait_until(lambda: server.rows("select count(*) as n from spans")[0]["n"] == sent,
               timeout=60, what=f"{sent} spans queryable")

    lo, hi = server.sql("select cast(min(start_time) as bigint), cast(max(start_time) as bigint) from spans")["rows"][0]
    start_ms, end_ms = lo // 1_000_000, hi // 1_000_000 + 1
    expected = _expected(server, start_ms, end_ms)
    exp_file = tmp_path / "expected.json"
    exp_file.write_text(json.dumps(expected))

    # The shell is served on every page route.
    for path in ["/", f"/services/{expected['busiest']}", "/map", "/search", f"/trace/{expected['trace_id']}", "/sql"]:
        r = requests.get(server.api + path, timeout=10)
        assert r.status_code == 200 and "/ui/app.js" in r.text, path
        assert r.headers["content-type"].startswith("text/html"), path

    shots = os.environ.get("OSPREY_UI_SCREENSHOTS") or str(UI / "screenshots")
    env = dict(os.environ, OSPREY_URL=server.api, OSPREY_UI_START=str(start_ms), OSPREY_UI_END=str(end_ms),
               OSPREY_UI_EXPECTED=str(exp_file), OSPREY_UI_SCREENSHOTS=shots, CHROMIUM=CHROMIUM)
    run = subprocess.run([node, str(UI / "ui_test.mjs")], cwd=UI, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, f"UI test failed:\n{run.stdout}\n{run.stderr}"
    for name in ["overview", "service", "operation", "trace", "search", "map", "sql"]:
        assert (Path(shots) / f"{name}.png").stat().st_size > 0, name
