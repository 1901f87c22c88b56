"""The real OpenTelemetry Python SDK exports to Osprey over OTLP/gRPC and OTLP/HTTP, and every
column of every span reads back exactly through /api/sql."""
from __future__ import annotations

import time

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import (
    Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState,
    set_span_in_context,
)

from conftest import wait_until
from otlp import normalize_row, parse_ts

ATTRS = {
    "http.method": "GET",
    "str": "hello",
    "unicode": "héllo ✓",
    "bool": True,
    "int": 42,
    "negative": -7,
    "float": 1.5,
    "float_whole": 3.0,
    "strs": ["a", "b"],
    "ints": [1, 2, 3],
    "bools": [True, False],
    "floats": [1.5, 2.25],
}
# The documented text forms (interfaces: strings as-is, other types as compact JSON).
ATTRS_TEXT = {
    "http.method": "GET",
    "str": "hello",
    "unicode": "héllo ✓",
    "bool": "true",
    "int": "42",
    "negative": "-7",
    "float": "1.5",
    "float_whole": "3.0",
    "strs": '["a","b"]',
    "ints": "[1,2,3]",
    "bools": "[true,false]",
    "floats": "[1.5,2.25]",
}


def text(v) -> str:
    """The documented text form of an SDK attribute value (for the SDK's own resource attrs)."""
    import json
    if isinstance(v, str):
        return v
    return json.dumps(list(v) if isinstance(v, tuple) else v, separators=(",", ":"),
                      ensure_ascii=False)


class Recorder(SpanExporter):
    """Passes spans to the real OTLP exporter and keeps every span and export result."""

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


def exporter_for(server, protocol):
    if protocol == "grpc":
        return GrpcExporter(endpoint=server.otlp_grpc, insecure=True, timeout=30)
    if protocol == "grpc-9202":
        return GrpcExporter(endpoint=server.grpc, insecure=True, timeout=30)
    return HttpExporter(endpoint=server.otlp_http + "/v1/traces", timeout=30)


def emit_spans(tracer, base_ns):
    """A small trace tree with every feature; explicit times so nothing is rounded."""
    t = lambda ms: base_ns + ms * 1_000_000 + 789  # noqa: E731  (non-zero ns digits)
    root = tracer.start_span("GET /users", kind=SpanKind.SERVER, attributes=ATTRS, start_time=t(0))
    root.add_event("cache.miss", {"cache.key": "user:1", "attempt": 2}, timestamp=t(1))
    root.add_event("no-attrs", timestamp=t(2))
    root.set_status(Status(StatusCode.OK))
    ctx = set_span_in_context(root)
    child = tracer.start_span("SELECT users", context=ctx, kind=SpanKind.CLIENT, start_time=t(3),
                              attributes={"db.system": "postgresql"})
    child.set_status(Status(StatusCode.ERROR, "connection reset"))
    grandchild = tracer.start_span("parse", context=set_span_in_context(child), start_time=t(4))
    grandchild.end(end_time=t(5))
    child.end(end_time=t(40))
    root.end(end_time=t(50))

    producer = tracer.start_span("publish", kind=SpanKind.PRODUCER, start_time=t(60))
    producer.end(end_time=t(61))
    consumer = tracer.start_span(
        "consume", kind=SpanKind.CONSUMER, start_time=t(70),
        links=[Link(producer.get_span_context(), {"link.reason": "batch", "n": 1})])
    consumer.end(end_time=t(75))

    remote = SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331,
                         is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("vendor", "abc"), ("other", "x")]))
    rchild = tracer.start_span("remote child", kind=SpanKind.SERVER, start_time=t(80),
                               context=set_span_in_context(NonRecordingSpan(remote)))
    rchild.end(end_time=t(81))
    return {"root": root, "child": child, "grandchild": grandchild, "producer": producer,
            "consumer": consumer, "remote": rchild}


def expected_from_sdk(span, resource_attrs) -> dict:
    """The row for one SDK ReadableSpan, computed from the SDK's own values."""
    ctx = span.context
    hx16 = lambda i: format(i, "016x")  # noqa: E731
    return {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": hx16(ctx.span_id),
        "parent_span_id": hx16(span.parent.span_id) if span.parent else None,
        "trace_state": ctx.trace_state.to_header(),
        "service_name": resource_attrs["service.name"],
        "span_name": span.name,
        "span_kind": "SPAN_KIND_" + span.kind.name,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "duration_ms": round((span.end_time - span.start_time) / 1e6, 6),
        "status_code": "STATUS_CODE_" + span.status.status_code.name,
        "status_message": span.status.description or "",
        "span_attributes": {k: text(v) for k, v in span.attributes.items()},
        "resource_attributes": {k: text(v) for k, v in resource_attrs.items()},
        "scope_name": span.instrumentation_scope.name,
        "scope_version": span.instrumentation_scope.version,
        "events": [{"time": e.timestamp, "name": e.name,
                    "attributes": {k: text(v) for k, v in e.attributes.items()}}
                   for e in span.events],
        "links": [{"trace_id": format(ln.context.trace_id, "032x"),
                   "span_id": hx16(ln.context.span_id),
                   "trace_state": ln.context.trace_state.to_header(),
                   "attributes": {k: text(v) for k, v in ln.attributes.items()}}
                  for ln in span.links],
        "dropped_attributes_count": 0,
        "dropped_events_count": 0,
        "dropped_links_count": 0,
        # OTLP exporters set HAS_IS_REMOTE (0x100) and IS_REMOTE (0x200) for remote parents.
        "flags": 0x100 | (0x200 if span.parent is not None and span.parent.is_remote else 0),
    }


