"""`osprey collector` running the seed's OpenTelemetry Collector config (collector-fixed.yaml)
with only its endpoints changed, driven by real clients, checked in a real `osprey up` (SQL on
`spans`, and its Jaeger API) and a real Prometheus (remote write).

Sources for the expected values (read, not copied):

- OTLP passes through the Collector unchanged (receiver otlp -> batch -> exporter otlp): every
  field of every span as the OpenTelemetry Python SDK made it (as in test_sdk_roundtrip.py).
- Jaeger Thrift -> OTLP: open-telemetry/opentelemetry-collector-contrib
  pkg/translator/jaeger/jaegerthrift_to_traces.go (`ThriftToTraces`, `setInternalSpanStatus`):
  process.serviceName -> resource `service.name` (the Python exporter sends no process tags);
  the `span.kind` tag -> kind (removed); `error=true` -> STATUS_CODE_ERROR (removed) with
  `otel.status_description` as the message (removed); `otel.status_code` OK/ERROR -> status and
  always removed; every other tag stays a span attribute with its Thrift type (the thrift
  translator, unlike the protobuf one, does not lift `otel.scope.*`/`otel.library.*` into the
  scope); logs -> events named by their `event` field (the Python exporter writes `message`, so
  the name stays empty and `message` stays an attribute); times in µs; the sampled bit of the
  Jaeger flags -> bit 0 of the OTLP flags (sampled_flag_test.go). Receiver answers
  `POST /api/traces` with 202 Accepted.
- What the legacy exporter sends (opentelemetry-exporter-jaeger-thrift 1.21, translate/__init__.py):
  span attributes AND resource attributes as span tags, `otel.status_code`,
  `otel.status_description`, `span.kind`, `otel.library.*` and `otel.scope.*`, `error=true`
  when the status is ERROR; tuples as `str(tuple)`; times rounded to µs; event name as log
  field `message`.
- Zipkin v2 -> OTLP: pkg/translator/zipkin/zipkinv2/to_translator.go: localEndpoint.serviceName
  -> `service.name`; tags that are resource semantic conventions (telemetry.sdk.*,
  deployment.environment, ...) move to the resource, other tags stay string attributes
  (parse_string_tags is false by default); `otel.library.*`/`otel.scope.*` -> scope;
  `otel.status_code` ("OK"/"ERROR") -> status with `otel.status_description` as message; an
  `error` tag whose value is not "true" stays an attribute; no kind (the Python exporter writes
  `"kind": null` for INTERNAL) -> SPAN_KIND_UNSPECIFIED; annotations -> events named by their
  whole value (the Python exporter writes `{"<name>": {attrs}}` JSON, which has no `|`).
  Receiver answers 202 Accepted.
- Zipkin v1 JSON (https://zipkin.io/zipkin-api/zipkin-api.yaml, the v1 model): converted the
  way Zipkin itself does (zipkin2.v1.V1SpanConverter, which Osprey documents in
  crates/osprey-receivers/src/zipkin/v1.rs): a span carrying cs/sr/ss/cr with two services is a
  span shared by client and server and becomes two spans with the same id: the client's
  (kind CLIENT, the span's own timestamp/duration, the client's binary annotations) and the
  server's (kind SERVER, timestamp sr, duration ss - sr, the server's binary annotations and
  plain annotations). NOTE: upstream's Collector (zipkinv1/json.go) does not split: it keeps one
  span whose kind comes from the first core annotation; this test follows Zipkin's model.
- prometheusremotewrite: pkg/translator/prometheusremotewrite + prometheus translator naming:
  a monotonic cumulative sum `requests` (unit "1") -> `requests_total` (unit "1" adds no
  suffix, `_ratio` is for gauges only); `job` = service.namespace "/" service.name,
  `instance` = service.instance.id; resource attributes are not series labels by default
  (resource_to_telemetry_conversion off) but make one `target_info` series (value 1) with the
  other resource attributes as labels; newer versions add `otel_scope_name`/`otel_scope_version`
  labels unless disable_scope_info (allowed here, checked when present).
- Collector own telemetry: `otelcol_receiver_accepted_spans_total{receiver,transport}`,
  `otelcol_exporter_sent_spans_total{exporter}` count spans (not requests).
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter, MetricExportResult, PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from collector import Collector, run_validate, seed_collector_config
from conftest import Server, free_port, wait_until
from otlp import normalize_row

REPO = Path(__file__).resolve().parents[2]
LEGACY_PYTHON = REPO / ".venv-legacy" / "bin" / "python"
SCOPE = ("e2e.collector", "3.1.4")
ARRIVAL_TIMEOUT = 60


# ---------------------------------------------------------------- helpers: values

def text(v) -> str:
    """The documented /api/sql text form of an attribute value: strings as-is, the rest as
    compact JSON."""
    if isinstance(v, str):
        return v
    return json.dumps(list(v) if isinstance(v, tuple) else v, separators=(",", ":"),
                      ensure_ascii=False)


def texts(d) -> dict:
    return {k: text(v) for k, v in dict(d).items()}


def us_round(ns: int) -> int:
    """ns -> µs the way the Python Jaeger and Zipkin exporters round (`(ns + 500) // 1000`)."""
    return (ns + 500) // 1000


def hex32(i: int) -> str:
    return format(i, "032x")


def hex16(i: int) -> str:
    return format(i, "016x")


def spans_of_trace(server, trace_hex: str, n: int) -> dict:
    """Waits until `spans` holds `n` rows of the trace; returns them normalized, keyed by
    (span_id, span_kind) (a Zipkin v1 shared span gives two rows with one span id)."""
    q = f"select * from spans where trace_id = '{trace_hex}'"
    rows = wait_until(lambda: (r := server.rows(q)) and len(r) >= n and r,
                      timeout=ARRIVAL_TIMEOUT, what=f"{n} spans of trace {trace_hex}")
    assert len(rows) == n, f"trace {trace_hex}: {len(rows)} rows, want {n}: {rows}"
    out = {}
    for r in rows:
        key = (r["span_id"], r["span_kind"])
        assert key not in out, f"duplicate row {key}: {rows}"
        out[key] = normalize_row(r)
    return out


def by_span_id(rows: dict) -> dict:
    out = {sid: row for (sid, _), row in rows.items()}
    assert len(out) == len(rows), f"span ids repeat: {sorted(rows)}"
    return out


def jaeger_trace(server, trace_hex: str, n: int) -> dict:
    """The trace on osprey up's Jaeger API, once it has `n` spans: spanID -> summary."""
    def fetch():
        r = requests.get(f"{server.api}/api/traces/{trace_hex}", timeout=30)
        if r.status_code != 200:
            return None
        data = r.json().get("data") or []
        return data[0] if len(data) == 1 and len(data[0].get("spans") or []) == n else None

    tr = wait_until(fetch, timeout=30, what=f"trace {trace_hex} with {n} spans on /api/traces")
    out = {}
    for s in tr["spans"]:
        out[s["spanID"]] = {
            "name": s["operationName"],
            "service": tr["processes"][s["processID"]]["serviceName"],
            "tags": {t["key"]: t["value"] for t in s.get("tags") or []},
            "refs": [(r["refType"], r["spanID"]) for r in s.get("references") or []],
            "startTime": s["startTime"],
            "duration": s["duration"],
            "logs": [{f["key"]: f["value"] for f in lg.get("fields") or []}
                     for lg in s.get("logs") or []],
        }
    return out


