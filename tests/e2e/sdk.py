"""One realistic data set, sent with the real OpenTelemetry Python SDK, for the Jaeger and Tempo
query API tests (test_jaeger_api.py, test_tempo_api.py).

Two services, each with its own TracerProvider (so each has one resource):

* `frontend` exports over OTLP/HTTP; resource {service.name, host.name="h1",
  deployment.environment="test", host.cpu.count=8 (int)} plus the SDK's own attributes.
* `backend` exports over OTLP/gRPC; resource {service.name, host.name="h2",
  deployment.environment="test"} plus the SDK's own attributes.

Timeline (ms after `t0`, a whole second one minute in the past; every timestamp also carries
+789 ns so that a rounding (instead of truncating) conversion to µs shows):

  A  checkout, error   frontend SERVER "GET /checkout"      0 → 120   status OK, typed attrs, event
                       └ frontend CLIENT "POST /api/charge" 10 → 100
                         └ backend SERVER "POST /charge"    20 → 90    (cross-service child)
                           │                                           status ERROR + description,
                           │                                           http.status_code=502, event
                           ├ backend INTERNAL "validate card"  25 → 30
                           └ backend PRODUCER "publish receipt" 85 → 88
  B  consumer          backend CONSUMER "process receipt"   200 → 203  root, link → A's producer
  C  checkout, ok      frontend SERVER "GET /checkout"      1000 → 1040
                       └ frontend CLIENT "POST /api/charge" 1005 → 1035
                         └ backend SERVER "POST /charge"    1010 → 1030  status OK, 200
  D  split             frontend SERVER "GET /split"         2000 → 2020  (second export request)
                       └ frontend INTERNAL "split.step"     2005 → 2010  (first export request)
  E  64-bit trace id   backend INTERNAL "legacy job"        3000 → 3002  trace id high 64 bits 0

Cross-service parent/child pairs (frontend → backend): one in A and one in C, so 2 calls.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags,
    set_span_in_context,
)

from conftest import wait_until

FRONTEND, BACKEND = "frontend", "backend"
FRONTEND_SCOPE = ("osprey.e2e.frontend", "1.0.0")
BACKEND_SCOPE = ("osprey.e2e.backend", "2.1.0")
SUB_US_NS = 789  # sub-microsecond digits on every timestamp

# OTLP enum values (opentelemetry/proto/trace/v1/trace.proto)
OTLP_KIND = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
OTLP_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}
# Jaeger's `span.kind` tag values (OpenTracing names)
JAEGER_KIND = {"INTERNAL": "internal", "SERVER": "server", "CLIENT": "client",
               "PRODUCER": "producer", "CONSUMER": "consumer"}


class Recorder(SpanExporter):
    """Passes spans to the real OTLP exporter; keeps each export call's spans and result."""

    def __init__(self, inner):
        self.inner = inner
        self.batches: list[list] = []
        self.results: list = []

    def export(self, spans):
        result = self.inner.export(spans)
        self.batches.append(list(spans))
        self.results.append(result)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


class ControlledIds(RandomIdGenerator):
    """Random ids, except that the next root span can be given a chosen trace id."""

    def __init__(self):
        self.next_trace_id: int | None = None

    def generate_trace_id(self) -> int:
        if self.next_trace_id is not None:
            tid, self.next_trace_id = self.next_trace_id, None
            return tid
        return super().generate_trace_id()


def remote_parent(span):
    """The context a server would extract from a propagated header: the caller as a remote
    parent (what really crosses a process boundary)."""
    sc = span.get_span_context()
    return set_span_in_context(NonRecordingSpan(SpanContext(
        trace_id=sc.trace_id, span_id=sc.span_id, is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED))))


def hex32(trace_id: int) -> str:
    return format(trace_id, "032x")


def hex16(span_id: int) -> str:
    return format(span_id, "016x")