@pytest.mark.parametrize("protocol", ["grpc", "http", "grpc-9202"])
def test_sdk_export_reads_back_exactly(server, protocol):
    service = f"sdk-{protocol}"
    resource = Resource.create({"service.name": service, "deployment.environment": "e2e",
                                "host.cpus": 2, "team.tags": ["a", "b"]})
    recorder = Recorder(exporter_for(server, protocol))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(recorder))
    tracer = provider.get_tracer("e2e.scope", "1.2.3")
    base = time.time_ns() - 60_000_000_000
    spans = emit_spans(tracer, base)
    assert provider.force_flush(30_000)
    provider.shutdown()
    assert recorder.results and all(r == SpanExportResult.SUCCESS for r in recorder.results), \
        recorder.results
    assert len(recorder.spans) == len(spans)

    res_attrs = dict(resource.attributes)
    expected = {format(s.context.span_id, "016x"): expected_from_sdk(s, res_attrs)
                for s in recorder.spans}
    query = f"select * from spans where service_name = '{service}'"
    got_rows = wait_until(lambda: (r := server.rows(query)) and len(r) >= len(expected) and r,
                          what=f"{len(expected)} spans of {service}")
    got = {r["span_id"]: normalize_row(r) for r in got_rows}
    assert sorted(got) == sorted(expected), "span ids differ"
    for sid, want in expected.items():
        assert got[sid] == want, f"span {want['span_name']!r}"

    # Spot checks written out literally, independent of the helpers above.
    ids = {name: format(s.context.span_id, "016x") for name, s in spans.items()}
    root, child = got[ids["root"]], got[ids["child"]]
    assert root["parent_span_id"] is None
    assert child["parent_span_id"] == ids["root"]
    assert got[ids["grandchild"]]["parent_span_id"] == ids["child"]
    assert root["trace_id"] == child["trace_id"] == format(spans["root"].context.trace_id, "032x")
    assert root["span_attributes"] == ATTRS_TEXT
    assert root["resource_attributes"]["deployment.environment"] == "e2e"
    assert root["resource_attributes"]["host.cpus"] == "2"
    assert root["resource_attributes"]["team.tags"] == '["a","b"]'
    assert (root["span_kind"], root["status_code"]) == ("SPAN_KIND_SERVER", "STATUS_CODE_OK")
    assert (child["span_kind"], child["status_code"], child["status_message"]) == \
        ("SPAN_KIND_CLIENT", "STATUS_CODE_ERROR", "connection reset")
    assert got[ids["grandchild"]]["span_kind"] == "SPAN_KIND_INTERNAL"
    assert got[ids["grandchild"]]["status_code"] == "STATUS_CODE_UNSET"
    assert got[ids["producer"]]["span_kind"] == "SPAN_KIND_PRODUCER"
    assert got[ids["consumer"]]["span_kind"] == "SPAN_KIND_CONSUMER"
    assert root["duration_ms"] == 50.0
    assert (root["scope_name"], root["scope_version"]) == ("e2e.scope", "1.2.3")
    assert root["events"][0]["name"] == "cache.miss"
    assert root["events"][0]["attributes"] == {"cache.key": "user:1", "attempt": "2"}
    assert root["events"][0]["time"] == base + 1_000_789
    assert got[ids["consumer"]]["links"] == [{
        "trace_id": format(spans["producer"].context.trace_id, "032x"), "span_id": ids["producer"],
        "trace_state": "", "attributes": {"link.reason": "batch", "n": "1"}}]
    remote = got[ids["remote"]]
    assert remote["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert remote["parent_span_id"] == "b7ad6b7169203331"
    assert remote["trace_state"] == "vendor=abc,other=x"


def test_sql_filters_on_attributes_and_formats_times(server):
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-filter"}))
    recorder = Recorder(exporter_for(server, "http"))
    provider.add_span_processor(BatchSpanProcessor(recorder))
    tracer = provider.get_tracer("filter")
    now = time.time_ns()
    start = now - now % 1_000_000_000 - 10_000_000_000 + 123_456_789
    for method in ("GET", "POST", "GET"):
        tracer.start_span(f"{method} /x", attributes={"http.method": method},
                          start_time=start).end(end_time=start + 2_500_000)
    provider.shutdown()
    assert all(r == SpanExportResult.SUCCESS for r in recorder.results)

    q = ("select span_name, start_time, duration_ms from spans "
         "where span_attributes['http.method'] = 'GET' order by span_name")
    rows = wait_until(lambda: (r := server.sql(q)["rows"]) and len(r) == 2 and r,
                      what="2 GET spans")
    assert [r[0] for r in rows] == ["GET /x", "GET /x"]
    for _, ts, dur in rows:
        assert parse_ts(ts) == start
        assert ts.endswith(".123456789Z"), f"timestamp {ts!r} should carry all nine digits"
        assert dur == 2.5
    count = server.sql("select count(*) from spans where span_attributes['http.method'] = 'POST'")
    assert count["rows"] == [[1]]
