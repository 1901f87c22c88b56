"""`osprey collector` processing components end to end: each test runs the real binary on its own
small Collector config, feeds it with real clients (OTLP protobuf requests over gRPC stubs from
`opentelemetry-proto`, or the real OpenTelemetry Python SDK), and checks exactly what comes out
(in `osprey up` via its OTLP port 9202 role, in `file` exporter JSON lines, in a real Prometheus,
or in the collector log).

Where the expectations come from (upstream opentelemetry-collector(-contrib), read, not copied):
- processor/tailsamplingprocessor README + internal/sampling/{latency,and,string_tag_filter}.go:
  policies are ORed; `latency` samples when (latest end - earliest start over the whole trace)
  in whole ms >= threshold_ms; `string_attribute` looks at resource and span attributes, exact
  match unless enabled_regex_matching; `and` samples only when every sub-policy does; spans of a
  trace that arrive within decision_wait are decided (and forwarded) together, spans of sampled
  traces that arrive later are forwarded too.
- processor/probabilisticsamplerprocessor README + sampler_mode.go/fnvhasher.go: mode hash_seed
  when hash_seed is set; a span is kept iff FNV-1a-32(seed as 4 little-endian bytes ++ trace id)
  & 0x3FFF < uint32(pct * 16384/100) (8192 for 50%); 0% keeps nothing, 100% keeps everything.
- processor/attributesprocessor README + internal/coreinternal/attraction/{attraction,hasher}.go:
  insert only when absent, update only when present, upsert both, delete, hash = lower-case hex
  SHA-256 (feature gate coreinternal.attraction.hash.sha256 stable since v0.85) of the UTF-8
  string or of the int as 8 little-endian bytes, the result a string; extract upserts one string
  attribute per named group of `pattern`, leaving `key` as is; include.services (strict) limits
  the actions to spans whose resource service.name matches. processor/resourceprocessor: the same
  actions on resource attributes.
- processor/filterprocessor README: `traces.span` OTTL conditions, a span matching any is dropped
  (only that span: its children stay); `attributes[...]` in the span context are span attributes.
- connector/spanmetricsconnector (connector.go, factory.go DefaultNamespace
  "traces.span.metrics"): `traces.span.metrics.calls` (cumulative monotonic sum, no unit) and
  `traces.span.metrics.duration` (explicit histogram, unit ms, default buckets
  [2,4,6,8,10,50,100,200,400,800,1000,1400,2000,5000,10000,15000] ms) with dimensions service.name,
  span.name, span.kind (SPAN_KIND_*), status.code (STATUS_CODE_*); metrics resource = the spans'
  resource. exporter/prometheusremotewriteexporter + pkg/translator/prometheus: add_metric_suffixes
  (default true) -> `traces_span_metrics_calls_total`, unit ms -> `..._duration_milliseconds_
  {bucket,sum,count}`, attribute dots -> underscores, `le` = strconv.FormatFloat(b,'f',-1),
  job = resource service.name.
- exporter/debugexporter internal/otlptext (databuffer.go, traces.go): detailed verbosity prints
  `ResourceSpans #i`, `Resource attributes:`, `     -> k: Type(value)` (Str/Int/Bool/Double),
  `InstrumentationScope name version`, `Span #k`, then `    %-15s: %s` lines for Trace ID, Parent
  ID, ID, Name, Kind (Server/Client/...), Start/End time (Go time.Time String, UTC), Status code
  (Unset/Ok/Error), Status message, then `Attributes:`. The logging exporter is the old name of
  the same exporter.
- exporter/fileexporter README: one OTLP/JSON export request per line (resourceMetrics /
  resourceLogs, hex trace/span ids, int64 as decimal strings).
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import struct
import subprocess
import time
from pathlib import Path

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from conftest import free_port, wait_until
from otlp import attrs
from prom_server import PrometheusServer, prom_query, prom_values

UNSET, OK, ERROR = Status.STATUS_CODE_UNSET, Status.STATUS_CODE_OK, Status.STATUS_CODE_ERROR
SERVER, CLIENT, INTERNAL = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL


# ---------------------------------------------------------------- helpers: building and sending

def trace_id(test_no: int, i: int) -> bytes:
    """A readable, deterministic trace id: test number, zeros, trace number."""
    return bytes.fromhex(f"{test_no:04x}{'0' * 20}{i:08x}")


def span_id(i: int, j: int) -> bytes:
    return bytes.fromhex(f"{i + 1:08x}{j:08x}")


def mk_span(tid: bytes, sid: bytes, name: str, base_ns: int, start_ms: float, end_ms: float, *,
            parent: bytes = b"", kind=INTERNAL, status=UNSET, message="", attributes=None) -> Span:
    return Span(
        trace_id=tid, span_id=sid, parent_span_id=parent, name=name, kind=kind,
        start_time_unix_nano=base_ns + int(start_ms * 1_000_000),
        end_time_unix_nano=base_ns + int(end_ms * 1_000_000),
        attributes=attrs(attributes or {}),
        status=Status(code=status, message=message),
    )


def mk_request(groups, scope=("e2e.collector", "1.0")) -> ExportTraceServiceRequest:
    """groups: [(resource attributes, [Span, ...]), ...] -> one request, one ResourceSpans each."""
    return ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(
            resource=Resource(attributes=attrs(res)),
            scope_spans=[ScopeSpans(scope=InstrumentationScope(name=scope[0], version=scope[1]),
                                    spans=list(spans))])
        for res, spans in groups])


def export(endpoint: str, req: ExportTraceServiceRequest):
    """OTLP/gRPC Export to `endpoint`; the request must be accepted whole."""
    with grpc.insecure_channel(endpoint) as channel:
        resp = TraceServiceStub(channel).Export(req, timeout=30, wait_for_ready=True)
    assert resp.partial_success.rejected_spans == 0, f"partial success: {resp}"
    return resp


def grpc_receiver(port: int) -> dict:
    return {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{port}"}}}}


def to_osprey(server) -> dict:
    return {"endpoint": server.grpc, "tls": {"insecure": True}}


def stored(server) -> dict[str, dict]:
    """span_id -> row of every span in `osprey up`."""
    rows = server.rows("select trace_id, span_id, span_name, service_name, span_attributes, "
                       "resource_attributes from spans")
    return {r["span_id"]: r for r in rows}


def base_ns() -> int:
    return time.time_ns() - 60_000_000_000


def wait_for_spans(server, want: dict, what: str, timeout=60.0) -> dict[str, dict]:
    """Waits until every span id of `want` (span id -> name) is in `osprey up`; on timeout
    names the missing ones. Returns every stored span."""
    def missing():
        got = stored(server)
        return {sid: name for sid, name in want.items() if sid not in got}
    try:
        wait_until(lambda: not missing(), timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; missing "
                             f"{missing()}; stored: "
                             f"{ {sid: (r['trace_id'], r['span_name']) for sid, r in stored(server).items()} }"
                             ) from None
    return stored(server)


# ---------------------------------------------------------------- helpers: file exporter output

def json_lines(path: Path) -> list[dict]:
    """The complete JSON lines of a file exporter's output (a line still being written is
    skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def any_value(v: dict):
    """An OTLP/JSON AnyValue as a Python value (int64 accepted as string or number)."""
    (kind, val), = v.items()
    if kind == "intValue":
        return int(val)
    if kind == "doubleValue":
        return float(val)
    if kind == "arrayValue":
        return [any_value(x) for x in val.get("values", [])]
    if kind == "kvlistValue":
        return {kv["key"]: any_value(kv["value"]) for kv in val.get("values", [])}
    return val


