"""The Grafana dashboards and data source provisioning Osprey ships
(deploy/helm/osprey/files/grafana): their structure, and every panel query and template
variable run against a live `osprey up` fed by `osprey loadgen`, expanded and sent the way
Grafana's PostgreSQL, Jaeger and Tempo data sources do (grafana.py says how, with sources).
The Prometheus panels and variables are run by test_grafana_prometheus.py, against a real
Prometheus fed by the install's collector configuration.

A panel whose type, data source or query kind the harness does not know fails the test
(grafana.UnsupportedQuery): a new panel must come with its check here.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from datetime import datetime, timezone

import psycopg
import pytest
import yaml

import grafana as g
from conftest import Server, wait_until

SPANS = 5000
DASHBOARDS = g.load_dashboards()
DATASOURCES = g.load_datasources()


def is_prometheus(panel: dict) -> bool:
    return g.PROMETHEUS_TYPE in g.panel_datasource_types(panel, DATASOURCES)


# Dashboards with panels this module runs (the others are all Prometheus).
LIVE_DASHBOARDS = [n for n in g.DASHBOARD_NAMES
                   if any(p["type"] not in ("row", "text") and not is_prometheus(p)
                          for p in g.all_panels(DASHBOARDS[n]))]

# Grafana's node graph field names (public/app/plugins/panel/nodeGraph: NodeGraphDataFrameFieldNames).
NODE_FIELDS = {"id", "title", "subtitle", "mainstat", "secondarystat", "color", "icon",
               "noderadius", "highlighted", "isinstancenode"}
EDGE_FIELDS = {"id", "source", "target", "mainstat", "secondarystat", "thickness",
               "highlighted", "color", "strokedasharray"}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def env(binary, tmp_path_factory):
    """One `osprey up` and `osprey loadgen --spans 5000` spread over the last 30 minutes."""
    server = Server(binary, tmp_path_factory.mktemp("grafana")).start()
    try:
        out = subprocess.run(
            [str(binary), "loadgen", "--endpoint", f"http://{server.otlp_grpc}",
             "--spans", str(SPANS), "--start-offset", "30m", "--seed", "7"],
            capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, f"loadgen failed: {out.stdout}\n{out.stderr}"
        m = re.search(r"spans acknowledged\s+(\d+)", out.stdout + out.stderr)
        assert m, f"no 'spans acknowledged' in loadgen's output:\n{out.stdout}\n{out.stderr}"
        acked = int(m.group(1))
        assert acked >= SPANS * 0.9, out.stdout
        wait_until(lambda: server.sql("select count(*) from spans")["rows"][0][0] == acked,
                   timeout=60, what=f"{acked} spans queryable")
        yield server, acked
    finally:
        server.kill9()


def runner_for(server: Server, dashboard: dict) -> g.Runner:
    """A dashboard time range of "last 1 hour" ending now, in ms as a browser sends it."""
    to = time.time_ns() // 10**6 * 10**6
    tr = g.TimeRange(to - 3600 * 10**9, to)
    pg = DATASOURCES["osprey-sql"]

    def connect():
        return psycopg.connect(host="127.0.0.1", port=server.pg_port, user=pg["user"],
                               dbname=pg["jsonData"]["database"], autocommit=True,
                               sslmode=pg["jsonData"]["sslmode"])
    return g.Runner(dashboard, DATASOURCES, connect, server.api, tr)


# ---------------------------------------------------------------- provisioning files

def test_datasources_provisioning():
    doc = yaml.safe_load((g.GRAFANA_DIR / "datasources.yaml").read_text())
    assert doc["apiVersion"] == 1
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    assert set(by_uid) == {"osprey-jaeger", "osprey-tempo", "osprey-sql", "osprey-prometheus"}, \
        by_uid.keys()
    assert len({d["name"] for d in doc["datasources"]}) == 4, "names must be unique"
    j, t, s = by_uid["osprey-jaeger"], by_uid["osprey-tempo"], by_uid["osprey-sql"]
    p = by_uid["osprey-prometheus"]
    assert (j["type"], j["url"]) == ("jaeger", "http://osprey:9201")
    assert (t["type"], t["url"]) == ("tempo", "http://osprey:9201/tempo")
    assert s["type"] == "grafana-postgresql-datasource" and s["url"] == "osprey:5433"
    assert s["user"] == "osprey" and s["jsonData"]["database"] == "osprey"
    assert s["jsonData"]["sslmode"] == "disable" and s["jsonData"]["timescaledb"] is False
    # Prometheus: the install's own (Service osprey-prometheus), fed by the collector's
    # spanmetrics connector; Osprey itself evaluates no PromQL.
    assert (p["type"], p["url"]) == ("prometheus", "http://osprey-prometheus:9090")
    assert p["jsonData"]["httpMethod"] == "POST" and p["jsonData"]["timeInterval"] == "15s"
    for d in doc["datasources"]:
        assert d.get("access", "proxy") == "proxy", d


def test_dashboard_provider():
    doc = yaml.safe_load((g.GRAFANA_DIR / "dashboards.yaml").read_text())
    assert doc["apiVersion"] == 1
    (p,) = doc["providers"]
    assert p["type"] == "file" and p["options"]["path"].startswith("/"), p


# ---------------------------------------------------------------- dashboard structure

def referenced_variables(text: str) -> set[str]:
    names = set()
    for m in g._VAR_RE.finditer(text):
        name = m.group(1) or m.group(2) or m.group(4)
        if not name.startswith("__"):
            names.add(name)
    return names


def link_urls(dashboard: dict) -> list[str]:
    urls = []
    for p in g.all_panels(dashboard):
        fc = p.get("fieldConfig", {})
        for links in [fc.get("defaults", {}).get("links", [])] + [
                prop["value"] for o in fc.get("overrides", []) for prop in o["properties"]
                if prop["id"] == "links"]:
            urls.extend(link["url"] for link in links)
    return urls


@pytest.mark.parametrize("name", g.DASHBOARD_NAMES)
def test_dashboard_structure(name):
    d = DASHBOARDS[name]
    assert d["uid"] == f"osprey-{name}" and d["title"] and d["schemaVersion"] == 39
    assert "id" not in d or d["id"] is None, "provisioned dashboards carry no database id"
    panels = g.all_panels(d)
    assert panels, "no panels"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    cells = {}
    for p in panels:
        where = f"panel {p['id']} {p.get('title')!r}"
        gp = p["gridPos"]
        assert all(isinstance(gp[k], int) for k in ("h", "w", "x", "y")), where
        assert gp["w"] >= 1 and gp["h"] >= 1 and gp["x"] >= 0 and gp["y"] >= 0, where
        assert gp["x"] + gp["w"] <= 24, f"{where} wider than the 24-column grid: {gp}"
        for x in range(gp["x"], gp["x"] + gp["w"]):
            for y in range(gp["y"], gp["y"] + gp["h"]):
                assert (x, y) not in cells, f"{where} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]
        if p["type"] not in g.KNOWN_PANEL_TYPES:
            raise g.UnsupportedQuery(f"{where}: panel type {p['type']!r}")
        if p["type"] in ("row", "text"):
            continue
        assert p.get("targets"), f"{where} has no query"
        refs = [p.get("datasource")] + [t.get("datasource") for t in p["targets"]]
        for ref in refs:
            assert ref and ref["uid"] in DATASOURCES and ref["type"] == DATASOURCES[ref["uid"]]["type"], \
                f"{where}: data source {ref} not provisioned in datasources.yaml"
        assert len({r["uid"] for r in refs}) == 1, f"{where}: one data source per panel"
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), f"{where}: refIds"
    variables = {v["name"] for v in d.get("templating", {}).get("list", [])}
    for v in d.get("templating", {}).get("list", []):
        if v["type"] == "query":
            assert v["datasource"]["uid"] in DATASOURCES, v["name"]
    text = json.dumps(d)
    unknown = referenced_variables(text) - variables
    assert not unknown, f"variables used but not defined: {unknown}"
    for url in link_urls(d):
        for uid in re.findall(r"/d/([\w-]+)", url):
            assert uid in {x["uid"] for x in DASHBOARDS.values()}, f"link to unknown dashboard {url}"
        if url.startswith("/explore"):
            panes = json.loads(url.split("panes=", 1)[1])
            for pane in panes.values():
                assert pane["datasource"] in DATASOURCES, url


# ---------------------------------------------------------------- macros (no server)

def test_macro_expansion_matches_grafana():
    """Cases of Grafana's pkg/tsdb/grafana-postgresql-datasource/macros_test.go."""
    frm = 1523556000 * 10**9  # 2018-04-12T18:00:00Z
    tr = g.TimeRange(frm, frm + 300 * 10**9)
    cases = {
        "select $__time(time_column)": 'select time_column AS "time"',
        "select $__timeEpoch(time)": 'select extract(epoch from time) as "time"',
        "WHERE $__timeFilter(time_column)":
            "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'",
        "select $__timeFrom()": "select '2018-04-12T18:00:00Z'",
        "select $__timeTo()": "select '2018-04-12T18:05:00Z'",
        "GROUP BY $__timeGroup(time_column,'5m')":
            "GROUP BY floor(extract(epoch from time_column)/300)*300",
        "SELECT $__timeGroup(time_column,'5m'), value":
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value',
        "SELECT $__timeGroupAlias(time_column,'5m')":
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"',
        "$__timeGroup(time_column , '5m')": "floor(extract(epoch from time_column)/300)*300",
        "select $__unixEpochFilter(time)": "select time >= 1523556000 AND time <= 1523556300",
        "select $__unixEpochFrom()": "select 1523556000",
        "select $__unixEpochGroup(time_column,'5m')": "select floor((time_column)/300)*300",
        "$__timeGroupAlias(t, $__interval)": 'floor(extract(epoch from t)/10)*10 AS "time"',
        "count(*) * 1000.0 / $__interval_ms": "count(*) * 1000.0 / 10000",
    }
    for raw, want in cases.items():
        assert g.expand_postgres_macros(raw, tr, 10_000) == want, raw
    t1960 = int(datetime(1960, 2, 1, 7, 0, tzinfo=timezone.utc).timestamp()) * 10**9
    half = g.TimeRange(t1960 + 500_000_000, 0)
    assert half.frm == "1960-02-01T07:00:00.5Z"
    assert [g.go_format_interval(ms) for ms in (500, 1000, 10_000, 60_000, 90_000, 3_600_000)] == \
        ["500ms", "1s", "10s", "1m", "1m", "1h"]
    hour = g.TimeRange(0, 3600 * 10**9)
    assert g.panel_interval_ms(hour.frm_ns, hour.to_ns, 1000, 1) == 5000
    assert g.panel_interval_ms(hour.frm_ns, hour.to_ns, 1000, 10_000) == 10_000
    with pytest.raises(g.UnsupportedQuery):
        g.expand_postgres_macros("$__timeGroup(t, '5m', NULL)", tr, 1000)


