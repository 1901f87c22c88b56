"""OTLP helpers for the end-to-end tests: building requests, sending them, and the rows the
`spans` table should hold for them (shared/interfaces.md; the value formats the server
documents for /api/sql).

Everything here follows the OTLP wire formats (protobuf from `opentelemetry-proto`, OTLP/JSON
written by hand in the tests), never Osprey's own code.
"""
from __future__ import annotations

import calendar
import gzip as gzip_mod
import json
import os
import re
import time

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


# ---------------------------------------------------------------- ids and times

def new_trace_id() -> bytes:
    while True:
        b = os.urandom(16)
        if any(b):
            return b


def new_span_id() -> bytes:
    while True:
        b = os.urandom(8)
        if any(b):
            return b


_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


def parse_ts(text: str) -> int:
    """An RFC 3339 UTC timestamp as the SQL API prints it (`...T08:00:00.123456789Z`) → ns."""
    assert isinstance(text, str), f"timestamp should be an RFC 3339 string, got {text!r}"
    m = _TS.match(text)
    assert m, f"timestamp {text!r} is not RFC 3339 UTC with a Z suffix"
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = (m.group(2) or "").ljust(9, "0")
    return secs * 1_000_000_000 + int(frac or 0)


# ---------------------------------------------------------------- building protobuf requests

def any_value(v) -> AnyValue:
    """A Python value as an OTLP AnyValue (bool before int: bool is an int in Python)."""
    if isinstance(v, AnyValue):
        return v
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=attrs(v)))
    raise TypeError(f"no AnyValue for {v!r}")


def attrs(d: dict) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in d.items()]


def make_span(name="op", *, trace_id=None, span_id=None, parent=b"", start_ns=None,
              duration_ns=1_500_000, kind=Span.SPAN_KIND_INTERNAL, attributes=None, **fields) -> Span:
    start = time.time_ns() if start_ns is None else start_ns
    return Span(
        trace_id=trace_id or new_trace_id(),
        span_id=span_id or new_span_id(),
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ns,
        attributes=attrs(attributes or {}),
        **fields,
    )


def make_request(spans, *, service="e2e", resource_attrs=None,
                 scope=("e2e.scope", "0.1")) -> ExportTraceServiceRequest:
    res = {"service.name": service, **(resource_attrs or {})}
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=attrs(res)),
        scope_spans=[ScopeSpans(
            scope=InstrumentationScope(name=scope[0], version=scope[1]),
            spans=list(spans),
        )],
    )])


def simple_request(n: int, **kw) -> tuple[ExportTraceServiceRequest, list[str]]:
    """`n` fresh root spans in one request, and their span ids as hex."""
    spans = [make_span(f"op-{i}", attributes={"i": i}) for i in range(n)]
    return make_request(spans, **kw), [s.span_id.hex() for s in spans]


# ---------------------------------------------------------------- raw protobuf (hand-crafted bytes)

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def wrap_span_bytes(span_bytes: bytes, service="e2e") -> bytes:
    """An ExportTraceServiceRequest holding one already-encoded Span."""
    resource = Resource(attributes=attrs({"service.name": service})).SerializeToString()
    scope_spans = field_bytes(2, span_bytes)                       # ScopeSpans.spans = 2
    resource_spans = field_bytes(1, resource) + field_bytes(2, scope_spans)  # resource=1, scope_spans=2
    return field_bytes(1, resource_spans)                          # request.resource_spans = 1


def nested_kvlist(depth: int) -> bytes:
    """An encoded AnyValue: kvlist {k: kvlist {k: ... "leaf"}} `depth` levels deep."""
    value = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(depth):
        kv = field_bytes(1, b"k") + field_bytes(2, value)           # KeyValue{key=1, value=2}
        value = field_bytes(6, field_bytes(1, kv))                  # AnyValue.kvlist_value=6
    return value


def span_with_attr_bytes(name: str, value: bytes) -> tuple[bytes, str]:
    span = make_span(name)
    attr = field_bytes(1, b"deep") + field_bytes(2, value)
    return span.SerializeToString() + field_bytes(9, attr), span.span_id.hex()  # Span.attributes=9