def attr_dict(kvs) -> dict:
    return {kv["key"]: any_value(kv.get("value", {"stringValue": ""})) for kv in kvs or []}


def file_spans(path: Path) -> list[tuple[dict, dict]]:
    """(resource attributes, span) for every span in a file exporter's trace output."""
    out = []
    for doc in json_lines(path):
        for rs in doc.get("resourceSpans", []):
            res = attr_dict(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    out.append((res, s))
    return out


def settled(fn, settle=1.5, timeout=60.0, what="value"):
    """Waits until `fn()` returns the same value twice `settle` seconds apart; returns it."""
    deadline = time.monotonic() + timeout
    last = fn()
    while True:
        time.sleep(settle)
        now = fn()
        if now == last:
            return now
        last = now
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still changing after {timeout}s; last {now!r}")


# ================================================================ 1. tail_sampling

TAIL_POLICIES = [
    {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
    {"name": "slow", "type": "latency", "latency": {"threshold_ms": 500}},
    {"name": "gold", "type": "string_attribute",
     "string_attribute": {"key": "tenant", "values": ["gold"]}},
    {"name": "silver-and-slowish", "type": "and", "and": {"and_sub_policy": [
        {"name": "silver", "type": "string_attribute",
         "string_attribute": {"key": "tenant", "values": ["silver"]}},
        {"name": "slowish", "type": "latency", "latency": {"threshold_ms": 200}},
    ]}},
]


def tail_traces(base: int):
    """30 traces of service "shop" (plus one whose resource carries tenant=gold). Returns
    (first request groups, late request spans, sampled trace numbers)."""
    T = 1
    shop, gold_res = [], []
    sampled = set()

    def trace(i, spans_spec, *, keep, resource=None):
        """spans_spec: [(name, start_ms, end_ms, kwargs)], the first one the root."""
        tid = trace_id(T, i)
        root = span_id(i, 1)
        spans = []
        for j, (name, s, e, kw) in enumerate(spans_spec, start=1):
            parent = b"" if j == 1 else root
            spans.append(mk_span(tid, span_id(i, j), name, base, s, e, parent=parent, **kw))
        (resource if resource is not None else shop).extend(spans)
        if keep:
            sampled.add(i)

    # -- sampled
    for i in range(0, 3):   # an ERROR child span
        trace(i, [("GET /err", 0, 40, {"kind": SERVER}),
                  ("db", 5, 30, {"status": ERROR, "message": "deadlock"})], keep=True)
    trace(3, [("GET /err-root", 0, 40, {"kind": SERVER, "status": ERROR})], keep=True)
    for i in range(4, 7):   # one span longer than 500 ms
        trace(i, [("GET /slow", 0, 650, {"kind": SERVER}), ("work", 10, 20, {})], keep=True)
    # no span is 500 ms long, but the trace spans 0 -> 560 ms
    trace(7, [("GET /spread", 0, 100, {"kind": SERVER}), ("async tail", 480, 560, {})], keep=True)
    for i in range(8, 11):  # tenant=gold on a child span
        trace(i, [("GET /vip", 0, 30, {"kind": SERVER}),
                  ("lookup", 5, 10, {"attributes": {"tenant": "gold"}})], keep=True)
    trace(11, [("GET /vip-res", 0, 30, {"kind": SERVER})], keep=True, resource=gold_res)
    for i in (12, 13):      # and: tenant=silver and >= 200 ms
        trace(i, [("GET /silver", 0, 300, {"kind": SERVER, "attributes": {"tenant": "silver"}}),
                  ("step", 20, 40, {})], keep=True)
    # -- not sampled
    for i in (14, 15):      # silver but only 100 ms
        trace(i, [("GET /silver-fast", 0, 100, {"kind": SERVER,
                                                 "attributes": {"tenant": "silver"}})], keep=False)
    trace(16, [("GET /bronze", 0, 300, {"kind": SERVER, "attributes": {"tenant": "bronze"}})],
          keep=False)
    trace(17, [("GET /ok", 0, 40, {"kind": SERVER, "status": OK}),
               ("db", 5, 30, {"status": OK})], keep=False)
    trace(18, [("GET /almost", 0, 490, {"kind": SERVER})], keep=False)
    trace(19, [("GET /Gold", 0, 30, {"kind": SERVER, "attributes": {"tenant": "Gold"}})],
          keep=False)
    trace(20, [("GET /golden", 0, 30, {"kind": SERVER, "attributes": {"tenant": "golden"}})],
          keep=False)
    for i in range(21, 30):
        trace(i, [("GET /plain", 0, 10 + i, {"kind": SERVER}), ("child", 2, 5, {})], keep=False)

    groups = [({"service.name": "shop"}, shop),
              ({"service.name": "shop", "tenant": "gold"}, gold_res)]
    # Spans of the same traces in a second request, sent right after the first: neutral spans
    # (no error, inside the trace's time window, no tenant) so they cannot change a decision.
    late = []
    for i, (s, e) in {0: (10, 20), 4: (100, 200), 8: (12, 14), 12: (50, 80), 21: (3, 4)}.items():
        late.append(mk_span(trace_id(T, i), span_id(i, 9), "late child", base, s, e,
                            parent=span_id(i, 1)))
    return groups, late, sampled


def test_tail_sampling_keeps_exactly_the_matching_traces(make_server, make_collector):
    server = make_server()
    port = free_port()
    make_collector({
        "receivers": grpc_receiver(port),
        "processors": {"tail_sampling": {"decision_wait": "1s", "num_traces": 1000,
                                         "policies": TAIL_POLICIES}},
        "exporters": {"otlp": to_osprey(server)},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"],
                                             "processors": ["tail_sampling"],
                                             "exporters": ["otlp"]}}},
    })
    base = base_ns()
    groups, late, sampled = tail_traces(base)
    assert len({s.trace_id for _, spans in groups for s in spans}) == 30
    export(f"127.0.0.1:{port}", mk_request(groups))
    export(f"127.0.0.1:{port}", mk_request([({"service.name": "shop"}, late)]))

    all_spans = [s for _, spans in groups for s in spans] + late
    expected = {s.span_id.hex(): s for s in all_spans
                if int.from_bytes(s.trace_id[-4:], "big") in sampled}
    assert len(sampled) == 14 and len(expected) == 30, (len(sampled), len(expected))

    wait_for_spans(server, {sid: s.name for sid, s in expected.items()},
                   "every span of the 14 sampled traces in osprey up")
    # A sentinel trace decided after all the others: once it is stored, every other decision
    # was made and exported long before.
    sentinel = mk_span(trace_id(1, 99), span_id(99, 1), "sentinel", base, 0, 5, status=ERROR)
    export(f"127.0.0.1:{port}", mk_request([({"service.name": "shop"}, [sentinel])]))
    wait_for_spans(server, {sentinel.span_id.hex(): "sentinel"}, "the sentinel trace")

    got = stored(server)
    got.pop(sentinel.span_id.hex())
    extra = {sid: (r["trace_id"], r["span_name"]) for sid, r in got.items() if sid not in expected}
    assert not extra, f"spans of traces that match no policy were exported: {extra}"
    assert set(got) == set(expected)
    got_traces = {int(r["trace_id"][-8:], 16) for r in got.values()}
    assert got_traces == sampled
    for sid, s in expected.items():
        assert got[sid]["trace_id"] == s.trace_id.hex()
        assert got[sid]["span_name"] == s.name
    # the late spans of sampled traces are there, the late span of trace 21 is not
    assert {got[s.span_id.hex()]["trace_id"] for s in late if s.span_id.hex() in got} == \
        {trace_id(1, i).hex() for i in (0, 4, 8, 12)}