def test_variable_and_tag_interpolation():
    v = {"svc": g.Variable("svc", ["a", "o'b"], True), "one": g.Variable("one", ["x'y"], False)}
    assert g.replace_variables("IN ($svc) AND n = '$one' AND ${one} [[one]]", v, True, {}) == \
        "IN ('a','o''b') AND n = 'x''y' AND x''y x''y"
    assert g.replace_variables("$one", v, False, {}) == "x'y"
    assert g.replace_variables("$__timeFilter(t) $other", v, True, {}) == "$__timeFilter(t) $other"
    assert g.replace_variables("${svc:queryparam}", v, False, {}) == "var-svc=a&var-svc=o%27b"
    assert json.loads(g.logfmt_to_json('http.status_code=500 error=true name="a b"')) == \
        {"http.status_code": "500", "error": "true", "name": "a b"}


# ---------------------------------------------------------------- every panel, live

def check_sql_frame(panel: dict, res: g.Result, runner: g.Runner):
    f, where = res.frame, f"panel {panel['id']} {panel['title']!r}"
    assert f.rows, f"{where}: no rows from\n{res.request}"
    if res.kind == "sql:time_series":
        assert "time" in f.columns, f"{where}: a time series needs a time column: {f.columns}"
        times = [float(t) for t in f.col("time")]
        assert times == sorted(times), f"{where}: rows not ordered by time"
        lo, hi = runner.tr.frm_ns / 1e9 - 86400, runner.tr.to_ns / 1e9
        assert lo <= times[0] and times[-1] <= hi, f"{where}: times {times[0]}..{times[-1]}"
        for c, oid in zip(f.columns, f.type_oids):
            if c == "metric":
                assert oid in (25, 1043), f"{where}: metric column must be text"
            elif c != "time":
                assert oid in g.NUMERIC_OIDS, f"{where}: value column {c!r} has type oid {oid}"