def free_udp_port() -> int:
    for _ in range(200):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free UDP port")


# ---------------------------------------------------------------- Prometheus

class Prometheus:
    """A real Prometheus with the remote-write receiver on, on a free loopback port."""

    def __init__(self, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None
        self.error: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return self.url + "/api/v1/write"

    def start(self) -> "Prometheus":
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
        cmd = [binary, f"--config.file={cfg}", "--web.enable-remote-write-receiver",
               f"--storage.tsdb.path={self.workdir / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{self.port}"]
        try:
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            log.close()
            wait_until(lambda: self.proc.poll() is None
                       and requests.get(self.url + "/-/ready", timeout=5).status_code == 200,
                       timeout=60, what="prometheus /-/ready")
        except Exception as e:  # noqa: BLE001 - reported by the test that needs Prometheus
            self.error = f"prometheus did not start: {e}\n{self.log_tail()}"
        return self

    def query(self, promql: str) -> list:
        r = requests.get(self.url + "/api/v1/query", params={"query": promql}, timeout=30)
        assert r.status_code == 200, f"{promql}: HTTP {r.status_code} {r.text[:500]}"
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def log_tail(self, lines=60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# ---------------------------------------------------------------- configs

def set_endpoint(node: dict, key: str, value: str):
    """Sets `node[key].endpoint`, keeping whatever else `node[key]` holds (an empty body such
    as `grpc:` becomes `{endpoint: ...}`)."""
    body = node.get(key)
    node[key] = {**(body or {}), "endpoint": value}


def without_endpoints(v):
    """The config with every `endpoint` key removed and empty bodies as None."""
    if isinstance(v, dict):
        out = {k: without_endpoints(x) for k, x in v.items() if k != "endpoint"}
        return out or None
    if isinstance(v, list):
        return [without_endpoints(x) for x in v]
    return v


def seed_config(server_grpc: str, prw_url: str, ports: dict) -> dict:
    """The seed's collector config with only its endpoints changed."""
    cfg = copy.deepcopy(seed_collector_config())
    jp = cfg["receivers"]["jaeger"]["protocols"]
    set_endpoint(jp, "grpc", f"127.0.0.1:{ports['jaeger_grpc']}")
    set_endpoint(jp, "thrift_http", f"127.0.0.1:{ports['thrift_http']}")
    op = cfg["receivers"]["otlp"]["protocols"]
    set_endpoint(op, "grpc", f"127.0.0.1:{ports['otlp_grpc']}")
    set_endpoint(op, "http", f"127.0.0.1:{ports['otlp_http']}")
    set_endpoint(cfg["exporters"], "otlp", server_grpc)
    set_endpoint(cfg["exporters"], "prometheusremotewrite", prw_url)
    return cfg


def fresh_ports() -> dict:
    return {k: free_port() for k in ("jaeger_grpc", "thrift_http", "otlp_grpc", "otlp_http")}


def zipkin_config(server_grpc: str, port: int) -> dict:
    return {
        "receivers": {"zipkin": {"endpoint": f"127.0.0.1:{port}"}},
        "processors": {"batch": None},
        "exporters": {"otlp": {"endpoint": server_grpc, "tls": {"insecure": True}}},
        "service": {"pipelines": {"traces": {
            "receivers": ["zipkin"], "processors": ["batch"], "exporters": ["otlp"]}}},
    }


# ---------------------------------------------------------------- module environment

@dataclass
class Env:
    server: Server
    prom: Prometheus
    collector: Collector   # the seed config's collector (started by the `env` fixture)
    config: dict
    ports: dict
    sent: Counter = field(default_factory=Counter)  # spans sent per receiver type

    @property
    def logs(self):
        return [self.server, self.collector, self.prom]


@pytest.fixture(scope="module")
def base(binary, tmp_path_factory):
    """osprey up, Prometheus, and the seed config written for a collector not started yet."""
    root = tmp_path_factory.mktemp("collector-receivers")
    (root / "server").mkdir()
    server = Server(binary, root / "server").start()
    prom = Prometheus(root / "prometheus").start()
    ports = fresh_ports()
    cfg = seed_config(server.grpc, prom.write_url, ports)
    collector = Collector(binary, root / "collector", cfg)
    try:
        yield Env(server, prom, collector, cfg, ports)
    finally:
        collector.kill9()
        prom.stop()
        server.kill9()


@pytest.fixture(scope="module")
def env(base) -> Env:
    if not base.collector.running():
        base.collector.start()
    return base


@pytest.fixture
def b(base, request) -> Env:
    request.node._osprey_servers = list(base.logs)  # their logs go into a failing test's report
    return base


@pytest.fixture
def e(env, request) -> Env:
    request.node._osprey_servers = list(env.logs)
    return env


@pytest.fixture(scope="module")
def zipkin_env(base, binary, tmp_path_factory):
    port = free_port()
    cfg = zipkin_config(base.server.grpc, port)
    c = Collector(binary, tmp_path_factory.mktemp("zipkin-collector"), cfg)
    try:
        c.start()
        yield c, port
    finally:
        c.kill9()


@pytest.fixture
def z(b, zipkin_env, request):
    """(Env, zipkin collector, its port): needs only osprey up and the zipkin collector."""
    c, port = zipkin_env
    request.node._osprey_servers = [b.server, c]
    return b, c, port


# ---------------------------------------------------------------- the SDK side

class Recorder(SpanExporter):
    """Passes spans to a real exporter; keeps the spans and each export's result."""

    def __init__(self, inner):
        self.inner, self.spans, self.results = inner, [], []

    def export(self, spans):
        result = self.inner.export(spans)
        self.results.append(result)
        self.spans.extend(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def emit_trace(tracer, base_ns: int) -> dict:
    """Root SERVER + child CLIENT (attributes, an event, error status) + an INTERNAL grandchild
    with unset status; explicit times with sub-µs digits."""
    t = lambda ms: base_ns + int(ms * 1_000_000) + 789  # noqa: E731
    root = tracer.start_span(
        "GET /orders", context=otel_context.Context(), kind=SpanKind.SERVER, start_time=t(0),
        attributes={"http.method": "GET", "http.route": "/orders", "http.status_code": 200,
                    "cache.hit": True, "ratio": 0.5})
    root.set_status(Status(StatusCode.OK))
    child = tracer.start_span(
        "SELECT orders", context=set_span_in_context(root), kind=SpanKind.CLIENT,
        start_time=t(2), attributes={"db.system": "postgresql", "db.rows": 3, "retry": False,
                                     "tags": ["a", "b"]})
    child.add_event("db.retry", {"attempt": 2, "reason": "timeout"}, timestamp=t(5.5))
    child.set_status(Status(StatusCode.ERROR, "db down"))
    grandchild = tracer.start_span("parse rows", context=set_span_in_context(child),
                                   kind=SpanKind.INTERNAL, start_time=t(20),
                                   attributes={"rows": 3})
    grandchild.end(end_time=t(21.25))
    child.end(end_time=t(30))
    root.end(end_time=t(40))
    return {"root": root, "child": child, "grandchild": grandchild}


def send_with(exporter, service: str, extra_resource=None):
    """Sends one `emit_trace` trace through `exporter`; returns (spans by role, resource attrs,
    recorder)."""
    resource = Resource.create({"service.name": service, "deployment.environment": "e2e",
                                "team": "orders", **(extra_resource or {})})
    rec = Recorder(exporter)
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(rec))
    spans = emit_trace(provider.get_tracer(*SCOPE), time.time_ns() - 60_000_000_000)
    assert provider.force_flush(30_000), "SDK force_flush timed out"
    provider.shutdown()
    return spans, dict(resource.attributes), rec


def otlp_expected(span, resource_attrs) -> dict:
    """The `spans` row of one SDK span that went through OTLP unchanged."""
    ctx = span.context
    return {
        "trace_id": hex32(ctx.trace_id),
        "span_id": hex16(ctx.span_id),
        "parent_span_id": hex16(span.parent.span_id) if span.parent else None,
        "trace_state": "",
        "service_name": resource_attrs["service.name"],
        "span_name": span.name,
        "span_kind": "SPAN_KIND_" + span.kind.name,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "duration_ms": round((span.end_time - span.start_time) / 1e6, 6),
        "status_code": "STATUS_CODE_" + span.status.status_code.name,
        "status_message": span.status.description or "",
        "span_attributes": texts(span.attributes),
        "resource_attributes": texts(resource_attrs),
        "scope_name": SCOPE[0],
        "scope_version": SCOPE[1],
        "events": [{"time": ev.timestamp, "name": ev.name, "attributes": texts(ev.attributes)}
                   for ev in span.events],
        "links": [],
        "dropped_attributes_count": 0,
        "dropped_events_count": 0,
        "dropped_links_count": 0,
        # the OTLP exporter sets HAS_IS_REMOTE (0x100); no parent here is remote
        "flags": 0x100,
    }


def check_jaeger_view(server, spans: dict, service: str):
    """The trace as osprey up's Jaeger API shows it (OTLP -> Jaeger translation)."""
    root, child, grand = spans["root"], spans["child"], spans["grandchild"]
    got = jaeger_trace(server, hex32(root.context.trace_id), 3)
    ids = {k: hex16(s.context.span_id) for k, s in spans.items()}
    assert set(got) == set(ids.values()), f"span ids {sorted(got)}, want {sorted(ids.values())}"
    r, c, g = got[ids["root"]], got[ids["child"]], got[ids["grandchild"]]
    assert [r["name"], c["name"], g["name"]] == ["GET /orders", "SELECT orders", "parse rows"]
    assert {r["service"], c["service"], g["service"]} == {service}
    assert (r["tags"]["span.kind"], c["tags"]["span.kind"], g["tags"]["span.kind"]) == \
        ("server", "client", "internal")
    assert r["tags"]["otel.status_code"] == "OK" and "error" not in r["tags"], r["tags"]
    assert (c["tags"]["otel.status_code"], c["tags"]["error"],
            c["tags"]["otel.status_description"]) == ("ERROR", True, "db down"), c["tags"]
    assert "otel.status_code" not in g["tags"] and "error" not in g["tags"], g["tags"]
    assert r["tags"]["http.status_code"] == 200 and r["tags"]["cache.hit"] is True
    assert c["tags"]["db.rows"] == 3 and c["tags"]["db.system"] == "postgresql"
    assert (r["tags"]["otel.scope.name"], r["tags"]["otel.scope.version"]) == SCOPE
    assert r["refs"] == [] and c["refs"] == [("CHILD_OF", ids["root"])] \
        and g["refs"] == [("CHILD_OF", ids["child"])]
    assert c["startTime"] == child.start_time // 1000
    assert c["duration"] == (child.end_time - child.start_time) // 1000
    assert c["logs"] == [{"event": "db.retry", "attempt": 2, "reason": "timeout"}], c["logs"]


def check_otlp_delivery(e: Env, protocol: str, exporter):
    service = f"coll-otlp-{protocol}"
    spans, res_attrs, rec = send_with(exporter, service)
    e.sent["otlp"] += len(rec.spans)
    assert rec.results and all(r == SpanExportResult.SUCCESS for r in rec.results), rec.results
    assert len(rec.spans) == 3

    got = by_span_id(spans_of_trace(e.server, hex32(spans["root"].context.trace_id), 3))
    for role, span in spans.items():
        want = otlp_expected(span, res_attrs)
        assert got[want["span_id"]] == want, f"{protocol}: span {role} ({span.name})"

    # literal spot checks, independent of otlp_expected
    root = got[hex16(spans["root"].context.span_id)]
    child = got[hex16(spans["child"].context.span_id)]
    grand = got[hex16(spans["grandchild"].context.span_id)]
    assert (root["span_kind"], child["span_kind"], grand["span_kind"]) == \
        ("SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_INTERNAL")
    assert (child["status_code"], child["status_message"]) == ("STATUS_CODE_ERROR", "db down")
    assert root["status_code"] == "STATUS_CODE_OK" and grand["status_code"] == "STATUS_CODE_UNSET"
    assert root["span_attributes"] == {"http.method": "GET", "http.route": "/orders",
                                       "http.status_code": "200", "cache.hit": "true",
                                       "ratio": "0.5"}
    assert child["span_attributes"] == {"db.system": "postgresql", "db.rows": "3",
                                        "retry": "false", "tags": '["a","b"]'}
    assert child["events"][0]["name"] == "db.retry"
    assert child["events"][0]["attributes"] == {"attempt": "2", "reason": "timeout"}
    assert root["resource_attributes"]["service.name"] == service
    assert root["resource_attributes"]["team"] == "orders"
    assert child["parent_span_id"] == root["span_id"] and root["parent_span_id"] is None
    assert grand["duration_ms"] == 1.25

    check_jaeger_view(e.server, spans, service)


# ---------------------------------------------------------------- 1. the seed's config

def test_seed_config_validates_with_only_endpoints_changed(b, binary):
    e = b
    seed = seed_collector_config()
    assert without_endpoints(e.config) == without_endpoints(seed), \
        "the test's config must differ from the seed's only in endpoints"
    changed = {
        ("receivers", "jaeger", "protocols", "grpc"), ("receivers", "jaeger", "protocols", "thrift_http"),
        ("receivers", "otlp", "protocols", "grpc"), ("receivers", "otlp", "protocols", "http"),
        ("exporters", "otlp"), ("exporters", "prometheusremotewrite"),
    }
    for path in changed:
        node = e.config
        for k in path:
            node = node[k]
        assert node["endpoint"], path
    # the seed's own keys are all there, e.g. the exporters' settings
    assert e.config["exporters"]["otlp"]["compression"] == "none"
    assert e.config["exporters"]["otlp"]["tls"] == {"insecure": True}
    assert e.config["exporters"]["prometheusremotewrite"]["tls"] == {"insecure": True}
    assert "logging" in e.config["exporters"] and "batch" in e.config["processors"]

    r = run_validate(binary, e.collector.config_path)
    assert r.returncode == 0, \
        f"validate refused the seed config (endpoints changed only):\n{r.stdout}\n{r.stderr}"


def test_otlp_grpc_sdk_through_collector(e):
    check_otlp_delivery(e, "grpc", GrpcExporter(
        endpoint=f"127.0.0.1:{e.ports['otlp_grpc']}", insecure=True, timeout=30))


def test_otlp_http_sdk_through_collector(e):
    check_otlp_delivery(e, "http", HttpExporter(
        endpoint=f"http://127.0.0.1:{e.ports['otlp_http']}/v1/traces", timeout=30))


# ---------------------------------------------------------------- 1c. legacy Jaeger exporter

LEGACY_SCRIPT = r'''
import json, sys
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.exporter.jaeger.thrift import JaegerExporter

mode, target, service, base = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "http":
    exporter = JaegerExporter(collector_endpoint=target, timeout=30)
else:
    host, _, port = target.rpartition(":")
    exporter = JaegerExporter(agent_host_name=host, agent_port=int(port))
provider = TracerProvider(resource=Resource.create(
    {"service.name": service, "deployment.environment": "e2e"}))
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("e2e.legacy", "0.9.1")
t = lambda ms: base + int(ms * 1000000) + 789
root = tracer.start_span("GET /legacy", context=Context(), kind=SpanKind.SERVER, start_time=t(0),
                         attributes={"http.method": "GET", "http.status_code": 200,
                                     "cache.hit": True, "ratio": 0.5})
root.set_status(Status(StatusCode.OK))
child = tracer.start_span("call db", context=set_span_in_context(root), kind=SpanKind.CLIENT,
                          start_time=t(3), attributes={"db.rows": 3, "tags": ["a", "b"]})
child.add_event("db.retry", {"attempt": 2}, timestamp=t(4.5))
child.set_status(Status(StatusCode.ERROR, "db down"))
child.end(end_time=t(10))
root.end(end_time=t(12))
assert provider.force_flush(30000)
code = exporter._collector.http_transport.code if mode == "http" else None

def sent(v):  # what _translate_attribute puts in the tag
    return str(v) if isinstance(v, tuple) else v

out = {"http_code": code, "spans": []}
for s in (root, child):
    out["spans"].append({
        "trace_id": s.context.trace_id, "span_id": s.context.span_id,
        "parent_id": s.parent.span_id if s.parent else None, "name": s.name,
        "kind": s.kind.name, "start": s.start_time, "end": s.end_time,
        "attributes": {k: sent(v) for k, v in s.attributes.items()},
        "status": s.status.status_code.name, "description": s.status.description,
        "events": [{"name": ev.name, "timestamp": ev.timestamp,
                    "attributes": {k: sent(v) for k, v in ev.attributes.items()}}
                   for ev in s.events],
        "scope": [s.instrumentation_scope.name, s.instrumentation_scope.version],
        "resource": dict(s.resource.attributes),
    })
provider.shutdown()
print(json.dumps(out))
'''


def run_legacy(mode: str, target: str, service: str) -> dict:
    assert LEGACY_PYTHON.exists(), f"{LEGACY_PYTHON} missing (bash scripts/install-test-deps.sh)"
    base = (time.time_ns() // 1_000_000 - 60_000) * 1_000_000  # a whole ms: +789 ns rounds up
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    p = subprocess.run([str(LEGACY_PYTHON), "-c", LEGACY_SCRIPT, mode, target, service, str(base)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, f"legacy exporter script failed:\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def jaeger_expected(s: dict, service: str) -> dict:
    """The `spans` row for one span the legacy Jaeger exporter sent (module docstring)."""
    start_us = us_round(s["start"])
    dur_us = us_round(s["end"] - s["start"])
    tags = dict(s["attributes"])
    tags.update(s["resource"])  # the exporter sends resource attributes as span tags
    tags.update({"otel.library.name": s["scope"][0], "otel.library.version": s["scope"][1],
                 "otel.scope.name": s["scope"][0], "otel.scope.version": s["scope"][1]})
    return {
        "trace_id": hex32(s["trace_id"]),
        "span_id": hex16(s["span_id"]),
        "parent_span_id": hex16(s["parent_id"]) if s["parent_id"] else None,
        "trace_state": "",
        "service_name": service,
        "span_name": s["name"],
        "span_kind": "SPAN_KIND_" + s["kind"],
        "start_time": start_us * 1000,
        "end_time": (start_us + dur_us) * 1000,
        "duration_ms": round(dur_us / 1e3, 6),
        "status_code": "STATUS_CODE_" + s["status"],
        "status_message": s["description"] or "",
        "span_attributes": texts(tags),
        "resource_attributes": {"service.name": service},
        "scope_name": "",
        "scope_version": "",
        "events": [{"time": us_round(ev["timestamp"]) * 1000, "name": "",
                    "attributes": {**texts(ev["attributes"]), "message": ev["name"]}}
                   for ev in s["events"]],
        "links": [],
        "dropped_attributes_count": 0,
        "dropped_events_count": 0,
        "dropped_links_count": 0,
    }


def check_legacy_spans(server, sent: dict, service: str):
    root, child = sent["spans"]
    got = by_span_id(spans_of_trace(server, hex32(root["trace_id"]), 2))
    for s in (root, child):
        want = jaeger_expected(s, service)
        row = dict(got[want["span_id"]])
        flags = row.pop("flags")
        assert flags & 1 == 1, f"{s['name']}: the sampled Jaeger flag should set OTLP flags bit 0: {flags:#x}"
        assert row == want, f"span {s['name']!r}"

    # literal spot checks of the translation rules
    r, c = got[hex16(root["span_id"])], got[hex16(child["span_id"])]
    assert (r["span_kind"], c["span_kind"]) == ("SPAN_KIND_SERVER", "SPAN_KIND_CLIENT")
    assert (r["status_code"], r["status_message"]) == ("STATUS_CODE_OK", "")
    assert (c["status_code"], c["status_message"]) == ("STATUS_CODE_ERROR", "db down")
    for key in ("span.kind", "otel.status_code", "otel.status_description", "error"):
        assert key not in r["span_attributes"] and key not in c["span_attributes"], key
    assert c["span_attributes"]["db.rows"] == "3"
    assert c["span_attributes"]["tags"] == "('a', 'b')"
    assert r["span_attributes"]["cache.hit"] == "true" and r["span_attributes"]["ratio"] == "0.5"
    assert r["span_attributes"]["service.name"] == service
    assert r["resource_attributes"] == {"service.name": service}
    assert c["parent_span_id"] == r["span_id"]
    assert c["duration_ms"] == 7.0  # 3.000789 ms .. 10.000789 ms: 7000 µs
    assert c["start_time"] % 1_000_000 == 1000  # 3.000789 ms rounded up to 3.001 ms

    jv = jaeger_trace(server, hex32(root["trace_id"]), 2)
    assert {v["service"] for v in jv.values()} == {service}
    assert jv[hex16(root["span_id"])]["tags"]["span.kind"] == "server"
    assert jv[hex16(child["span_id"])]["tags"]["span.kind"] == "client"
    assert jv[hex16(child["span_id"])]["tags"]["error"] is True


def test_jaeger_thrift_http_legacy_exporter(e):
    service = "coll-jaeger-thrift-http"
    sent = run_legacy("http", f"http://127.0.0.1:{e.ports['thrift_http']}/api/traces", service)
    e.sent["jaeger"] += len(sent["spans"])
    assert sent["http_code"] == 202, f"POST /api/traces answered {sent['http_code']}, want 202"
    check_legacy_spans(e.server, sent, service)


def test_jaeger_agent_udp_thrift_compact(b, make_collector, binary):
    e = b
    udp = free_udp_port()
    cfg = seed_config(e.server.grpc, e.prom.write_url, fresh_ports())
    cfg["receivers"]["jaeger"]["protocols"]["thrift_compact"] = {"endpoint": f"127.0.0.1:{udp}"}
    c = make_collector(cfg, start=False)
    r = run_validate(binary, c.config_path)
    assert r.returncode == 0, f"validate refused the config with thrift_compact:\n{r.stderr}"
    c.start()
    service = "coll-jaeger-agent-udp"
    sent = run_legacy("udp", f"127.0.0.1:{udp}", service)
    check_legacy_spans(e.server, sent, service)
    accepted = wait_until(
        lambda: (v := c.metric("otelcol_receiver_accepted_spans_total", receiver="jaeger")) >= 2
        and v, timeout=30, what="jaeger accepted spans >= 2")
    assert accepted == 2, f"otelcol_receiver_accepted_spans_total{{receiver=jaeger}} = {accepted}"


# ---------------------------------------------------------------- 1d. metrics -> Prometheus

class MetricRecorder(MetricExporter):
    def __init__(self, inner):
        super().__init__(preferred_temporality=inner._preferred_temporality,
                         preferred_aggregation=inner._preferred_aggregation)
        self.inner, self.results = inner, []

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.results.append(result)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs):
        self.inner.shutdown()


def test_otlp_metrics_through_seed_pipeline_into_prometheus(e):
    assert e.prom.error is None, e.prom.error
    resource = Resource.create({"service.name": "coll-metrics", "service.namespace": "shop",
                                "service.instance.id": "inst-7",
                                "deployment.environment": "e2e"})
    rec = MetricRecorder(OTLPMetricExporter(endpoint=f"127.0.0.1:{e.ports['otlp_grpc']}",
                                            insecure=True, timeout=30))
    reader = PeriodicExportingMetricReader(rec, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    counter = provider.get_meter("e2e.meter", "1.0.0").create_counter(
        "requests", unit="1", description="requests served")
    counter.add(5, {"route": "/a"})
    counter.add(2, {"route": "/a"})
    counter.add(4, {"route": "/b"})
    assert provider.force_flush(30_000)
    provider.shutdown()
    assert rec.results and all(r == MetricExportResult.SUCCESS for r in rec.results), rec.results

    q = 'requests_total{job="shop/coll-metrics"}'
    result = wait_until(lambda: (r := e.prom.query(q)) and len(r) >= 2 and r,
                        timeout=ARRIVAL_TIMEOUT, what=f"{q} in Prometheus (2 series)")
    got = {}
    for series in result:
        labels = dict(series["metric"])
        scope = {k: labels.pop(k) for k in list(labels) if k.startswith("otel_scope_")}
        assert scope in ({}, {"otel_scope_name": "e2e.meter", "otel_scope_version": "1.0.0"}), scope
        got[labels["route"]] = (labels, float(series["value"][1]))
    assert sorted(got) == ["/a", "/b"], result
    for route, value in (("/a", 7.0), ("/b", 4.0)):
        labels, v = got[route]
        assert labels == {"__name__": "requests_total", "job": "shop/coll-metrics",
                          "instance": "inst-7", "route": route}, labels
        assert v == value, f"route {route}: {v}, want {value}"
    assert e.prom.query('{__name__=~"requests|requests_ratio|requests_1"}') == []

    info = wait_until(lambda: e.prom.query('target_info{job="shop/coll-metrics"}'),
                      timeout=ARRIVAL_TIMEOUT, what="target_info in Prometheus")
    assert len(info) == 1, info
    labels = info[0]["metric"]
    assert float(info[0]["value"][1]) == 1.0
    want = {"__name__": "target_info", "job": "shop/coll-metrics", "instance": "inst-7",
            "deployment_environment": "e2e"}
    for k, v in resource.attributes.items():
        if k not in ("service.name", "service.namespace", "service.instance.id"):
            want[re.sub(r"[^a-zA-Z0-9_]", "_", k)] = text(v)
    assert labels == want, labels
    assert labels["telemetry_sdk_language"] == "python"


# ---------------------------------------------------------------- 2. zipkin

def zipkin_tag(v) -> str:
    """How the Python Zipkin exporter writes an attribute value as a tag."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float, str)):
        return str(v)
    return json.dumps([str(x).lower() if isinstance(x, bool) else str(x) for x in v],
                      separators=(",", ":"))


def test_zipkin_v2_python_exporter(z):
    e, _, port = z
    service = "coll-zipkin-v2"
    exporter = ZipkinExporter(endpoint=f"http://127.0.0.1:{port}/api/v2/spans", timeout=30)
    spans, res_attrs, rec = send_with(exporter, service)
    assert rec.results and all(r == SpanExportResult.SUCCESS for r in rec.results), \
        f"Zipkin export failed (receiver should answer 202): {rec.results}"

    got = by_span_id(spans_of_trace(e.server, hex32(spans["root"].context.trace_id), 3))
    # resource: service.name + the resource-convention tags; `team` is not one, so it stays a
    # span attribute
    want_resource = {k: str(v) for k, v in res_attrs.items() if k != "team"}
    for role, span in spans.items():
        sid = hex16(span.context.span_id)
        row = got[sid]
        start_us = us_round(span.start_time)
        dur_us = us_round(span.end_time - span.start_time)
        attrs = {k: zipkin_tag(v) for k, v in span.attributes.items()}
        attrs["team"] = "orders"
        status = span.status.status_code.name
        if status == "ERROR":
            attrs["error"] = span.status.description  # not "true": stays an attribute
        want = {
            "trace_id": hex32(span.context.trace_id),
            "span_id": sid,
            "parent_span_id": hex16(span.parent.span_id) if span.parent else None,
            "trace_state": "",
            "service_name": service,
            "span_name": span.name,
            "span_kind": {"SERVER": "SPAN_KIND_SERVER", "CLIENT": "SPAN_KIND_CLIENT",
                          "INTERNAL": "SPAN_KIND_UNSPECIFIED"}[span.kind.name],
            "start_time": start_us * 1000,
            "end_time": (start_us + dur_us) * 1000,
            "duration_ms": round(dur_us / 1e3, 6),
            "status_code": "STATUS_CODE_" + status,
            "status_message": "",
            "span_attributes": attrs,
            "resource_attributes": want_resource,
            "scope_name": SCOPE[0],
            "scope_version": SCOPE[1],
            "events": [{"time": us_round(ev.timestamp) * 1000,
                        "name": json.dumps({ev.name: dict(ev.attributes)}, sort_keys=True),
                        "attributes": {}} for ev in span.events],
            "links": [],
            "dropped_attributes_count": 0,
            "dropped_events_count": 0,
            "dropped_links_count": 0,
            "flags": 0,
        }
        assert row == want, f"span {role} ({span.name})"

    root = got[hex16(spans["root"].context.span_id)]
    child = got[hex16(spans["child"].context.span_id)]
    assert (root["span_kind"], child["span_kind"]) == ("SPAN_KIND_SERVER", "SPAN_KIND_CLIENT")
    assert (root["status_code"], child["status_code"]) == ("STATUS_CODE_OK", "STATUS_CODE_ERROR")
    assert child["span_attributes"]["error"] == "db down"
    assert child["span_attributes"]["db.rows"] == "3"  # strings: parse_string_tags is off
    assert child["span_attributes"]["tags"] == '["a","b"]'
    assert root["resource_attributes"]["telemetry.sdk.language"] == "python"
    assert "otel.scope.name" not in root["span_attributes"]
    assert child["events"][0]["name"] == '{"db.retry": {"attempt": 2, "reason": "timeout"}}'


def test_zipkin_v1_json_shared_span(z):
    e, _, port = z
    trace_hex = os.urandom(16).hex()
    sid, cid = os.urandom(8).hex(), os.urandom(8).hex()
    t0 = (time.time_ns() - 60_000_000_000) // 1000  # µs
    fe = {"serviceName": "v1-frontend"}
    be = {"serviceName": "v1-backend"}
    body = [
        {"traceId": trace_hex, "id": sid, "name": "get /api", "timestamp": t0, "duration": 5000,
         "annotations": [
             {"timestamp": t0, "value": "cs", "endpoint": fe},
             {"timestamp": t0 + 1000, "value": "sr", "endpoint": be},
             {"timestamp": t0 + 3000, "value": "cache.miss", "endpoint": be},
             {"timestamp": t0 + 4000, "value": "ss", "endpoint": be},
             {"timestamp": t0 + 5000, "value": "cr", "endpoint": fe}],
         "binaryAnnotations": [
             {"key": "http.path", "value": "/api", "endpoint": be},
             {"key": "clnt/finagle.version", "value": "6.45.0", "endpoint": fe}]},
        {"traceId": trace_hex, "id": cid, "parentId": sid, "name": "compute",
         "timestamp": t0 + 2000, "duration": 500,
         "binaryAnnotations": [{"key": "lc", "value": "worker", "endpoint": be}]},
    ]
    r = requests.post(f"http://127.0.0.1:{port}/api/v1/spans", data=json.dumps(body),
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 202, f"POST /api/v1/spans: HTTP {r.status_code} {r.text[:500]}"

    rows = spans_of_trace(e.server, trace_hex, 3)
    assert set(rows) == {(sid, "SPAN_KIND_CLIENT"), (sid, "SPAN_KIND_SERVER"),
                         (cid, "SPAN_KIND_UNSPECIFIED")}, sorted(rows)

    def want(span_id, kind, service, start_us, dur_us, attrs, events=(), parent=None):
        return {
            "trace_id": trace_hex, "span_id": span_id, "parent_span_id": parent,
            "trace_state": "", "service_name": service, "span_name": None, "span_kind": kind,
            "start_time": start_us * 1000, "end_time": (start_us + dur_us) * 1000,
            "duration_ms": round(dur_us / 1e3, 6), "status_code": "STATUS_CODE_UNSET",
            "status_message": "", "span_attributes": attrs,
            "resource_attributes": {"service.name": service}, "scope_name": "",
            "scope_version": "",
            "events": [{"time": ts * 1000, "name": name, "attributes": {}} for ts, name in events],
            "links": [], "dropped_attributes_count": 0, "dropped_events_count": 0,
            "dropped_links_count": 0, "flags": 0,
        }

    expected = {
        # the client owns the shared span's timestamp and duration
        (sid, "SPAN_KIND_CLIENT"): {**want(sid, "SPAN_KIND_CLIENT", "v1-frontend", t0, 5000,
                                           {"clnt/finagle.version": "6.45.0"}),
                                    "span_name": "get /api"},
        # the server side: sr .. ss, its binary annotation and its plain annotation
        (sid, "SPAN_KIND_SERVER"): {**want(sid, "SPAN_KIND_SERVER", "v1-backend", t0 + 1000,
                                           3000, {"http.path": "/api"},
                                           events=[(t0 + 3000, "cache.miss")]),
                                    "span_name": "get /api"},
        # a local span, recorded by the service of its "lc" annotation
        (cid, "SPAN_KIND_UNSPECIFIED"): {**want(cid, "SPAN_KIND_UNSPECIFIED", "v1-backend",
                                                t0 + 2000, 500, {"lc": "worker"}, parent=sid),
                                         "span_name": "compute"},
    }
    for key, row in expected.items():
        assert rows[key] == row, f"v1 span {key}"


# ---------------------------------------------------------------- 3. the collector's own metrics

def test_collector_own_span_counters(e):
    # one more trace of our own, so the counters are checked even when run alone
    spans, _, rec = send_with(GrpcExporter(endpoint=f"127.0.0.1:{e.ports['otlp_grpc']}",
                                           insecure=True, timeout=30), "coll-own-metrics")
    e.sent["otlp"] += len(rec.spans)
    assert all(r == SpanExportResult.SUCCESS for r in rec.results), rec.results
    spans_of_trace(e.server, hex32(spans["root"].context.trace_id), 3)

    c = e.collector
    want_otlp, want_jaeger = e.sent["otlp"], e.sent["jaeger"]
    total = want_otlp + want_jaeger
    accepted = wait_until(
        lambda: (v := c.metric("otelcol_receiver_accepted_spans_total", receiver="otlp"))
        >= want_otlp and v, timeout=30, what=f"otlp accepted spans >= {want_otlp}")
    assert accepted == want_otlp, \
        f"otelcol_receiver_accepted_spans_total{{receiver=otlp}} = {accepted}, the SDK sent {want_otlp}"
    assert c.metric("otelcol_receiver_accepted_spans_total", receiver="jaeger") == want_jaeger
    assert c.metric("otelcol_receiver_refused_spans_total") == 0

    sent = wait_until(
        lambda: (v := c.metric("otelcol_exporter_sent_spans_total", exporter="otlp"))
        >= total and v, timeout=60, what=f"otlp exporter sent spans >= {total}")
    assert sent == total, f"otelcol_exporter_sent_spans_total{{exporter=otlp}} = {sent}, want {total}"
    logged = wait_until(
        lambda: (v := c.metric("otelcol_exporter_sent_spans_total", exporter="logging"))
        >= total and v, timeout=60, what=f"logging exporter sent spans >= {total}")
    assert logged == total
    assert c.metric("otelcol_exporter_send_failed_spans_total") == 0
    assert c.metric("otelcol_exporter_enqueue_failed_spans_total") == 0