# ================================================================ 2. probabilistic_sampler

HASH_SEED = 22
N_TRACES = 400


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def upstream_keeps(tid: bytes, seed=HASH_SEED) -> bool:
    """hash_seed mode at 50%: uint32(50 * 16384/100) = 8192."""
    return fnv1a32(struct.pack("<I", seed) + tid) & 0x3FFF < 8192


class SeededIds:
    """An SDK IdGenerator whose ids come from a seeded RNG: two runs send the same ids."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self.rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.rng.getrandbits(128) or 1


def sdk_send_roots(endpoint: str, seed: int, n: int) -> list[str]:
    """`n` root spans (so `n` traces) from the real SDK over OTLP/gRPC; returns the trace ids."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class Ids(SeededIds, IdGenerator):
        pass

    provider = TracerProvider(resource=SdkResource.create({"service.name": "sampled-svc"}),
                              id_generator=Ids(seed))
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=30)))
    tracer = provider.get_tracer("e2e.sampling")
    ids = []
    for i in range(n):
        span = tracer.start_span(f"op-{i}")
        ids.append(format(span.get_span_context().trace_id, "032x"))
        span.end()
    assert provider.force_flush(60_000), "SDK force_flush timed out"
    provider.shutdown()
    return ids


def sampler_config(port: int, out: dict[str, Path], processors: dict) -> dict:
    return {
        "receivers": grpc_receiver(port),
        "processors": processors,
        "exporters": {f"file/{name}": {"path": str(path)} for name, path in out.items()},
        "service": {"pipelines": {
            f"traces/{name}": {"receivers": ["otlp"],
                               "processors": [f"probabilistic_sampler/{name}"],
                               "exporters": [f"file/{name}"]}
            for name in out}},
    }