def check_field_names(panel: dict, results: list[g.Result]):
    """Overrides and transformations name fields: a typo would silently show nothing."""
    names = [o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]
             if o["matcher"]["id"] == "byName"]
    for t in panel.get("transformations", []):
        names += t.get("options", {}).get("include", {}).get("names", [])
    columns = {c for r in results if r.frame is not None for c in r.frame.columns}
    if any(r.kind == "sql:time_series" and "metric" in r.frame.columns for r in results):
        return  # series are named by the metric column's values
    missing = set(names) - columns
    assert not missing or not columns, \
        f"panel {panel['id']} {panel['title']!r}: fields {missing} not in the results {columns}"


def check_panel(panel: dict, results: list[g.Result], runner: g.Runner):
    where = f"panel {panel['id']} {panel['title']!r}"
    kinds = {r.kind for r in results}
    ptype = panel["type"]
    for r in results:
        if r.frame is not None:
            check_sql_frame(panel, r, runner)
    check_field_names(panel, results)
    if ptype == "timeseries":
        assert kinds == {"sql:time_series"}, f"{where}: {kinds}"
    elif ptype == "stat":
        assert kinds == {"sql:table"}, f"{where}: {kinds}"
        for r in results:
            assert len(r.frame.rows) == 1, f"{where}: one row expected: {r.frame.rows}"
            for c, oid, v in zip(r.frame.columns, r.frame.type_oids, r.frame.rows[0]):
                assert oid in g.NUMERIC_OIDS and v is not None, f"{where}: {c}={v!r}"
    elif ptype == "histogram":
        assert kinds == {"sql:table"}, f"{where}: {kinds}"
        assert any(o in g.NUMERIC_OIDS for r in results for o in r.frame.type_oids), where
    elif ptype == "nodeGraph" and kinds == {"sql:table"}:
        nodes = [r.frame for r in results if "source" not in r.frame.columns]
        edges = [r.frame for r in results if "source" in r.frame.columns]
        assert len(nodes) == 1 and len(edges) == 1, f"{where}: one nodes and one edges frame"
        n, e = nodes[0], edges[0]
        extra = {c for c in n.columns if not c.startswith(("arc__", "detail__"))} - NODE_FIELDS
        assert "id" in n.columns and not extra, f"{where}: node fields {n.columns}"
        extra = {c for c in e.columns if not c.startswith("detail__")} - EDGE_FIELDS
        assert {"id", "source", "target"} <= set(e.columns) and not extra, f"{where}: {e.columns}"
        ids = set(n.col("id"))
        assert len(ids) == len(n.rows), f"{where}: node ids not unique"
        dangling = {x for x in e.col("source") + e.col("target")} - ids
        assert not dangling, f"{where}: edges to nodes not in the nodes frame: {dangling}"
        arcs = [c for c in n.columns if c.startswith("arc__")]
        for row in n.rows:
            total = sum(row[n.columns.index(c)] for c in arcs)
            assert not arcs or abs(total - 1) < 1e-6, f"{where}: arc__ fields sum to {total}"
    elif ptype == "nodeGraph" and kinds == {"jaeger:dependencies"}:
        deps = results[0].body["data"]
        assert deps and all({"parent", "child", "callCount"} <= set(x) for x in deps), where
    elif ptype == "table" and kinds == {"sql:table"}:
        pass
    elif ptype == "table" and kinds == {"jaeger:search"}:
        body = results[0].body
        assert body["data"], f"{where}: no traces from {results[0].request}"
        svc, op = body["query"]["service"], body["query"].get("operation")
        for tr in body["data"]:
            names = {(tr["processes"][s["processID"]]["serviceName"], s["operationName"])
                     for s in tr["spans"]}
            assert any(s == svc and (op is None or o == op) for s, o in names), \
                f"{where}: trace {tr['traceID']} has no span of {svc}/{op}"
    elif ptype == "table" and kinds == {"tempo:search"}:
        body = results[0].body
        assert body.get("traces"), f"{where}: no traces from {results[0].request}"
        # The dashboards' TraceQL filters on the span name and resource service.name.
        name = re.search(r'(?<![.\w])name\s*=\s*"([^"]*)"', body["q"])
        svc = re.search(r'resource\.service\.name\s*=\s*"([^"]*)"', body["q"])
        for tr in body["traces"]:
            assert re.fullmatch(r"[0-9a-f]{1,32}", tr["traceID"]) and int(tr["startTimeUnixNano"]), tr
            spans = [s for ss in tr["spanSets"] for s in ss["spans"]]
            assert spans, f"{where}: trace {tr['traceID']} without matched spans"
            for s in spans:
                attrs = {a["key"]: a["value"].get("stringValue") for a in s.get("attributes", [])}
                assert not name or s["name"] == name.group(1), (body["q"], s)
                assert not svc or attrs.get("service.name") == svc.group(1), (body["q"], s)
    elif ptype == "traces" and kinds == {"jaeger:trace"}:
        (data,) = results[0].body["data"]
        assert data["spans"] and data["traceID"] == runner.variables["trace_id"].values[0], where
    elif ptype == "traces" and kinds == {"tempo:trace"}:
        assert results[0].body, f"{where}: no resource spans from {results[0].request}"
    else:
        raise g.UnsupportedQuery(f"{where}: no check for a {ptype} panel with {kinds} queries")