@dataclass
class Dataset:
    t0: int                                   # ns, whole second
    spans: dict = field(default_factory=dict)  # key → finished SDK span (a ReadableSpan)
    traces: dict = field(default_factory=dict)  # "A".."E" → trace id (int)
    resources: dict = field(default_factory=dict)  # service → {attr: python value}
    recorders: dict = field(default_factory=dict)  # service → Recorder
    cross_service_calls: int = 2              # frontend → backend parent/child pairs

    def t(self, ms: float) -> int:
        return self.t0 + int(ms * 1_000_000) + SUB_US_NS

    def span(self, key: str):
        return self.spans[key]

    def trace_hex(self, name: str) -> str:
        return hex32(self.traces[name])

    def span_hex(self, key: str) -> str:
        return hex16(self.spans[key].context.span_id)

    def trace_spans(self, name: str) -> list:
        tid = self.traces[name]
        return [s for s in self.spans.values() if s.context.trace_id == tid]

    def service_of(self, span) -> str:
        return span.resource.attributes["service.name"]

    @property
    def all_span_ids(self) -> set[str]:
        return {hex16(s.context.span_id) for s in self.spans.values()}

    # time range helpers
    @property
    def start_s(self) -> int:
        return self.t0 // 1_000_000_000 - 60

    @property
    def end_s(self) -> int:
        return int(time.time()) + 60


def _provider(service: str, resource_attrs: dict, exporter, ids=None):
    resource = Resource.create({"service.name": service, **resource_attrs})
    recorder = Recorder(exporter)
    kw = {"id_generator": ids} if ids is not None else {}
    provider = TracerProvider(resource=resource, **kw)
    provider.add_span_processor(BatchSpanProcessor(recorder))
    return provider, recorder


def _flush(provider):
    assert provider.force_flush(30_000), "SDK force_flush timed out"