def test_probabilistic_sampler_0_100_and_seeded_50(make_collector, tmp_path):
    half = {"sampling_percentage": 50, "hash_seed": HASH_SEED}
    out1 = {"zero": tmp_path / "zero.json", "all": tmp_path / "all.json",
            "half": tmp_path / "half1.json"}
    port1, port2 = free_port(), free_port()
    c1 = make_collector(sampler_config(port1, out1, {
        "probabilistic_sampler/zero": {"sampling_percentage": 0},
        "probabilistic_sampler/all": {"sampling_percentage": 100},
        "probabilistic_sampler/half": half,
    }))
    out2 = {"half": tmp_path / "half2.json"}
    c2 = make_collector(sampler_config(port2, out2, {"probabilistic_sampler/half": dict(half)}))

    sent1 = sdk_send_roots(f"127.0.0.1:{port1}", seed=20240601, n=N_TRACES)
    sent2 = sdk_send_roots(f"127.0.0.1:{port2}", seed=20240601, n=N_TRACES)
    assert sent1 == sent2 and len(set(sent1)) == N_TRACES

    def trace_ids(path):
        return sorted(s["traceId"] for _, s in file_spans(path))

    wait_until(lambda: len(trace_ids(out1["all"])) >= N_TRACES, timeout=60,
               what="all 400 spans in the 100% pipeline's file")
    all_ids = settled(lambda: trace_ids(out1["all"]), what="100% file")
    kept1 = settled(lambda: trace_ids(out1["half"]), what="50% file (collector 1)")
    kept2 = settled(lambda: trace_ids(out2["half"]), what="50% file (collector 2)")
    zero = settled(lambda: trace_ids(out1["zero"]), what="0% file")

    assert c1.metric("otelcol_receiver_accepted_spans_total", receiver="otlp") == N_TRACES
    assert c2.metric("otelcol_receiver_accepted_spans_total", receiver="otlp") == N_TRACES
    assert zero == [], f"sampling_percentage 0 let {len(zero)} spans through"
    assert all_ids == sorted(sent1), "sampling_percentage 100 must keep every span exactly once"
    assert len(set(kept1)) == len(kept1), "a span was written twice"
    assert set(kept1) <= set(sent1)
    assert kept1 == kept2, "same hash_seed and trace ids, different decisions"
    assert 0.35 * N_TRACES <= len(kept1) <= 0.65 * N_TRACES, len(kept1)
    # and the decision is upstream's (collectors of one tier must agree with each other)
    want = sorted(t for t in sent1 if upstream_keeps(bytes.fromhex(t)))
    assert kept1 == want, (f"kept {len(kept1)} traces, upstream's hash_seed rule keeps "
                           f"{len(want)}; only ours: {sorted(set(kept1) - set(want))[:5]}, "
                           f"only upstream's: {sorted(set(want) - set(kept1))[:5]}")


# ================================================================ 3. attributes + resource

ATTR_ACTIONS = [
    {"key": "env.inserted", "value": "yes", "action": "insert"},
    {"key": "http.method", "value": "SHOULD-NOT-APPEAR", "action": "insert"},
    {"key": "http.status_code", "value": 201, "action": "update"},
    {"key": "absent.key", "value": "nope", "action": "update"},
    {"key": "region", "value": "eu-west-1", "action": "upsert"},
    {"key": "tier", "value": "premium", "action": "upsert"},
    {"key": "copy.of.user", "from_attribute": "user.id", "action": "insert"},
    {"key": "password", "action": "delete"},
    {"key": "user.email", "action": "hash"},
    {"key": "customer.number", "action": "hash"},
    {"key": "http.target", "action": "extract",
     "pattern": r"^/api/(?P<api_version>v\d+)/orders/(?P<order_id>\d+)$"},
]