def follow_trace_links(panel: dict, results: list[g.Result], runner: g.Runner):
    """A table column with trace links must hold trace ids the trace APIs find."""
    for o in panel["fieldConfig"]["overrides"]:
        if o["matcher"]["options"] != "trace_id":
            continue
        (res,) = results
        trace_id = res.frame.col("trace_id")[0]
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id), trace_id
        for ds in ("osprey-jaeger", "osprey-tempo"):
            target = {"refId": "A", "datasource": {"uid": ds, "type": DATASOURCES[ds]["type"]},
                      "query": trace_id, "queryType": "traceql" if ds == "osprey-tempo" else None}
            r = runner.run_target({"id": 0, "title": "link", "targets": [target]}, target)
            found = r.body if r.kind == "tempo:trace" else r.body["data"][0]["spans"]
            assert found, f"trace link {trace_id} via {ds}: nothing at {r.request}"


@pytest.mark.parametrize("name", LIVE_DASHBOARDS)
def test_every_panel_query_returns_data(env, srv, name):
    runner = runner_for(srv, DASHBOARDS[name])
    variables = runner.resolve_variables()
    for v in variables.values():
        assert v.values, f"variable {v.name} empty"
    ran = 0
    for panel in g.all_panels(DASHBOARDS[name]):
        if panel["type"] in ("row", "text") or is_prometheus(panel):
            continue  # Prometheus panels: test_grafana_prometheus.py
        results = [runner.run_target(panel, t) for t in panel["targets"] if not t.get("hide")]
        check_panel(panel, results, runner)
        follow_trace_links(panel, results, runner)
        ran += len(results)
    assert ran > 0


