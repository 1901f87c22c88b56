"""The Jaeger HTTP query API on 9201 (what Jaeger UI and Grafana's Jaeger data source call),
checked field by field against what the real OpenTelemetry Python SDK sent (sdk.py).

Sources for the expected shapes and values (read, not copied):
- jaegertracing/jaeger cmd/jaeger/internal/extension/jaegerquery/internal/{http_handler.go,
  query_parser.go}: envelope {data,total,limit,offset,errors}; errors [{code,msg}] with the same
  HTTP status; 404 "trace not found"; 400 "parameter 'service' is required"; bad durations
  "unable to parse param 'minDuration': ..."; bad JSON tags "malformed 'tags' parameter ...";
  `tag=key:value` repeatable; start/end in µs; limit default 100; maxDuration < minDuration → 400.
- .../internal/fixture/otlp2jaeger-out.json and the OTLP→Jaeger translator
  (open-telemetry/opentelemetry-collector-contrib pkg/translator/jaeger/traces_to_jaegerproto.go):
  tags otel.scope.name/version first, then attributes, span.kind, otel.status_code (OK/ERROR),
  error=true (bool), otel.status_description; arrays/maps as a JSON string; events → logs with
  the event name as field "event" first; parent → first CHILD_OF reference, links → FOLLOWS_FROM;
  startTime = start µs (truncated), duration = (end - start) µs (truncated); process tags =
  resource attributes except service.name; processes keyed p1..pN, identical processes shared.
- Jaeger's model.TraceID prints a trace id whose high 64 bits are zero as 16 hex digits, and
  parses 16-hex ids as such (low 64 bits, high = 0).

Deliberate differences from upstream Jaeger (from /work/shared/facts/query-apis.md):
- `tags` also accepts logfmt (`k=v k2=v2`); upstream Jaeger accepts JSON only (Grafana converts
  its logfmt input to JSON before calling), so upstream would answer 400 there.
- /api/services is asserted sorted; upstream's order depends on the storage backend.
"""
from __future__ import annotations

import json
import re
import time

import pytest
import requests

import sdk
from conftest import Server, wait_until
from sdk import BACKEND, FRONTEND, JAEGER_KIND, hex16, hex32

ENVELOPE_KEYS = {"data", "total", "limit", "offset", "errors"}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def env(binary, tmp_path_factory):
    """One server and one data load for the whole module."""
    server = Server(binary, tmp_path_factory.mktemp("jaeger-api")).start()
    try:
        ds = sdk.load_dataset(server)
        # The API may index asynchronously: give it a moment to show every trace whole. A
        # missing API is left to the tests themselves to report, one failure each.
        try:
            wait_until(lambda: all(_trace_complete(server, ds, name) for name in ds.traces),
                       timeout=30, what="every trace whole on /api/traces/{id}")
        except AssertionError:
            pass
        yield server, ds
    finally:
        server.kill9()


def _trace_complete(server, ds, name) -> bool:
    r = requests.get(f"{server.api}/api/traces/{ds.trace_hex(name)}", timeout=10)
    if r.status_code != 200:
        return False
    data = r.json().get("data") or []
    return len(data) == 1 and len(data[0].get("spans") or []) == len(ds.trace_spans(name))


# ---------------------------------------------------------------- helpers

def get(server, path, params=None, status=200) -> dict:
    r = requests.get(server.api + path, params=params, timeout=30)
    assert r.status_code == status, \
        f"GET {r.url} → HTTP {r.status_code}, want {status}: {r.text[:1500]}"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"GET {r.url}: body is not JSON: {r.text[:500]!r}") from None
    assert isinstance(body, dict) and ENVELOPE_KEYS <= set(body), \
        f"GET {r.url}: not a Jaeger envelope {sorted(ENVELOPE_KEYS)}: {r.text[:800]}"
    for k in ("total", "limit", "offset"):
        assert isinstance(body[k], int), f"{k} should be an integer: {body[k]!r}"
    if status == 200:
        assert body["errors"] in (None, []), f"GET {r.url}: unexpected errors {body['errors']}"
    return body


def error_msg(server, path, params=None, status=400) -> str:
    """The message of a Jaeger error answer: HTTP `status` and errors[0].code == `status`."""
    body = get(server, path, params, status=status)
    errs = body["errors"]
    assert isinstance(errs, list) and errs, f"errors should be a non-empty list: {body}"
    assert errs[0].get("code") == status, f"errors[0].code should be {status}: {errs[0]}"
    msg = errs[0].get("msg")
    assert isinstance(msg, str) and msg, f"errors[0].msg should be a non-empty string: {errs[0]}"
    return msg