SPAN_ATTRS = {"http.method": "GET", "http.status_code": 200, "region": "us-east-1",
              "password": "hunter2", "user.email": "alice@example.com", "user.id": "u-42",
              "customer.number": 42, "http.target": "/api/v2/orders/1234"}


def sha256_hex(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_attributes_and_resource_processors(make_server, make_collector):
    server = make_server()
    port = free_port()
    make_collector({
        "receivers": grpc_receiver(port),
        "processors": {
            "attributes/checkout": {"include": {"match_type": "strict", "services": ["checkout"]},
                                    "actions": ATTR_ACTIONS},
            "resource": {"attributes": [
                {"key": "deployment.environment", "value": "production", "action": "upsert"},
                {"key": "internal.secret", "action": "delete"},
            ]},
        },
        "exporters": {"otlp": to_osprey(server)},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"],
                                             "processors": ["attributes/checkout", "resource"],
                                             "exporters": ["otlp"]}}},
    })
    base = base_ns()
    tid_c, tid_p = trace_id(3, 1), trace_id(3, 2)
    checkout = mk_span(tid_c, span_id(1, 1), "GET /orders", base, 0, 20, kind=SERVER,
                       attributes=SPAN_ATTRS)
    payments = mk_span(tid_p, span_id(2, 1), "POST /pay", base, 0, 20, kind=SERVER,
                       attributes=SPAN_ATTRS)
    export(f"127.0.0.1:{port}", mk_request([
        ({"service.name": "checkout", "deployment.environment": "staging",
          "internal.secret": "s3cr3t", "host.name": "h1"}, [checkout]),
        ({"service.name": "payments", "internal.secret": "s3cr3t", "host.name": "h2"},
         [payments]),
    ]))
    want_ids = {checkout.span_id.hex(), payments.span_id.hex()}
    got = wait_for_spans(server, {checkout.span_id.hex(): checkout.name,
                                  payments.span_id.hex(): payments.name}, "both spans")
    assert set(got) == want_ids

    c = got[checkout.span_id.hex()]
    assert c["span_attributes"] == {
        "http.method": "GET",                       # insert does not overwrite
        "http.status_code": "201",                  # update of an existing key
        "region": "eu-west-1",                      # upsert of an existing key
        "tier": "premium",                          # upsert of a new key
        "env.inserted": "yes",                      # insert of a new key
        "copy.of.user": "u-42",                     # insert from_attribute
        "user.id": "u-42",
        "user.email": sha256_hex(b"alice@example.com"),
        "customer.number": sha256_hex(struct.pack("<q", 42)),
        "http.target": "/api/v2/orders/1234",       # extract leaves the source as is
        "api_version": "v2",
        "order_id": "1234",
    }                                               # password deleted, absent.key not created
    assert c["resource_attributes"] == {"service.name": "checkout", "host.name": "h1",
                                        "deployment.environment": "production"}

    p = got[payments.span_id.hex()]
    assert p["span_attributes"] == {k: str(v) for k, v in SPAN_ATTRS.items()}, \
        "the attributes processor must only act on service checkout"
    assert p["resource_attributes"] == {"service.name": "payments", "host.name": "h2",
                                        "deployment.environment": "production"}

    # Value types, through the Jaeger API (tags carry a type): update with an int value stays an
    # int, a hashed int becomes a string, extracted values are strings.
    def tags():
        r = requests.get(f"{server.api}/api/traces/{tid_c.hex()}", timeout=30)
        assert r.status_code == 200, r.text[:500]
        spans = r.json()["data"][0]["spans"]
        return {t["key"]: (t["type"], t["value"]) for t in spans[0]["tags"]}
    t = wait_until(tags, timeout=30, what="checkout trace on the Jaeger API")
    assert t["http.status_code"] == ("int64", 201)
    assert t["customer.number"] == ("string", sha256_hex(struct.pack("<q", 42)))
    assert t["order_id"] == ("string", "1234")
    assert t["tier"] == ("string", "premium")


# ================================================================ 4. filter