def test_service_variable_lists_every_service(env, srv):
    runner = runner_for(srv, DASHBOARDS["overview"])
    got = runner.resolve_variables()["service"]
    want = {r[0] for r in srv.sql("select distinct service_name from spans")["rows"]}
    assert set(got.options) == want and got.values == got.options, "All = every service"


UNSUPPORTED = [
    ("unprovisioned data source", {"type": "timeseries", "datasource": {"type": "prometheus", "uid": "prom"},
                           "targets": [{"refId": "A", "expr": "up"}]}),
    ("SQL builder mode", {"type": "table", "datasource": {"type": "grafana-postgresql-datasource", "uid": "osprey-sql"},
                          "targets": [{"refId": "A", "editorMode": "builder", "format": "table",
                                       "sql": {"columns": []}}]}),
    ("Tempo service map", {"type": "nodeGraph", "datasource": {"type": "tempo", "uid": "osprey-tempo"},
                           "targets": [{"refId": "A", "queryType": "serviceMap"}]}),
    ("Jaeger upload", {"type": "traces", "datasource": {"type": "jaeger", "uid": "osprey-jaeger"},
                       "targets": [{"refId": "A", "queryType": "upload"}]}),
    ("unknown macro", {"type": "table", "datasource": {"type": "grafana-postgresql-datasource", "uid": "osprey-sql"},
                       "targets": [{"refId": "A", "rawQuery": True, "format": "table",
                                    "rawSql": "select $__timeSomething(start_time) from spans"}]}),
    ("undefined variable", {"type": "table", "datasource": {"type": "grafana-postgresql-datasource", "uid": "osprey-sql"},
                            "targets": [{"refId": "A", "rawQuery": True, "format": "table",
                                         "rawSql": "select * from spans where service_name = '$nope'"}]}),
    ("panel type without a check", {"type": "piechart", "datasource": {"type": "grafana-postgresql-datasource", "uid": "osprey-sql"},
                                    "targets": [{"refId": "A", "rawQuery": True, "format": "table",
                                                 "rawSql": "select count(*) from spans"}]}),
]