def send_dataset(server) -> Dataset:
    """Sends the data set described in the module docstring; returns what was sent."""
    t0 = (time.time_ns() // 1_000_000_000 - 60) * 1_000_000_000
    ds = Dataset(t0=t0)
    t = ds.t
    root_ctx = otel_context.Context()  # an empty context: no implicit parent

    fe_provider, fe_rec = _provider(
        FRONTEND, {"host.name": "h1", "deployment.environment": "test", "host.cpu.count": 8},
        HttpExporter(endpoint=server.otlp_http + "/v1/traces", timeout=30))
    be_ids = ControlledIds()
    be_provider, be_rec = _provider(
        BACKEND, {"host.name": "h2", "deployment.environment": "test"},
        GrpcExporter(endpoint=server.otlp_grpc, insecure=True, timeout=30), ids=be_ids)
    ds.recorders = {FRONTEND: fe_rec, BACKEND: be_rec}
    fe = fe_provider.get_tracer(*FRONTEND_SCOPE)
    be = be_provider.get_tracer(*BACKEND_SCOPE)

    # ---- A: checkout that fails in the backend
    a_root = fe.start_span("GET /checkout", context=root_ctx, kind=SpanKind.SERVER, start_time=t(0),
                           attributes={"http.method": "GET", "http.route": "/checkout",
                                       "http.status_code": 200, "cache.hit": True,
                                       "sample.ratio": 0.25, "feature.flags": ["a", "b"]})
    a_root.add_event("cart.loaded", {"items": 3, "cart.id": "c-1", "premium": True},
                     timestamp=t(5))
    a_root.set_status(Status(StatusCode.OK))
    a_client = fe.start_span("POST /api/charge", context=set_span_in_context(a_root),
                             kind=SpanKind.CLIENT, start_time=t(10),
                             attributes={"http.method": "POST", "peer.service": "backend",
                                         "net.peer.port": 8080})
    a_server = be.start_span("POST /charge", context=remote_parent(a_client), kind=SpanKind.SERVER,
                             start_time=t(20),
                             attributes={"http.method": "POST", "http.status_code": 502,
                                         "retry": False})
    a_server.add_event("exception", {"exception.type": "TimeoutError",
                                     "exception.message": "gateway timeout"}, timestamp=t(80))
    a_server.set_status(Status(StatusCode.ERROR, "payment gateway timeout"))
    a_internal = be.start_span("validate card", context=set_span_in_context(a_server),
                               kind=SpanKind.INTERNAL, start_time=t(25),
                               attributes={"card.brand": "visa"})
    a_internal.end(end_time=t(30))
    a_producer = be.start_span("publish receipt", context=set_span_in_context(a_server),
                               kind=SpanKind.PRODUCER, start_time=t(85),
                               attributes={"messaging.system": "kafka"})
    a_producer.end(end_time=t(88))
    a_server.end(end_time=t(90))
    a_client.end(end_time=t(100))
    a_root.end(end_time=t(120))

    # ---- B: a consumer in its own trace, linked to A's producer
    b_consumer = be.start_span("process receipt", context=root_ctx, kind=SpanKind.CONSUMER,
                               start_time=t(200),
                               links=[Link(a_producer.get_span_context(),
                                           {"link.reason": "receipt", "batch.size": 1})],
                               attributes={"messaging.system": "kafka"})
    b_consumer.end(end_time=t(203))

    # ---- C: a checkout that works
    c_root = fe.start_span("GET /checkout", context=root_ctx, kind=SpanKind.SERVER,
                           start_time=t(1000),
                           attributes={"http.method": "GET", "http.route": "/checkout",
                                       "http.status_code": 200})
    c_client = fe.start_span("POST /api/charge", context=set_span_in_context(c_root),
                             kind=SpanKind.CLIENT, start_time=t(1005),
                             attributes={"http.method": "POST", "peer.service": "backend"})
    c_server = be.start_span("POST /charge", context=remote_parent(c_client), kind=SpanKind.SERVER,
                             start_time=t(1010),
                             attributes={"http.method": "POST", "http.status_code": 200})
    c_server.set_status(Status(StatusCode.OK))
    c_server.end(end_time=t(1030))
    c_client.end(end_time=t(1035))
    c_root.end(end_time=t(1040))

    _flush(fe_provider)
    _flush(be_provider)

    # ---- D: one trace in two export requests (the child first, the root later)
    d_root = fe.start_span("GET /split", context=root_ctx, kind=SpanKind.SERVER, start_time=t(2000),
                           attributes={"http.route": "/split"})
    d_step = fe.start_span("split.step", context=set_span_in_context(d_root),
                           kind=SpanKind.INTERNAL, start_time=t(2005))
    d_step.end(end_time=t(2010))
    _flush(fe_provider)          # request 1: split.step only
    d_root.end(end_time=t(2020))
    _flush(fe_provider)          # request 2: GET /split

    # ---- E: a trace id whose high 64 bits are zero (a Jaeger "64-bit" trace id)
    low = int.from_bytes(os.urandom(8), "big") | (1 << 63)
    be_ids.next_trace_id = low
    e_job = be.start_span("legacy job", context=root_ctx, kind=SpanKind.INTERNAL, start_time=t(3000),
                          attributes={"job.id": 7})
    e_job.end(end_time=t(3002))
    _flush(be_provider)

    fe_provider.shutdown()
    be_provider.shutdown()

    ds.spans = {"a_root": a_root, "a_client": a_client, "a_server": a_server,
                "a_internal": a_internal, "a_producer": a_producer, "b_consumer": b_consumer,
                "c_root": c_root, "c_client": c_client, "c_server": c_server,
                "d_root": d_root, "d_step": d_step, "e_job": e_job}
    ds.traces = {"A": a_root.context.trace_id, "B": b_consumer.context.trace_id,
                 "C": c_root.context.trace_id, "D": d_root.context.trace_id,
                 "E": e_job.context.trace_id}
    ds.resources = {FRONTEND: dict(fe_provider.resource.attributes),
                    BACKEND: dict(be_provider.resource.attributes)}

    # What was sent is what the tests expect: check the SDK did what this module says.
    for rec in (fe_rec, be_rec):
        assert rec.results and all(r == SpanExportResult.SUCCESS for r in rec.results), \
            f"export failed: {rec.results}"
    assert e_job.context.trace_id == low and low < 1 << 64
    assert a_server.parent.span_id == a_client.context.span_id
    assert a_server.context.trace_id == a_root.context.trace_id
    assert b_consumer.parent is None and c_root.parent is None
    d_batches = [[s.name for s in b if s.context.trace_id == ds.traces["D"]]
                 for b in fe_rec.batches]
    assert [b for b in d_batches if b] == [["split.step"], ["GET /split"]], \
        f"trace D should have been exported in two requests: {d_batches}"
    assert len({s.context.trace_id for s in ds.spans.values()}) == 5
    return ds


def load_dataset(server, timeout=60.0) -> Dataset:
    """Sends the data set and waits until /api/sql holds every span (ingestion done)."""
    ds = send_dataset(server)
    want = ds.all_span_ids
    wait_until(lambda: want <= set(server.span_ids()), timeout=timeout,
               what=f"{len(want)} SDK spans in /api/sql")
    return ds