def test_filter_processor_drops_exactly_the_matching_spans(make_server, make_collector):
    server = make_server()
    port = free_port()
    make_collector({
        "receivers": grpc_receiver(port),
        "processors": {"filter/noise": {"traces": {"span": [
            'attributes["http.route"] == "/health"',
            'name == "ignored"',
        ]}}},
        "exporters": {"otlp": to_osprey(server)},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"],
                                             "processors": ["filter/noise"],
                                             "exporters": ["otlp"]}}},
    })
    base = base_ns()
    t = lambda i: trace_id(4, i)  # noqa: E731
    health = mk_span(t(1), span_id(1, 1), "GET /health", base, 0, 5, kind=SERVER,
                     attributes={"http.route": "/health"})
    spans = {
        "health": (health, False),
        "health child": (mk_span(t(1), span_id(1, 2), "health child", base, 1, 2,
                                 parent=health.span_id), True),
        "ignored": (mk_span(t(2), span_id(2, 1), "ignored", base, 0, 5), False),
        "ignored on /cart": (mk_span(t(3), span_id(3, 1), "ignored", base, 0, 5,
                                     attributes={"http.route": "/cart"}), False),
        "cart": (mk_span(t(4), span_id(4, 1), "GET /cart", base, 0, 5, kind=SERVER,
                         attributes={"http.route": "/cart"}), True),
        "healthz": (mk_span(t(5), span_id(5, 1), "GET /healthz", base, 0, 5,
                            attributes={"http.route": "/healthz"}), True),
        "Ignored": (mk_span(t(6), span_id(6, 1), "Ignored", base, 0, 5), True),
        "ignored-ish": (mk_span(t(7), span_id(7, 1), "ignored.step", base, 0, 5), True),
    }
    edge = mk_span(t(8), span_id(8, 1), "GET /edge", base, 0, 5, kind=SERVER)   # kept
    probes = [mk_span(t(9 + i), span_id(9 + i, 1), "GET /health", base, 0, 1,
                      attributes={"http.route": "/health"}) for i in range(2)]  # dropped
    export(f"127.0.0.1:{port}", mk_request([
        ({"service.name": "shop"}, [s for s, _ in spans.values()]),
        # a resource attribute http.route=/health is not a span attribute: kept
        ({"service.name": "edge", "http.route": "/health"}, [edge]),
        # every span of this resource is dropped
        ({"service.name": "prober"}, probes),
    ]))
    kept = {s.span_id.hex(): s.name for s, keep in spans.values() if keep}
    kept[edge.span_id.hex()] = edge.name
    got = wait_for_spans(server, kept, "the kept spans")
    assert {sid: r["span_name"] for sid, r in got.items()} == kept
    assert got[edge.span_id.hex()]["service_name"] == "edge"


# ================================================================ 5. spanmetrics -> PRW -> Prometheus

@pytest.fixture
def prometheus(tmp_path):
    """A real Prometheus with the remote-write receiver, on a free loopback port."""
    with PrometheusServer(tmp_path / "prometheus") as prom:
        yield prom.url


def test_spanmetrics_to_prometheus_remote_write(make_collector, prometheus):
    port = free_port()
    make_collector({
        "receivers": grpc_receiver(port),
        "connectors": {"spanmetrics": {"metrics_flush_interval": "1s"}},
        "exporters": {"prometheusremotewrite": {"endpoint": f"{prometheus}/api/v1/write"}},
        "service": {"pipelines": {
            "traces": {"receivers": ["otlp"], "exporters": ["spanmetrics"]},
            "metrics": {"receivers": ["spanmetrics"], "exporters": ["prometheusremotewrite"]},
        }},
    })
    base = base_ns()
    # 7 SERVER "GET /cart": ERROR 1 ms and 300 ms; UNSET 1, 30, 30, 30, 300 ms.
    # 3 CLIENT "SELECT cart", UNSET, 5 ms each.
    durations = [(1, ERROR), (300, ERROR), (1, UNSET), (30, UNSET), (30, UNSET), (30, UNSET),
                 (300, UNSET)]
    spans = []
    for i, (ms, status) in enumerate(durations):
        tid = trace_id(5, i)
        spans.append(mk_span(tid, span_id(i, 1), "GET /cart", base, 0, ms, kind=SERVER,
                             status=status, attributes={"http.route": "/cart"}))
        if i < 3:
            spans.append(mk_span(tid, span_id(i, 2), "SELECT cart", base, 0, 5, kind=CLIENT,
                                 parent=span_id(i, 1)))
    # two requests, so that the counts add up across requests
    export(f"127.0.0.1:{port}", mk_request([({"service.name": "checkout"}, spans[:5])]))
    export(f"127.0.0.1:{port}", mk_request([({"service.name": "checkout"}, spans[5:])]))

    sel = 'service_name="checkout",span_name="GET /cart",span_kind="SPAN_KIND_SERVER"'
    calls = "traces_span_metrics_calls_total{%s}" % sel

    def calls_by_status():
        return {dict(k)["status_code"]: v for k, v in prom_values(prometheus, calls).items()}
    want = {"STATUS_CODE_ERROR": 2.0, "STATUS_CODE_UNSET": 5.0}
    try:
        wait_until(lambda: calls_by_status() == want, timeout=90,
                   what="calls_total ERROR=2, UNSET=5 in Prometheus")
    except AssertionError:
        raise AssertionError(f"{calls}: want {want}, Prometheus has {calls_by_status()}") from None

    series = prom_query(prometheus, 'traces_span_metrics_calls_total{%s,status_code='
                                    '"STATUS_CODE_ERROR"}' % sel)
    assert len(series) == 1, series
    labels = series[0]["metric"]
    assert labels["__name__"] == "traces_span_metrics_calls_total"
    assert labels["job"] == "checkout", labels        # resource service.name -> job
    assert float(series[0]["value"][1]) == 2.0

    client = prom_values(prometheus, 'traces_span_metrics_calls_total{service_name="checkout",'
                                     'span_name="SELECT cart"}')
    assert [(dict(k)["span_kind"], dict(k)["status_code"], v) for k, v in client.items()] == \
        [("SPAN_KIND_CLIENT", "STATUS_CODE_UNSET", 3.0)]

    hist = "traces_span_metrics_duration_milliseconds"

    def by_status(metric, extra=""):
        q = "%s{%s%s}" % (metric, sel, extra)
        return {dict(k)["status_code"]: v for k, v in prom_values(prometheus, q).items()}

    wait_until(lambda: by_status(hist + "_count") == {"STATUS_CODE_ERROR": 2.0,
                                                      "STATUS_CODE_UNSET": 5.0},
               timeout=60, what="duration _count ERROR=2, UNSET=5")
    assert sum(by_status(hist + "_count").values()) == 7
    assert by_status(hist + "_sum") == {"STATUS_CODE_ERROR": 301.0, "STATUS_CODE_UNSET": 391.0}
    buckets = {le: by_status(hist + "_bucket", f',le="{le}"') for le in ("2", "50", "400", "+Inf")}
    assert buckets == {
        "2": {"STATUS_CODE_ERROR": 1.0, "STATUS_CODE_UNSET": 1.0},
        "50": {"STATUS_CODE_ERROR": 1.0, "STATUS_CODE_UNSET": 4.0},
        "400": {"STATUS_CODE_ERROR": 2.0, "STATUS_CODE_UNSET": 5.0},
        "+Inf": {"STATUS_CODE_ERROR": 2.0, "STATUS_CODE_UNSET": 5.0},
    }
    # the default buckets, and nothing else: 16 bounds + +Inf per series
    les = {dict(k)["le"] for k in prom_values(
        prometheus, '%s_bucket{%s,status_code="STATUS_CODE_UNSET"}' % (hist, sel))}
    assert les == {"2", "4", "6", "8", "10", "50", "100", "200", "400", "800", "1000", "1400",
                   "2000", "5000", "10000", "15000", "+Inf"}