@pytest.mark.parametrize("what,panel", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_panel_fails_the_test(env, srv, what, panel):
    """A panel this harness cannot run as Grafana would must fail, not pass unchecked."""
    dash = copy.deepcopy(DASHBOARDS["overview"])
    panel = {"id": 999, "title": what, "gridPos": {"h": 1, "w": 1, "x": 0, "y": 999},
             "fieldConfig": {"defaults": {}, "overrides": []}, **panel}
    dash["panels"].append(panel)
    runner = runner_for(srv, dash)
    runner.resolve_variables()
    with pytest.raises(g.UnsupportedQuery):
        results = [runner.run_target(panel, t) for t in panel["targets"]]
        check_panel(panel, results, runner)


def test_trace_search_with_tag_and_duration_filters(env, srv):
    """The traces dashboard's Jaeger search with its tag (logfmt) and min-duration boxes filled
    in, as a user would: every trace found has a span of the service/operation with that tag."""
    runner = runner_for(srv, DASHBOARDS["traces"])
    v = runner.resolve_variables()
    svc, op = v["service"].values[0], v["operation"].values[0]
    row = srv.rows(f"select span_attributes from spans where service_name = '{svc}' "
                   f"and span_name = '{op}' and duration_ms >= 1 limit 1")
    assert row, f"no span of {svc}/{op} of 1 ms or more"
    attrs = row[0]["span_attributes"]
    attrs = json.loads(attrs) if isinstance(attrs, str) else attrs
    key, value = next((k, str(x)) for k, x in sorted(attrs.items()) if " " not in str(x))
    v["tags"].values = [f'{key}="{value}"']
    v["min_duration"].values = ["1ms"]
    (panel,) = [p for p in DASHBOARDS["traces"]["panels"] if p.get("targets")
                and p["targets"][0].get("queryType") == "search"]
    res = runner.run_target(panel, panel["targets"][0])
    assert json.loads(res.body["query"]["tags"]) == {key: value}, res.request
    assert res.body["query"]["minDuration"] == "1ms", res.request
    assert res.body["data"], f"nothing found by {res.request}"
    for tr in res.body["data"]:
        procs = tr["processes"]
        assert any(procs[s["processID"]]["serviceName"] == svc and s["operationName"] == op
                   and s["duration"] >= 1000
                   and any(t["key"] == key and str(t["value"]).lower() == value.lower()
                           for t in s["tags"]) for s in tr["spans"]), \
            f"trace {tr['traceID']} has no {svc}/{op} span with {key}={value} of 1 ms or more"
