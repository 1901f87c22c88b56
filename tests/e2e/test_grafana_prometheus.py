"""The Prometheus side of the Grafana provisioning Osprey installs: every Prometheus panel
target and template variable of every dashboard (deploy/helm/osprey/files/grafana), run the way
Grafana's Prometheus data source runs it (grafana.py says how, with sources) against a real
Prometheus fed by the install's OWN default collector configuration.

The setup is the install's data path on loopback: `osprey install --dry-run`'s
OpenTelemetryCollector config, its listen addresses moved to free loopback ports, its OTLP
exporter pointed at an `osprey up` (the store) and its prometheusremotewrite exporter at a
Debian Prometheus with `--web.enable-remote-write-receiver` (prom_server.py), as in the cluster.
`osprey loadgen` sends a steady stream of traces to the collector while the queries are
polled: rates need samples of growing counters at several spanmetrics flushes.

Checks: every query answers `success` with at least one series holding at least one finite
value; `$service` lists exactly the services that have server or consumer spans in the store;
once the load stops, the spanmetrics call counts in Prometheus add up to the spans in the store.
"""
from __future__ import annotations

import math
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml

import grafana as g
from collector import Collector
from conftest import Server, free_port, wait_until
from prom_server import PrometheusServer, prom_query

DASHBOARDS = g.load_dashboards()
DATASOURCES = g.load_datasources()
PROMETHEUS_UID = "osprey-prometheus"
REQUEST_KINDS = ("SPAN_KIND_SERVER", "SPAN_KIND_CONSUMER")
# The install's endpoints (files/collector.yaml with the namespace osprey-system).
STORE_OTLP = "osprey.osprey-system.svc:4317"
REMOTE_WRITE = "http://osprey-prometheus.osprey-system.svc:9090/api/v1/write"
DATA_TIMEOUT = 300  # seconds: a few spanmetrics flushes (15s) on a slow, busy machine


@dataclass
class Env:
    server: Server
    prometheus: PrometheusServer
    collector: Collector
    loadgen: subprocess.Popen
    loadgen_log: Path