# ================================================================ 6. debug / logging exporter

DEBUG_START_NS = 1_700_000_000_123_456_789   # 2023-11-14 22:13:20.123456789 UTC


@pytest.mark.parametrize("exporter", ["debug", "logging"])
def test_debug_exporter_detailed_prints_upstream_format(make_collector, exporter):
    port = free_port()
    c = make_collector({
        "receivers": grpc_receiver(port),
        "exporters": {exporter: {"verbosity": "detailed"}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": [exporter]}}},
    })
    tid = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
    root = mk_span(tid, bytes.fromhex("1112131415161718"), "GET /cart", DEBUG_START_NS, 0, 250,
                   kind=SERVER, status=ERROR, message="boom",
                   attributes={"http.route": "/cart", "http.status_code": 500,
                               "cache.hit": True, "ratio": 0.5})
    child = mk_span(tid, bytes.fromhex("2122232425262728"), "SELECT cart", DEBUG_START_NS, 10, 20,
                    kind=CLIENT, parent=root.span_id, attributes={"db.system": "postgresql"})
    export(f"127.0.0.1:{port}", mk_request([({"service.name": "checkout"}, [root, child])],
                                           scope=("e2e.debug", "1.2.3")))
    expected = [
        "ResourceSpans #0",
        "Resource attributes:",
        "     -> service.name: Str(checkout)",
        "ScopeSpans #0",
        "InstrumentationScope e2e.debug 1.2.3",
        "Span #0",
        "    Trace ID       : 0102030405060708090a0b0c0d0e0f10",
        "    ID             : 1112131415161718",
        "    Name           : GET /cart",
        "    Kind           : Server",
        "    Start time     : 2023-11-14 22:13:20.123456789 +0000 UTC",
        "    End time       : 2023-11-14 22:13:20.373456789 +0000 UTC",
        "    Status code    : Error",
        "    Status message : boom",
        "Attributes:",
        "     -> http.route: Str(/cart)",
        "     -> http.status_code: Int(500)",
        "     -> cache.hit: Bool(true)",
        "     -> ratio: Double(0.5)",
        "Span #1",
        "    Trace ID       : 0102030405060708090a0b0c0d0e0f10",
        "    Parent ID      : 1112131415161718",
        "    ID             : 2122232425262728",
        "    Name           : SELECT cart",
        "    Kind           : Client",
        "    Status code    : Unset",
        "Attributes:",
        "     -> db.system: Str(postgresql)",
    ]

    def missing():
        lines = c.log_text().splitlines()
        i = 0
        for line in lines:
            if i < len(expected) and line.rstrip("\r").endswith(expected[i]):
                i += 1
        return expected[i:]
    try:
        wait_until(lambda: not missing(), timeout=30, what="the detailed span dump in the log")
    except AssertionError:
        pytest.fail(f"{exporter} exporter: from {missing()[0]!r} on, the expected lines were not "
                    f"found in order in the collector log:\n{c.log_tail(80)}")


# ================================================================ 7. metrics and logs pass through

def test_otlp_metrics_and_logs_pass_through_batch_to_file(make_collector, tmp_path):
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.trace import TraceFlags

    port = free_port()
    metrics_out, logs_out = tmp_path / "metrics.json", tmp_path / "logs.json"
    make_collector({
        "receivers": grpc_receiver(port),
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"file/metrics": {"path": str(metrics_out)},
                      "file/logs": {"path": str(logs_out)}},
        "service": {"pipelines": {
            "metrics": {"receivers": ["otlp"], "processors": ["batch"],
                        "exporters": ["file/metrics"]},
            "logs": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["file/logs"]},
        }},
    })
    endpoint = f"127.0.0.1:{port}"

    # ---- metrics: a counter and a histogram, cumulative (the OTLP exporter's default)
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True, timeout=30),
        export_interval_millis=3_600_000)
    mp = MeterProvider(resource=SdkResource.create({"service.name": "e2e-metrics"}),
                       metric_readers=[reader])
    meter = mp.get_meter("e2e.meter", "0.3")
    orders = meter.create_counter("e2e.orders", unit="{order}", description="orders placed")
    orders.add(3, {"shop": "a"})
    orders.add(4, {"shop": "a"})
    orders.add(10, {"shop": "b"})
    latency = meter.create_histogram("e2e.latency", unit="ms")
    for v in (5, 50, 500):
        latency.record(v, {"route": "/cart"})
    assert mp.force_flush(30_000)
    mp.shutdown()

    # ---- logs: one record with trace context
    lp = LoggerProvider(resource=SdkResource.create({"service.name": "e2e-logs"}))
    lp.add_log_record_processor(BatchLogRecordProcessor(
        OTLPLogExporter(endpoint=endpoint, insecure=True, timeout=30)))
    log_ts = time.time_ns() - 5_000_000_000
    lp.get_logger("e2e.logger", "2.0").emit(LogRecord(
        timestamp=log_ts, severity_text="WARN", severity_number=SeverityNumber.WARN,
        body="payment retried", attributes={"order.id": "o-17", "attempt": 2},
        trace_id=0x5B8EFFF798038103D269B633813FC60C, span_id=0xEEE19B7EC3C1B174,
        trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    assert lp.force_flush(30_000)
    lp.shutdown()

    def metrics_by_name():
        out = {}
        for doc in json_lines(metrics_out):
            for rm in doc.get("resourceMetrics", []):
                res = attr_dict(rm.get("resource", {}).get("attributes"))
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        out.setdefault(m["name"], []).append((res, sm.get("scope", {}), m))
        return out
    got = wait_until(lambda: (m := metrics_by_name()) and {"e2e.orders", "e2e.latency"} <= set(m)
                     and m, timeout=60, what="both metrics in the file exporter output")

    for res, scope, m in got["e2e.orders"]:
        assert res["service.name"] == "e2e-metrics"
        assert (scope.get("name"), scope.get("version")) == ("e2e.meter", "0.3")
        assert m.get("unit") == "{order}" and m.get("description") == "orders placed"
        s = m["sum"]
        assert s["isMonotonic"] is True
        assert s["aggregationTemporality"] in (2, "AGGREGATION_TEMPORALITY_CUMULATIVE")
        points = {attr_dict(p.get("attributes"))["shop"]: int(p["asInt"])
                  for p in s["dataPoints"]}
        assert points == {"a": 7, "b": 10}
    for res, scope, m in got["e2e.latency"]:
        assert res["service.name"] == "e2e-metrics" and m.get("unit") == "ms"
        (p,) = m["histogram"]["dataPoints"]
        assert attr_dict(p.get("attributes")) == {"route": "/cart"}
        assert int(p["count"]) == 3 and float(p["sum"]) == 555.0
        assert (float(p["min"]), float(p["max"])) == (5.0, 500.0)
        bounds = [float(b) for b in p["explicitBounds"]]
        assert bounds == [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]
        counts = [int(c) for c in p["bucketCounts"]]
        want = [0] * 16
        want[1] = want[4] = want[8] = 1       # 5 in (0,5], 50 in (25,50], 500 in (250,500]
        assert counts == want

    def records():
        out = []
        for doc in json_lines(logs_out):
            for rl in doc.get("resourceLogs", []):
                res = attr_dict(rl.get("resource", {}).get("attributes"))
                for sl in rl.get("scopeLogs", []):
                    for r in sl.get("logRecords", []):
                        out.append((res, sl.get("scope", {}), r))
        return out
    recs = wait_until(records, timeout=60, what="the log record in the file exporter output")
    assert len(recs) == 1, recs
    res, scope, r = recs[0]
    assert res["service.name"] == "e2e-logs"
    assert (scope.get("name"), scope.get("version")) == ("e2e.logger", "2.0")
    assert r["body"] == {"stringValue": "payment retried"}
    assert r["severityText"] == "WARN"
    assert r["severityNumber"] in (13, "SEVERITY_NUMBER_WARN")
    assert int(r["timeUnixNano"]) == log_ts
    assert attr_dict(r.get("attributes")) == {"order.id": "o-17", "attempt": 2}
    assert r["traceId"] == "5b8efff798038103d269b633813fc60c"
    assert r["spanId"] == "eee19b7ec3c1b174"
    assert int(r.get("flags", 0)) == 1