def trace_name(ds, trace_id_hex: str) -> str:
    by_id = {tid: name for name, tid in ds.traces.items()}
    return by_id.get(int(trace_id_hex, 16), f"?{trace_id_hex}")


def search(server, ds, **params) -> dict:
    """GET /api/traces with `params` (plus a start/end covering the data set unless given);
    returns {trace name ("A".."E"): trace}."""
    params.setdefault("start", (ds.t0 // 1000) - 3_600_000_000)
    params.setdefault("end", time.time_ns() // 1000 + 60_000_000)
    params = {k: v for k, v in params.items() if v is not None}
    body = get(server, "/api/traces", params)
    assert isinstance(body["data"], list), f"search data should be a list: {body['data']!r}"
    out = {}
    for tr in body["data"]:
        name = trace_name(ds, tr["traceID"])
        assert name not in out, f"trace {name} returned twice"
        out[name] = tr
    return out


def found(server, ds, **params) -> set[str]:
    return set(search(server, ds, **params))


def jaeger_type(value) -> tuple[str, object]:
    """(type, value) of the Jaeger tag for an SDK attribute value."""
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        return "int64", value
    if isinstance(value, float):
        return "float64", value
    if isinstance(value, str):
        return "string", value
    if isinstance(value, (list, tuple)):
        return "string", list(value)  # a JSON array in a string tag (compared parsed)
    raise TypeError(value)


def tags_by_key(tags, where) -> dict:
    assert isinstance(tags, list), f"{where}: tags should be a list, got {tags!r}"
    out = {}
    for tag in tags:
        assert set(tag) >= {"key", "type", "value"}, f"{where}: malformed tag {tag}"
        assert tag["type"] in ("string", "bool", "int64", "float64", "binary"), \
            f"{where}: tag {tag['key']!r} has unknown type {tag['type']!r}"
        out[tag["key"]] = tag
    return out


def assert_tag(tags: dict, key, value, where):
    assert key in tags, f"{where}: tag {key!r} missing; tags: {sorted(tags)}"
    want_type, want_value = jaeger_type(value)
    tag = tags[key]
    assert tag["type"] == want_type, f"{where}: tag {key!r} type {tag['type']!r}, want {want_type!r}"
    got = tag["value"]
    if isinstance(want_value, list):
        assert isinstance(got, str), f"{where}: array tag {key!r} should be a JSON string: {got!r}"
        assert json.loads(got) == want_value, f"{where}: tag {key!r} = {got!r}, want {want_value}"
    elif want_type == "bool":
        assert got is want_value, f"{where}: tag {key!r} = {got!r}, want JSON {want_value}"
    elif want_type == "int64":
        assert isinstance(got, int) and not isinstance(got, bool) and got == want_value, \
            f"{where}: tag {key!r} = {got!r}, want JSON number {want_value}"
    elif want_type == "float64":
        assert isinstance(got, (int, float)) and not isinstance(got, bool) \
            and float(got) == want_value, f"{where}: tag {key!r} = {got!r}, want {want_value}"
    else:
        assert got == want_value, f"{where}: tag {key!r} = {got!r}, want {want_value!r}"


def check_span(js: dict, sdk_span, trace: dict, ds, trace_hex: str | None = None):
    """One Jaeger span against the SDK span it came from, field by field."""
    name = sdk_span.name
    where = f"span {name!r} ({hex16(sdk_span.context.span_id)})"
    trace_hex = trace_hex or hex32(sdk_span.context.trace_id)
    assert js["traceID"] == trace_hex, f"{where}: traceID {js['traceID']!r}, want {trace_hex!r}"
    assert js["spanID"] == hex16(sdk_span.context.span_id), where
    assert js["operationName"] == name, f"{where}: operationName {js['operationName']!r}"

    # startTime/duration: integer µs, truncated (Jaeger: TimeAsEpochMicroseconds, and
    # DurationAsMicroseconds of end - start).
    for k in ("startTime", "duration"):
        assert isinstance(js[k], int) and not isinstance(js[k], bool), \
            f"{where}: {k} should be an integer number of µs: {js[k]!r}"
    assert js["startTime"] == sdk_span.start_time // 1000, \
        f"{where}: startTime {js['startTime']}, want {sdk_span.start_time // 1000} (ns/1000)"
    assert js["duration"] == (sdk_span.end_time - sdk_span.start_time) // 1000, \
        f"{where}: duration {js['duration']}, want {(sdk_span.end_time - sdk_span.start_time) // 1000}"

    # references: the parent first as CHILD_OF, then each link as FOLLOWS_FROM.
    want_refs = []
    if sdk_span.parent is not None:
        want_refs.append({"refType": "CHILD_OF", "traceID": trace_hex,
                          "spanID": hex16(sdk_span.parent.span_id)})
    for link in sdk_span.links:
        want_refs.append({"refType": "FOLLOWS_FROM", "traceID": hex32(link.context.trace_id),
                          "spanID": hex16(link.context.span_id)})
    got_refs = [{k: r.get(k) for k in ("refType", "traceID", "spanID")}
                for r in (js.get("references") or [])]
    assert got_refs == want_refs, f"{where}: references {got_refs}, want {want_refs}"

    # tags: scope, attributes (typed), kind, status
    tags = tags_by_key(js.get("tags"), where)
    scope = sdk_span.instrumentation_scope
    assert_tag(tags, "otel.scope.name", scope.name, where)
    assert_tag(tags, "otel.scope.version", scope.version, where)
    for key, value in sdk_span.attributes.items():
        assert_tag(tags, key, value, where)
    assert_tag(tags, "span.kind", JAEGER_KIND[sdk_span.kind.name], where)
    status = sdk_span.status.status_code.name
    if status == "UNSET":
        assert "otel.status_code" not in tags, f"{where}: unset status gives no otel.status_code"
    else:
        assert_tag(tags, "otel.status_code", status, where)
    if status == "ERROR":
        assert_tag(tags, "error", True, where)
    else:
        assert "error" not in tags, f"{where}: error tag on a span that is not in error: {tags}"
    if sdk_span.status.description:
        assert_tag(tags, "otel.status_description", sdk_span.status.description, where)
    else:
        assert "otel.status_description" not in tags, where

    # logs from events: timestamp µs, the event name as field "event", attributes typed
    logs = js.get("logs") or []
    assert len(logs) == len(sdk_span.events), f"{where}: {len(logs)} logs for {len(sdk_span.events)} events"
    for log, event in zip(sorted(logs, key=lambda lg: lg["timestamp"]),
                          sorted(sdk_span.events, key=lambda e: e.timestamp)):
        lwhere = f"{where} log {event.name!r}"
        assert log["timestamp"] == event.timestamp // 1000, \
            f"{lwhere}: timestamp {log['timestamp']}, want {event.timestamp // 1000} µs"
        fields = tags_by_key(log.get("fields"), lwhere)
        assert_tag(fields, "event", event.name, lwhere)
        for key, value in event.attributes.items():
            assert_tag(fields, key, value, lwhere)
        assert set(fields) == {"event", *event.attributes}, f"{lwhere}: fields {sorted(fields)}"

    # process
    pid = js.get("processID")
    assert pid in trace["processes"], f"{where}: processID {pid!r} not in {sorted(trace['processes'])}"
    assert trace["processes"][pid]["serviceName"] == ds.service_of(sdk_span), \
        f"{where}: process {trace['processes'][pid]}"

    # flags: Jaeger omits a zero `flags` (omitempty); when present it is an integer.
    if "flags" in js:
        assert isinstance(js["flags"], int), f"{where}: flags {js['flags']!r}"
    assert js.get("warnings") in (None, []), f"{where}: warnings {js.get('warnings')}"


def check_processes(trace: dict, ds, services: set[str]):
    procs = trace["processes"]
    assert isinstance(procs, dict) and procs, f"processes should be a non-empty object: {procs!r}"
    for key in procs:
        assert re.fullmatch(r"p[1-9][0-9]*", key), f"process key {key!r} is not p1..pN"
    names = sorted(p["serviceName"] for p in procs.values())
    # one process per distinct resource: identical processes are shared (Jaeger dedups them)
    assert names == sorted(services), f"processes {names}, want one each of {sorted(services)}"
    for proc in procs.values():
        svc = proc["serviceName"]
        where = f"process {svc}"
        tags = tags_by_key(proc.get("tags"), where)
        want = {k: v for k, v in ds.resources[svc].items() if k != "service.name"}
        assert set(tags) == set(want), \
            f"{where}: tags {sorted(tags)}, want the resource attributes except service.name {sorted(want)}"
        for key, value in want.items():
            assert_tag(tags, key, value, where)
    used = {s["processID"] for s in trace["spans"]}
    assert used == set(procs), f"processes {sorted(procs)} but spans use {sorted(used)}"


def get_trace(server, trace_id: str, params=None) -> dict:
    body = get(server, f"/api/traces/{trace_id}", params)
    data = body["data"]
    assert isinstance(data, list) and len(data) == 1, f"data should hold exactly one trace: {data!r}"
    trace = data[0]
    assert {"traceID", "spans", "processes"} <= set(trace), f"trace fields: {sorted(trace)}"
    assert trace.get("warnings") in (None, []), trace.get("warnings")
    return trace


# ---------------------------------------------------------------- services and operations

def test_services_lists_both_services_sorted(srv):
    body = get(srv, "/api/services")
    data = body["data"]
    assert isinstance(data, list), data
    assert {FRONTEND, BACKEND} <= set(data), f"services {data}"
    assert data == sorted(data), f"services should be sorted: {data}"
    assert len(data) == len(set(data)), f"duplicate services: {data}"
    assert body["total"] == len(data), "Jaeger sets total to the number of services"


@pytest.mark.parametrize("service, operations", [
    (FRONTEND, {"GET /checkout", "POST /api/charge", "GET /split", "split.step"}),
    (BACKEND, {"POST /charge", "validate card", "publish receipt", "process receipt",
               "legacy job"}),
])
def test_service_operations_legacy(srv, service, operations):
    body = get(srv, f"/api/services/{service}/operations")
    data = body["data"]
    assert isinstance(data, list) and all(isinstance(x, str) for x in data), data
    assert set(data) == operations, f"{service} operations {sorted(data)}"
    assert len(data) == len(set(data)), f"duplicate operation names: {data}"
    assert body["total"] == len(data)


def test_service_operations_with_url_escaped_name(srv):
    # Grafana url-encodes the service name in the path.
    body = get(srv, "/api/services/%66rontend/operations")
    assert "GET /checkout" in (body["data"] or []), body


def test_operations_endpoint_with_kinds(srv):
    body = get(srv, "/api/operations", {"service": FRONTEND})
    data = body["data"]
    assert isinstance(data, list), data
    got = [(op["name"], op["spanKind"]) for op in data]
    assert len(got) == len(set(got)), f"duplicates: {got}"
    assert set(got) == {("GET /checkout", "server"), ("POST /api/charge", "client"),
                        ("GET /split", "server"), ("split.step", "internal")}, got


@pytest.mark.parametrize("kind, want", [
    ("server", {("GET /checkout", "server"), ("GET /split", "server")}),
    ("client", {("POST /api/charge", "client")}),
    ("internal", {("split.step", "internal")}),
])
def test_operations_filtered_by_span_kind(srv, kind, want):
    data = get(srv, "/api/operations", {"service": FRONTEND, "spanKind": kind})["data"]
    assert {(op["name"], op["spanKind"]) for op in data} == want, data


def test_operations_producer_and_consumer_kinds(srv):
    data = get(srv, "/api/operations", {"service": BACKEND})["data"]
    assert {(op["name"], op["spanKind"]) for op in data} == {
        ("POST /charge", "server"), ("validate card", "internal"),
        ("publish receipt", "producer"), ("process receipt", "consumer"),
        ("legacy job", "internal")}, data


def test_unknown_service_has_no_operations(srv):
    # Jaeger: the legacy route returns data null (a nil slice) for an unknown service, the
    # /api/operations route an empty list; neither is an error.
    body = get(srv, "/api/services/no-such-service/operations")
    assert body["data"] in (None, []), body
    body = get(srv, "/api/operations", {"service": "no-such-service"})
    assert body["data"] in (None, []), body
    body = get(srv, "/api/operations", {"service": FRONTEND, "spanKind": "consumer"})
    assert body["data"] in (None, []), body


def test_operations_requires_service(srv):
    msg = error_msg(srv, "/api/operations", {})
    assert "service" in msg, msg


# ---------------------------------------------------------------- trace by id

def test_trace_by_id_cross_service_field_by_field(srv, ds):
    trace = get_trace(srv, ds.trace_hex("A"))
    assert trace["traceID"] == ds.trace_hex("A")
    sdk_spans = ds.trace_spans("A")
    got = {s["spanID"]: s for s in trace["spans"]}
    assert len(trace["spans"]) == len(got), "a span id appears twice"
    assert set(got) == {hex16(s.context.span_id) for s in sdk_spans}, \
        f"span ids {sorted(got)} differ from the {len(sdk_spans)} sent"
    for s in sdk_spans:
        check_span(got[hex16(s.context.span_id)], s, trace, ds)
    check_processes(trace, ds, {FRONTEND, BACKEND})


def test_trace_by_id_literal_values(srv, ds):
    """A few values written out literally, independent of the helpers' SDK-derived expectations."""
    trace = get_trace(srv, ds.trace_hex("A"))
    spans = {s["spanID"]: s for s in trace["spans"]}
    root = spans[ds.span_hex("a_root")]
    server = spans[ds.span_hex("a_server")]
    client = spans[ds.span_hex("a_client")]

    # the cross-service edge: backend SERVER is CHILD_OF the frontend CLIENT
    assert server["references"][0] == {"refType": "CHILD_OF", "traceID": ds.trace_hex("A"),
                                       "spanID": ds.span_hex("a_client")}
    assert trace["processes"][server["processID"]]["serviceName"] == "backend"
    assert trace["processes"][client["processID"]]["serviceName"] == "frontend"
    assert root.get("references") in (None, []), root.get("references")

    # times: base + 789 ns → truncated to µs; 120 ms → 120000 µs
    assert root["startTime"] == ds.t0 // 1000
    assert root["duration"] == 120_000
    assert server["startTime"] == ds.t0 // 1000 + 20_000
    assert server["duration"] == 70_000

    tags = {t["key"]: (t["type"], t["value"]) for t in root["tags"]}
    assert tags["http.method"] == ("string", "GET")
    assert tags["http.status_code"] == ("int64", 200)
    assert tags["cache.hit"] == ("bool", True)
    assert tags["sample.ratio"] == ("float64", 0.25)
    assert tags["feature.flags"][0] == "string" and json.loads(tags["feature.flags"][1]) == ["a", "b"]
    assert tags["span.kind"] == ("string", "server")
    assert tags["otel.status_code"] == ("string", "OK")
    assert tags["otel.scope.name"] == ("string", "osprey.e2e.frontend")
    assert tags["otel.scope.version"] == ("string", "1.0.0")

    stags = {t["key"]: (t["type"], t["value"]) for t in server["tags"]}
    assert stags["otel.status_code"] == ("string", "ERROR")
    assert stags["otel.status_description"] == ("string", "payment gateway timeout")
    assert stags["error"] == ("bool", True)
    assert stags["retry"] == ("bool", False)

    log = root["logs"][0]
    assert log["timestamp"] == ds.t0 // 1000 + 5_000
    fields = {f["key"]: (f["type"], f["value"]) for f in log["fields"]}
    assert fields == {"event": ("string", "cart.loaded"), "items": ("int64", 3),
                      "cart.id": ("string", "c-1"), "premium": ("bool", True)}

    ptags = {t["key"]: (t["type"], t["value"])
             for t in trace["processes"][root["processID"]]["tags"]}
    assert ptags["host.name"] == ("string", "h1")
    assert ptags["deployment.environment"] == ("string", "test")
    assert ptags["host.cpu.count"] == ("int64", 8)
    assert "service.name" not in ptags


@pytest.mark.parametrize("name, key", [("B", "b_consumer"), ("C", "c_server"), ("D", "d_root")])
def test_trace_by_id_other_traces(srv, ds, name, key):
    trace = get_trace(srv, ds.trace_hex(name))
    sdk_spans = ds.trace_spans(name)
    got = {s["spanID"]: s for s in trace["spans"]}
    assert set(got) == {hex16(s.context.span_id) for s in sdk_spans}, f"trace {name}: {sorted(got)}"
    for s in sdk_spans:
        check_span(got[hex16(s.context.span_id)], s, trace, ds)
    check_processes(trace, ds, {ds.service_of(s) for s in sdk_spans})
    assert ds.span_hex(key) in got


def test_link_becomes_follows_from_reference(srv, ds):
    trace = get_trace(srv, ds.trace_hex("B"))
    (span,) = trace["spans"]
    assert [{k: r[k] for k in ("refType", "traceID", "spanID")} for r in span["references"]] == [
        {"refType": "FOLLOWS_FROM", "traceID": ds.trace_hex("A"),
         "spanID": ds.span_hex("a_producer")}], span["references"]
    tags = {t["key"]: t["value"] for t in span["tags"]}
    assert tags["span.kind"] == "consumer"


def test_trace_sent_in_two_requests_comes_back_whole(srv, ds):
    trace = get_trace(srv, ds.trace_hex("D"))
    by_name = {s["operationName"]: s for s in trace["spans"]}
    assert sorted(by_name) == ["GET /split", "split.step"], sorted(by_name)
    assert by_name["split.step"]["references"][0]["spanID"] == by_name["GET /split"]["spanID"]
    # both requests came from the same resource: one shared process
    assert len(trace["processes"]) == 1, trace["processes"]
    assert by_name["split.step"]["processID"] == by_name["GET /split"]["processID"]


def test_trace_by_id_is_case_insensitive_and_accepts_time_params(srv, ds):
    # Grafana's "traceIdTimeParams" option adds start/end (µs) to the trace-by-id call.
    params = {"start": ds.t0 // 1000 - 3_600_000_000, "end": time.time_ns() // 1000 + 60_000_000}
    trace = get_trace(srv, ds.trace_hex("A"), params)
    assert trace["traceID"] == ds.trace_hex("A")
    trace = get_trace(srv, ds.trace_hex("A").upper())
    assert trace["traceID"] == ds.trace_hex("A"), "ids are answered in lower-case hex"


def test_64_bit_trace_id_by_16_and_32_hex(srv, ds):
    low = ds.traces["E"]
    short, full = format(low, "016x"), format(low, "032x")
    assert full == "0" * 16 + short
    for asked in (short, full):
        trace = get_trace(srv, asked)
        # Jaeger prints an id whose high half is zero as 16 hex digits (model.TraceID.String);
        # the zero-padded 32-digit form denotes the same id and is accepted too.
        assert trace["traceID"] in (short, full), f"asked {asked}: traceID {trace['traceID']!r}"
        (span,) = trace["spans"]
        assert span["traceID"] in (short, full), span["traceID"]
        assert span["spanID"] == ds.span_hex("e_job")
        check_span(span, ds.span("e_job"), trace, ds, trace_hex=span["traceID"])


def test_unknown_trace_is_404(srv, ds):
    unknown = format(ds.traces["A"] ^ 0xFFFF, "032x")
    msg = error_msg(srv, f"/api/traces/{unknown}", status=404)
    assert "not found" in msg.lower(), msg


@pytest.mark.parametrize("bad", ["xyz", "0af7651916cd43dd8448eb211c80319cz", "1" * 33])
def test_malformed_trace_id_is_400(srv, bad):
    # Jaeger: model.TraceIDFromString fails with a message holding the id ("TraceID cannot be
    # longer than 32 hex characters: ..." / strconv.ParseUint: parsing "xyz": ...).
    msg = error_msg(srv, f"/api/traces/{bad}", status=400)
    assert bad in msg, f"message should name the bad id {bad!r}: {msg}"


# ---------------------------------------------------------------- search

def test_search_by_service(srv, ds):
    assert found(srv, ds, service=FRONTEND) == {"A", "C", "D"}
    assert found(srv, ds, service=BACKEND) == {"A", "B", "C", "E"}


def test_search_returns_whole_traces(srv, ds):
    traces = search(srv, ds, service=BACKEND, tags=json.dumps({"http.status_code": "502"}))
    assert set(traces) == {"A"}
    trace = traces["A"]
    assert trace["traceID"] == ds.trace_hex("A")
    got = {s["spanID"]: s for s in trace["spans"]}
    assert set(got) == {hex16(s.context.span_id) for s in ds.trace_spans("A")}, \
        "a search hit returns the whole trace, frontend spans included"
    for s in ds.trace_spans("A"):
        check_span(got[hex16(s.context.span_id)], s, trace, ds)
    check_processes(trace, ds, {FRONTEND, BACKEND})


def test_search_trace_from_two_requests_is_whole(srv, ds):
    traces = search(srv, ds, service=FRONTEND, operation="GET /split")
    assert set(traces) == {"D"}
    assert sorted(s["operationName"] for s in traces["D"]["spans"]) == ["GET /split", "split.step"]


@pytest.mark.parametrize("service, operation, want", [
    (FRONTEND, "GET /checkout", {"A", "C"}),
    (FRONTEND, "POST /api/charge", {"A", "C"}),
    (BACKEND, "POST /charge", {"A", "C"}),
    (BACKEND, "process receipt", {"B"}),
    (FRONTEND, "split.step", {"D"}),
    (BACKEND, "GET /checkout", set()),  # the operation exists, but not in this service
])
def test_search_by_operation(srv, ds, service, operation, want):
    assert found(srv, ds, service=service, operation=operation) == want


@pytest.mark.parametrize("service, tags, want", [
    (FRONTEND, {"http.method": "GET"}, {"A", "C"}),
    (BACKEND, {"http.status_code": "502"}, {"A"}),           # int attribute, string in the query
    (BACKEND, {"error": "true"}, {"A"}),                     # the error tag derived from status
    (FRONTEND, {"cache.hit": "true"}, {"A"}),                # bool attribute
    (FRONTEND, {"sample.ratio": "0.25"}, {"A"}),             # float attribute
    (FRONTEND, {"http.method": "GET", "cache.hit": "true"}, {"A"}),  # all tags on one span
    (BACKEND, {"host.name": "h2"}, {"A", "B", "C", "E"}),    # a resource (process) tag
    (FRONTEND, {"host.name": "h2"}, set()),                  # h2 is backend's host
    (FRONTEND, {"http.status_code": "502"}, set()),          # 502 is on a backend span
    (BACKEND, {"http.method": "DELETE"}, set()),
])
def test_search_by_json_tags(srv, ds, service, tags, want):
    assert found(srv, ds, service=service, tags=json.dumps(tags)) == want, f"tags={tags}"


@pytest.mark.parametrize("service, tags, want", [
    (BACKEND, "http.status_code=502", {"A"}),
    (FRONTEND, "http.method=GET cache.hit=true", {"A"}),
    (FRONTEND, 'http.route="/checkout"', {"A", "C"}),
    (BACKEND, "error=true", {"A"}),
])
def test_search_by_logfmt_tags(srv, ds, service, tags, want):
    # Osprey extension (query-apis.md): upstream Jaeger only parses JSON here.
    assert found(srv, ds, service=service, tags=tags) == want, f"tags={tags!r}"


def test_search_by_repeated_tag_param(srv, ds):
    # Jaeger's other tag form: tag=key:value, repeatable (query_parser.go parseTags).
    r = requests.get(srv.api + "/api/traces", timeout=30, params=[
        ("service", FRONTEND), ("tag", "http.method:GET"), ("tag", "cache.hit:true"),
        ("start", ds.t0 // 1000 - 60_000_000), ("end", time.time_ns() // 1000 + 60_000_000)])
    assert r.status_code == 200, r.text[:500]
    assert {trace_name(ds, t["traceID"]) for t in r.json()["data"]} == {"A"}


@pytest.mark.parametrize("params, want", [
    ({"minDuration": "100ms"}, {"A"}),
    ({"minDuration": "0.1s"}, {"A"}),
    ({"minDuration": "100000us"}, {"A"}),
    ({"maxDuration": "50ms"}, {"C", "D"}),
    ({"minDuration": "35ms", "maxDuration": "60ms"}, {"C"}),
    ({"maxDuration": "1.5s"}, {"A", "C", "D"}),
    ({"minDuration": "1m"}, set()),
])
def test_search_by_duration(srv, ds, params, want):
    # A trace matches when one frontend span's duration is in range (frontend spans: A 120 and
    # 90 ms, C 40 and 30 ms, D 20 and 5 ms).
    assert found(srv, ds, service=FRONTEND, **params) == want, params


def test_search_service_operation_tags_duration_on_one_span(srv, ds):
    assert found(srv, ds, service=FRONTEND, operation="GET /checkout",
                 tags=json.dumps({"http.method": "GET"}), minDuration="100ms") == {"A"}
    # the 90 ms CLIENT span is long enough but is not a GET /checkout span
    assert found(srv, ds, service=FRONTEND, operation="POST /api/charge",
                 minDuration="100ms") == set()


def test_search_time_window_in_microseconds(srv, ds):
    start_us, end_us = ds.t(900) // 1000, ds.t(1100) // 1000
    assert found(srv, ds, service=FRONTEND, start=start_us, end=end_us) == {"C"}
    assert found(srv, ds, service=BACKEND, start=ds.t(2900) // 1000, end=ds.t(3100) // 1000) == {"E"}
    # a window before all the data
    assert found(srv, ds, service=FRONTEND, start=ds.t0 // 1000 - 7_200_000_000,
                 end=ds.t0 // 1000 - 3_600_000_000) == set()


def test_search_with_lookback_only(srv, ds):
    # Jaeger UI sends lookback=1h (with start/end); without start/end the default window
    # (Jaeger: the last 2 days) still covers data sent a minute ago.
    r = requests.get(srv.api + "/api/traces", timeout=30,
                     params={"service": FRONTEND, "lookback": "1h"})
    assert r.status_code == 200, r.text[:500]
    assert {trace_name(ds, t["traceID"]) for t in r.json()["data"]} == {"A", "C", "D"}


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_search_limit(srv, ds, limit):
    traces = search(srv, ds, service=BACKEND, limit=limit)
    assert len(traces) == limit, f"limit={limit}: got {sorted(traces)}"
    assert set(traces) <= {"A", "B", "C", "E"}


def test_search_matching_nothing_is_empty(srv, ds):
    body = get(srv, "/api/traces", {"service": FRONTEND, "operation": "no such op",
                                    "start": ds.t0 // 1000 - 60_000_000,
                                    "end": time.time_ns() // 1000 + 60_000_000})
    assert body["data"] == [], f"no match → data: [] (Jaeger v1), got {body['data']!r}"
    body = get(srv, "/api/traces", {"service": "no-such-service"})
    assert body["data"] == [], body


@pytest.mark.parametrize("param", ["minDuration", "maxDuration"])
def test_search_bad_duration_is_400(srv, param):
    msg = error_msg(srv, "/api/traces", {"service": FRONTEND, param: "abc"})
    assert param in msg, f"message should name {param}: {msg}"


def test_search_max_below_min_duration_is_400(srv):
    msg = error_msg(srv, "/api/traces", {"service": FRONTEND, "minDuration": "2s",
                                         "maxDuration": "1s"})
    assert "maxDuration" in msg or "minDuration" in msg, msg


@pytest.mark.parametrize("tags", ['{"http.method": ', '{"http.method": "GET"', "{bad json}"])
def test_search_bad_json_tags_is_400(srv, tags):
    msg = error_msg(srv, "/api/traces", {"service": FRONTEND, "tags": tags})
    assert "tags" in msg, f"message should name the tags parameter: {msg}"


def test_search_requires_service(srv):
    msg = error_msg(srv, "/api/traces", {"operation": "GET /checkout"})
    assert "service" in msg, msg


@pytest.mark.parametrize("param, value", [("start", "yesterday"), ("end", "1.5"), ("limit", "ten")])
def test_search_bad_numbers_are_400(srv, param, value):
    msg = error_msg(srv, "/api/traces", {"service": FRONTEND, param: value})
    assert param in msg or value in msg, msg


# ---------------------------------------------------------------- dependencies

def test_dependencies(srv, ds):
    now_ms = time.time_ns() // 1_000_000
    body = get(srv, "/api/dependencies", {"endTs": now_ms + 60_000, "lookback": 3_600_000})
    data = body["data"]
    assert isinstance(data, list), data
    for link in data:
        assert set(link) >= {"parent", "child", "callCount"}, link
        assert isinstance(link["callCount"], int) and link["callCount"] > 0, link
        assert link["parent"] != link["child"], f"only pairs whose services differ: {link}"
    pairs = [(d["parent"], d["child"]) for d in data]
    assert len(pairs) == len(set(pairs)), f"each pair once: {pairs}"
    assert {"parent": FRONTEND, "child": BACKEND, "callCount": ds.cross_service_calls} in [
        {k: d[k] for k in ("parent", "child", "callCount")} for d in data], \
        f"want frontend → backend with {ds.cross_service_calls} calls: {data}"
    assert (BACKEND, FRONTEND) not in pairs, data


def test_dependencies_outside_the_window_are_absent(srv, ds):
    end_ms = ds.t0 // 1_000_000 - 3_600_000
    data = get(srv, "/api/dependencies", {"endTs": end_ms, "lookback": 3_600_000})["data"]
    assert not [d for d in (data or []) if (d["parent"], d["child"]) == (FRONTEND, BACKEND)], data


def test_dependencies_bad_end_ts_is_400(srv):
    # Jaeger: "unable to parse param 'endTs': ..." (endTs and lookback are integer ms)
    msg = error_msg(srv, "/api/dependencies", {"endTs": "soon"})
    assert "endTs" in msg, msg