def install_collector_config(binary: Path, server: Server, prometheus: str) -> tuple[dict, int]:
    """The default collector's config as `osprey install` applies it, with loopback endpoints;
    returns it and its OTLP/gRPC port."""
    out = subprocess.run([str(binary), "install", "--dry-run"], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    (cr,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "OpenTelemetryCollector"]
    config = yaml.safe_load(cr["spec"]["config"])
    ports = {}

    def listen_locally(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "endpoint" and isinstance(v, str):
                    assert re.fullmatch(r"0\.0\.0\.0:\d+", v), (path, v)
                    ports[path] = free_port()
                    node[k] = f"127.0.0.1:{ports[path]}"
                else:
                    listen_locally(v, f"{path}.{k}")
    listen_locally(config["receivers"], "receivers")
    exporters = config["exporters"]
    assert set(exporters) == {"otlp", "prometheusremotewrite"}, exporters
    assert exporters["otlp"]["endpoint"] == STORE_OTLP
    exporters["otlp"]["endpoint"] = server.otlp_grpc
    assert exporters["prometheusremotewrite"]["endpoint"] == REMOTE_WRITE
    exporters["prometheusremotewrite"]["endpoint"] = prometheus + "/api/v1/write"
    assert "spanmetrics" in config["connectors"], config
    return config, ports["receivers.otlp.protocols.grpc"]


@pytest.fixture(scope="module")
def env(binary, tmp_path_factory):
    work = tmp_path_factory.mktemp("grafana-prometheus")
    server = Server(binary, work / "store")
    (work / "store").mkdir()
    prometheus = PrometheusServer(work / "prometheus")
    collector = loadgen = None
    try:
        server.start()
        prometheus.start()
        config, otlp_port = install_collector_config(binary, server, prometheus.url)
        collector = Collector(binary, work / "collector", config).start()
        log = work / "loadgen.log"
        with open(log, "wb") as out:
            loadgen = subprocess.Popen(
                [str(binary), "loadgen", "--endpoint", f"http://127.0.0.1:{otlp_port}",
                 "--rate", "400", "--batch", "200", "--duration", "1800s", "--seed", "11"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        yield Env(server, prometheus, collector, loadgen, log)
    finally:
        if loadgen is not None and loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait(timeout=30)
        if collector is not None:
            collector.kill9()
        prometheus.stop()
        server.kill9()


@pytest.fixture
def live(env, request):
    """The env, its logs attached to a failing test's report."""
    request.node._osprey_servers = [env.server, env.collector]
    return env


def runner_for(env: Env, dashboard: dict) -> g.Runner:
    """A dashboard time range of "last 1 hour" ending now, in ms as a browser sends it."""
    to = time.time_ns() // 10**6 * 10**6
    pg = DATASOURCES["osprey-sql"]

    def connect():
        return psycopg.connect(host="127.0.0.1", port=env.server.pg_port, user=pg["user"],
                               dbname=pg["jsonData"]["database"], autocommit=True,
                               sslmode=pg["jsonData"]["sslmode"])
    return g.Runner(dashboard, DATASOURCES, connect, env.server.api,
                    g.TimeRange(to - 3600 * 10**9, to), prometheus_base=env.prometheus.url)


def prometheus_variables(dashboard: dict) -> list[str]:
    return [v["name"] for v in dashboard.get("templating", {}).get("list", [])
            if v.get("type") == "query"
            and DATASOURCES[v["datasource"]["uid"]]["type"] == g.PROMETHEUS_TYPE]


def prometheus_panels(dashboard: dict) -> list[dict]:
    return [p for p in g.all_panels(dashboard)
            if g.PROMETHEUS_TYPE in g.panel_datasource_types(p, DATASOURCES)]


def series_problem(res: g.Result) -> str | None:
    """Why a Prometheus result would show nothing in a panel (None: it has data)."""
    data = res.body
    if res.kind == "prometheus:range":
        if data["resultType"] != "matrix":
            return f"resultType {data['resultType']}"
        values = [float(v) for s in data["result"] for _, v in s["values"]]
    else:
        if data["resultType"] != "vector":
            return f"resultType {data['resultType']}"
        values = [float(s["value"][1]) for s in data["result"]]
    if not data["result"]:
        return "no series"
    if not any(math.isfinite(v) for v in values):
        return f"{len(data['result'])} series, no finite value"
    return None


def run_everything(env: Env) -> list[str]:
    """Every Prometheus variable and target of every dashboard, once; what lacks data."""
    problems = []
    for name in g.DASHBOARD_NAMES:
        d = DASHBOARDS[name]
        panels, variables = prometheus_panels(d), prometheus_variables(d)
        if not panels and not variables:
            continue
        runner = runner_for(env, d)
        try:
            resolved = runner.resolve_variables()
        except AssertionError as e:
            if isinstance(e, g.UnsupportedQuery):
                raise
            problems.append(f"{name}: variables: {e}")
            continue
        for v in variables:
            if not resolved[v].options:
                problems.append(f"{name}: variable {v} has no values")
        for p in panels:
            if len(g.panel_datasource_types(p, DATASOURCES)) != 1:
                raise g.UnsupportedQuery(f"{name} panel {p['id']}: mixed data sources")
            if p["type"] != "timeseries":
                raise g.UnsupportedQuery(f"{name} panel {p['id']}: no check for a {p['type']} "
                                         f"panel with Prometheus queries")
            for t in p["targets"]:
                if t.get("hide"):
                    continue
                res = runner.run_target(p, t)
                if res.kind != "prometheus:range":
                    raise g.UnsupportedQuery(f"{name} panel {p['id']}: {res.kind} in a time series")
                problem = series_problem(res)
                if problem:
                    problems.append(f"{name} panel {p['id']} {p['title']!r} {t['refId']}: "
                                    f"{problem}: {res.request}")
    return problems


def loadgen_running(env: Env):
    assert env.loadgen.poll() is None, \
        f"loadgen exited ({env.loadgen.returncode}):\n{env.loadgen_log.read_text()[-3000:]}"


# ---------------------------------------------------------------- no server

def test_prometheus_data_source_and_dashboard_provisioned():
    ds = DATASOURCES[PROMETHEUS_UID]
    assert (ds["type"], ds["url"], ds.get("access")) == \
        ("prometheus", "http://osprey-prometheus:9090", "proxy")
    assert ds["jsonData"]["timeInterval"] == "15s"
    # The collector flushes span metrics at the data source's scrape interval.
    config = yaml.safe_load((g.ROOT / "deploy/helm/osprey/files/collector.yaml").read_text())
    assert config["connectors"]["spanmetrics"]["metrics_flush_interval"] == \
        ds["jsonData"]["timeInterval"]
    red = DASHBOARDS["red-metrics"]
    assert prometheus_panels(red) and prometheus_variables(red) == ["service"]
    exprs = [t["expr"] for p in prometheus_panels(red) for t in p["targets"]]
    assert all("[$__rate_interval]" in e and '"$service"' in e for e in exprs), exprs
    assert sum("histogram_quantile(" in e for e in exprs) == 6, exprs


def test_interval_and_variable_interpolation_matches_grafana():
    """Cases worked out from promlib's query.go and the data source's escaping."""
    hour = g.TimeRange(0, 3600 * 10**9)
    # 1 h at 1000 points: 3.6 s rounds to 5 s, below the 15 s scrape interval.
    assert g.panel_interval_ms(hour.frm_ns, hour.to_ns, 1000, 15_000) == 15_000
    assert [g.go_duration_string(ms) for ms in (60_000, 75_000, 3_600_000, 1500, 500)] == \
        ["1m0s", "1m15s", "1h0m0s", "1.5s", "500ms"]
    assert [g.go_seconds(ns) for ns in (15 * 10**9, 5 * 10**8, 1_700_000_000_250_000_000)] == \
        ["15", "0.5", "1700000000.25"]
    v = {"s": g.Variable("s", ["a.b", "c"], True), "one": g.Variable("one", ["it's"], False),
         "all": g.Variable("all", [".*"], False, custom_all=True)}
    assert g.replace_prometheus_variables('x{a=~"$s",b="$one",c=~"${all}"}', v, {}) == \
        'x{a=~"(a\\\\.b|c)",b="it\\\\\'s",c=~".*"}'
    with pytest.raises(g.UnsupportedQuery):
        g.replace_prometheus_variables("${s:csv}", v, {})


# ---------------------------------------------------------------- live

def test_every_prometheus_query_returns_data(live):
    """Polls (the load keeps going) until every Prometheus variable and target of every
    dashboard has data; then checks the values the panels show."""
    last = []

    def all_have_data():
        loadgen_running(live)
        last[:] = run_everything(live)
        return not last
    try:
        wait_until(all_have_data, timeout=DATA_TIMEOUT, interval=5,
                   what="every Prometheus panel query to return data")
    except AssertionError as e:
        if isinstance(e, g.UnsupportedQuery):
            raise
        raise AssertionError("\n".join(last) or str(e)) from None
    # What the RED panels show is sane: rates > 0, ratios in [0, 1], p50 <= p95 <= p99.
    red = DASHBOARDS["red-metrics"]
    runner = runner_for(live, red)
    runner.resolve_variables()
    latest = {}
    for p in prometheus_panels(red):
        (t,) = p["targets"]
        res = runner.run_target(p, t)
        values = {tuple(sorted(s["metric"].items())): float(s["values"][-1][1])
                  for s in res.body["result"]}
        latest[p["title"]] = values
        finite = [x for x in values.values() if math.isfinite(x)]
        if p["fieldConfig"]["defaults"]["unit"] == "percentunit":
            assert all(0 <= x <= 1 for x in finite), (p["title"], values)
        else:
            assert finite and all(x >= 0 for x in finite), (p["title"], values)
        if p["fieldConfig"]["defaults"]["unit"] == "reqps":
            assert any(x > 0 for x in finite), (p["title"], values)
    for what in ("service", "operation"):
        p50, p95, p99 = (latest[f"{q} latency by {what}"] for q in ("p50", "p95", "p99"))
        for key in p50.keys() & p95.keys() & p99.keys():
            if all(math.isfinite(x[key]) for x in (p50, p95, p99)):
                assert p50[key] <= p95[key] <= p99[key], (what, key, p50[key], p95[key], p99[key])


def test_service_variable_lists_the_services_with_requests(live):
    runner = runner_for(live, DASHBOARDS["red-metrics"])
    kinds = ", ".join(f"'{k}'" for k in REQUEST_KINDS)
    sql = f"select distinct service_name from spans where span_kind in ({kinds})"

    def same():
        loadgen_running(live)
        got = set(runner.resolve_variables()["service"].options)
        want = {r[0] for r in live.server.sql(sql)["rows"]}
        return got == want and len(want) > 1 and (got, want)
    wait_until(same, timeout=DATA_TIMEOUT, interval=5,
               what="$service == the services with server/consumer spans in the store")


def test_span_metrics_count_every_span_the_store_has(live):
    """The collector's two paths agree: once the load stops, spanmetrics' calls (summed over
    every series) equal the spans the store received. Runs last: it stops the load."""
    loadgen_running(live)
    live.loadgen.send_signal(signal.SIGKILL)
    live.loadgen.wait(timeout=30)

    def counts():
        stored = live.server.sql("select count(*) from spans")["rows"][0][0]
        called = prom_query(live.prometheus.url, "sum(traces_span_metrics_calls_total)")
        total = float(called[0]["value"][1]) if called else 0.0
        return stored > 0 and total == stored and (stored, total)
    try:
        wait_until(counts, timeout=DATA_TIMEOUT, interval=2,
                   what="sum(traces_span_metrics_calls_total) == count(*) from spans")
    except AssertionError as e:
        raise AssertionError(f"{e}\nnow: {counts_text(live)}") from None


def counts_text(env: Env) -> str:
    stored = env.server.sql("select count(*) from spans")["rows"][0][0]
    called = prom_query(env.prometheus.url, "sum(traces_span_metrics_calls_total)")
    return f"store {stored}, spanmetrics {called}"