# ---------------------------------------------------------------- sending

def post_traces(base: str, body, *, content_type=PROTOBUF, gzip=False, timeout=30,
                path="/v1/traces", session=None, headers=None) -> requests.Response:
    if isinstance(body, ExportTraceServiceRequest):
        body = body.SerializeToString()
    elif isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": content_type, **(headers or {})}
    if gzip:
        body = gzip_mod.compress(body)
        h["Content-Encoding"] = "gzip"
    return (session or requests).post(base + path, data=body, headers=h, timeout=timeout)


def send_ok(base: str, body, **kw) -> ExportTraceServiceResponse:
    """Posts a request that must be accepted whole: HTTP 200 and no partial_success."""
    resp = parse_response(post_traces(base, body, **kw))
    assert not resp.HasField("partial_success"), f"unexpected partial success: {resp}"
    return resp


def parse_response(resp: requests.Response) -> ExportTraceServiceResponse:
    assert resp.status_code == 200, f"HTTP {resp.status_code}: {resp.content[:500]!r}"
    out = ExportTraceServiceResponse()
    out.ParseFromString(resp.content)
    return out


# ---------------------------------------------------------------- expected rows

def render(v: AnyValue) -> str:
    """The documented text form of an attribute value: strings as-is, the rest compact JSON."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which is None:
        return ""
    return json.dumps(_json(v), separators=(",", ":"), ensure_ascii=False)


def _json(v: AnyValue):
    import base64
    which = v.WhichOneof("value")
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if which == "array_value":
        return [_json(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _json(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


def attr_map(kvs) -> dict:
    return {kv.key: render(kv.value) for kv in kvs}


def expected_row(span: Span, resource: Resource, scope: InstrumentationScope) -> dict:
    res = attr_map(resource.attributes)
    hx = lambda b: b.hex() if b else None  # noqa: E731
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": hx(span.parent_span_id),
        "trace_state": span.trace_state,
        "service_name": res.get("service.name", "unknown_service"),
        "span_name": span.name,
        "span_kind": Span.SpanKind.Name(span.kind),
        "start_time": span.start_time_unix_nano,
        "end_time": span.end_time_unix_nano,
        "duration_ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        "status_code": Status.StatusCode.Name(span.status.code),
        "status_message": span.status.message,
        "span_attributes": attr_map(span.attributes),
        "resource_attributes": res,
        "scope_name": scope.name,
        "scope_version": scope.version,
        "events": [{"time": e.time_unix_nano, "name": e.name, "attributes": attr_map(e.attributes)}
                   for e in span.events],
        "links": [{"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex(),
                   "trace_state": ln.trace_state, "attributes": attr_map(ln.attributes)}
                  for ln in span.links],
        "dropped_attributes_count": span.dropped_attributes_count,
        "dropped_events_count": span.dropped_events_count,
        "dropped_links_count": span.dropped_links_count,
        "flags": span.flags,
    }


def expected_rows(req: ExportTraceServiceRequest) -> dict[str, dict]:
    """span_id → expected row, for every span of a request."""
    out = {}
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                out[s.span_id.hex()] = expected_row(s, rs.resource, ss.scope)
    return out


def normalize_row(row: dict) -> dict:
    """A row from /api/sql with its timestamps turned into ns, so it compares with expected_row."""
    row = dict(row)
    for col in ("start_time", "end_time"):
        if col in row:
            row[col] = parse_ts(row[col])
    if isinstance(row.get("events"), list):
        row["events"] = [{**e, "time": parse_ts(e["time"])} for e in row["events"]]
    if "duration_ms" in row and isinstance(row["duration_ms"], (int, float)):
        row["duration_ms"] = round(row["duration_ms"], 6)
    return row


def round_expected(row: dict) -> dict:
    row = dict(row)
    row["duration_ms"] = round(row["duration_ms"], 6)
    return row
