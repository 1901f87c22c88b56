"""Promscale-compatible SQL over `POST /api/sql`: the `ps_trace.span`, `ps_trace.event` and
`ps_trace.link` views and the queries Promscale users and its APM dashboards wrote, checked field
by field against what the real OpenTelemetry Python SDK sent (sdk.py).

Sources for the expected names and values (read, not copied):
- timescale/promscale_extension migration/idempotent/009-tracing-views.sql (view columns and their
  order), 015-tracing-redesign.sql (span_kind / status_code as lower-case enums: `server`,
  `error`, ...), 007-tracing-tags.sql (`tag_map -> 'key'`, compared with JSON literals such as
  `'"GET"'` and `'500'`).
- timescale/promscale docs/mixin/dashboards/apm-home.json ("[1] Overview": Services,
  Slowest Requests, Most Common Errors), apm-service-overview.json ("[2] Service Details":
  Error Rate, Statistics by Operation), apm-dependencies.json ("[3] Service Map": dependency
  table and node-graph edges), apm-service-dependencies-downstream.json ("[4] Downstream
  Dependencies": WITH RECURSIVE walk, md5 node ids).

Where a dashboard's SQL is adapted to Osprey, the test says how: `status_code =
'STATUS_CODE_ERROR'` / `span_kind = 'SPAN_KIND_SERVER'` (the dashboards predate the lower-case
enums of extension 0.5.0) become `'error'` / `'server'`; Timescale Toolkit's
`approx_percentile(0.90, percentile_agg(duration_ms))` becomes DataFusion's
`approx_percentile_cont(duration_ms, 0.90)`; Timescale's `time_bucket('1s', start_time)` becomes
`date_bin(INTERVAL '1 second', start_time)`; Grafana's `$__timeFilter(start_time)` and
`${__from:date:seconds}` are written out as Grafana expands them.

Deliberate differences from Promscale (docs/sql.md): ids are lower-case hex text (Promscale: a
uuid-like type and bigint span ids), tag values are text (Promscale: jsonb), so `->` and `->>`
both give the text; the range-typed columns (time_range, event_time) and the schema-url columns
are absent.
"""
from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
from datetime import datetime, timezone

import pytest

import sdk
from conftest import Server, wait_until
from sdk import BACKEND, FRONTEND, hex16, hex32

# ps_trace.span's columns in Promscale's order (009-tracing-views.sql).
PROMSCALE_SPAN_COLUMNS = [
    "trace_id", "span_id", "trace_state", "parent_span_id", "is_root_span", "service_name",
    "span_name", "span_kind", "start_time", "end_time", "time_range", "duration_ms", "span_tags",
    "dropped_tags_count", "event_time", "dropped_events_count", "dropped_link_count",
    "status_code", "status_message", "instrumentation_lib_name", "instrumentation_lib_version",
    "instrumentation_lib_schema_url", "resource_tags", "resource_dropped_tags_count",
    "resource_schema_url",
]
# Those Osprey has no type (ranges) or no data (schema urls, resource dropped count) for.
OSPREY_OMITS = {"time_range", "event_time", "instrumentation_lib_schema_url",
                "resource_dropped_tags_count", "resource_schema_url"}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module", params=["buffered", "segments"])
def env(request, binary, tmp_path_factory):
    """One server and one data load per mode, for the whole module: "buffered" queries the
    spans while they wait in memory to be flushed; "segments" flushes them to Parquet segment
    files, restarts the server and queries what it reads back from disk."""
    flushed = request.param == "segments"
    args = ["--flush-interval=1s"] if flushed else []
    server = Server(binary, tmp_path_factory.mktemp(f"promscale-sql-{request.param}"), args).start()
    try:
        ds = sdk.load_dataset(server)
        if flushed:
            wait_until(lambda: list(server.data_dir.glob("segments/**/*.parquet")), timeout=30,
                       what="a Parquet segment file after --flush-interval=1s")
            time.sleep(2)  # let the flush of the last export requests finish as well
            server.restart()
            want = ds.all_span_ids
            wait_until(lambda: want <= set(server.span_ids()), timeout=30,
                       what="every span back after the restart")
        yield server, ds
    finally:
        server.kill9()


# ---------------------------------------------------------------- helpers

def rows(server, sql: str) -> list[dict]:
    return server.rows(sql)


def values(server, sql: str) -> list[list]:
    return server.sql(sql)["rows"]


def error_of(server, sql: str) -> str:
    r = server.sql_response(sql)
    assert r.status_code == 400, f"SQL {sql!r}: want HTTP 400, got {r.status_code}: {r.text[:800]}"
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], f"no error message: {body}"
    return body["error"]


def ts_ns(text: str) -> int:
    """An RFC 3339 UTC timestamp as /api/sql writes it → ns since the epoch."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(?:Z|\+00:?00)", text or "")
    assert m, f"not an RFC 3339 UTC timestamp: {text!r}"
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))


def iso(ns: int) -> str:
    """ns → the RFC 3339 text Grafana's $__timeFilter writes (Go's RFC3339Nano: no trailing 0s)."""
    base = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def tag_text(value) -> str:
    """An SDK attribute value as Osprey stores it in a tag map: strings as themselves, anything
    else as its JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    raise TypeError(value)


def tags_text(attrs) -> dict:
    return {k: tag_text(v) for k, v in dict(attrs or {}).items()}


def key_of(ds, span_id_hex: str) -> str:
    by_id = {ds.span_hex(k): k for k in ds.spans}
    return by_id.get(span_id_hex, f"?{span_id_hex}")


def keys(ds, result_rows) -> set[str]:
    """The dataset keys ("a_root", ...) of rows whose first column is a span id."""
    return {key_of(ds, r[0]) for r in result_rows}


def is_request(span) -> bool:
    """What the APM dashboards count as a request: a server span or a root span."""
    return span.kind.name == "SERVER" or span.parent is None


def status_of(span) -> str:
    return span.status.status_code.name.lower()


def duration_ms(span) -> float:
    return (span.end_time - span.start_time) / 1e6


def approx(a, b, tol=1e-6) -> bool:
    return a is not None and abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b)))


# ---------------------------------------------------------------- the views' shape

def test_span_view_has_promscales_columns_in_order(srv):
    cols = srv.sql("select * from ps_trace.span limit 1")["columns"]
    want = [c for c in PROMSCALE_SPAN_COLUMNS if c not in OSPREY_OMITS]
    assert cols == want, f"ps_trace.span columns:\n got {cols}\nwant {want} (Promscale's order)"


def test_event_and_link_views_have_promscales_column_names(srv):
    cols = srv.sql("select * from ps_trace.event limit 1")["columns"]
    for c in ("trace_id", "span_id", "time", "event_name", "event_tags", "trace_state",
              "service_name", "span_name", "span_kind", "span_start_time", "span_end_time",
              "span_duration_ms", "span_tags", "resource_tags", "status_code", "status_message"):
        assert c in cols, f"ps_trace.event lacks Promscale's column {c!r}: {cols}"
    cols = srv.sql("select * from ps_trace.link limit 1")["columns"]
    for c in ("trace_id", "span_id", "service_name", "span_name", "span_kind", "start_time",
              "span_tags", "linked_trace_id", "linked_span_id", "linked_trace_state",
              "link_tags"):
        assert c in cols, f"ps_trace.link lacks Promscale's column {c!r}: {cols}"


# ---------------------------------------------------------------- spans

def check_span_row(row: dict, span, ds):
    """One ps_trace.span row against the SDK span it came from, column by column."""
    where = f"span {span.name!r} ({hex16(span.context.span_id)})"
    parent = hex16(span.parent.span_id) if span.parent else None
    service = ds.service_of(span)
    want = {
        "trace_id": hex32(span.context.trace_id),
        "span_id": hex16(span.context.span_id),
        "parent_span_id": parent,
        "is_root_span": parent is None,
        "service_name": service,
        "span_name": span.name,
        "span_kind": span.kind.name.lower(),
        "span_tags": tags_text(span.attributes),
        "dropped_tags_count": 0,
        "dropped_events_count": 0,
        "dropped_link_count": 0,
        "status_code": status_of(span),
        "status_message": span.status.description or "",
        "instrumentation_lib_name": span.instrumentation_scope.name,
        "instrumentation_lib_version": span.instrumentation_scope.version,
        "resource_tags": tags_text(ds.resources[service]),
    }
    for col, value in want.items():
        assert row.get(col) == value, f"{where}: {col} = {row.get(col)!r}, want {value!r}"
    assert row["trace_state"] in ("", None), f"{where}: trace_state {row['trace_state']!r}"
    assert ts_ns(row["start_time"]) == span.start_time, \
        f"{where}: start_time {row['start_time']!r}, want {iso(span.start_time)} (ns precision)"
    assert ts_ns(row["end_time"]) == span.end_time, \
        f"{where}: end_time {row['end_time']!r}, want {iso(span.end_time)} (ns precision)"
    assert approx(row["duration_ms"], duration_ms(span)), \
        f"{where}: duration_ms {row['duration_ms']!r}, want {duration_ms(span)}"


def test_spans_of_a_trace_field_by_field(srv, ds):
    got = rows(srv, f"SELECT * FROM ps_trace.span WHERE trace_id = '{ds.trace_hex('A')}' "
                    f"ORDER BY start_time")
    want = sorted(ds.trace_spans("A"), key=lambda s: s.start_time)
    assert [r["span_id"] for r in got] == [hex16(s.context.span_id) for s in want], \
        f"trace A: spans {[r['span_id'] for r in got]} in start order, want " \
        f"{[(s.name, hex16(s.context.span_id)) for s in want]}"
    for row, span in zip(got, want):
        check_span_row(row, span, ds)


@pytest.mark.parametrize("key", ["b_consumer", "c_server", "d_step", "e_job"])
def test_span_by_id_field_by_field(srv, ds, key):
    span = ds.span(key)
    got = rows(srv, f"SELECT * FROM ps_trace.span WHERE span_id = '{ds.span_hex(key)}'")
    assert len(got) == 1, f"{key}: want one row, got {got}"
    check_span_row(got[0], span, ds)


@pytest.mark.parametrize("name", ["A", "B", "C", "D", "E"])
def test_trace_lookup_by_id(srv, ds, name):
    tid = ds.trace_hex(name)
    got = values(srv, f"SELECT span_id FROM ps_trace.span WHERE trace_id = '{tid}'")
    want = {hex16(s.context.span_id) for s in ds.trace_spans(name)}
    assert {r[0] for r in got} == want and len(got) == len(want), \
        f"trace {name} ({tid}): spans {sorted(r[0] for r in got)}, want {sorted(want)}"


def test_64_bit_trace_id_is_32_hex_digits(srv, ds):
    got = values(srv, f"SELECT trace_id FROM ps_trace.span WHERE span_id = '{ds.span_hex('e_job')}'")
    assert got == [[ds.trace_hex("E")]], f"trace E id: {got}, want {ds.trace_hex('E')}"
    assert got[0][0].startswith("0" * 16)


def test_root_spans_via_is_root_span(srv, ds):
    want = {k for k, s in ds.spans.items() if s.parent is None}
    got = keys(ds, values(srv, "SELECT span_id FROM ps_trace.span WHERE is_root_span"))
    assert got == want, f"is_root_span: {sorted(got)}, want {sorted(want)}"
    # The dashboards' spelling of the same thing.
    got = keys(ds, values(srv, "SELECT span_id FROM ps_trace.span WHERE parent_span_id IS NULL"))
    assert got == want, f"parent_span_id IS NULL: {sorted(got)}, want {sorted(want)}"
    got = keys(ds, values(srv, "SELECT span_id FROM ps_trace.span WHERE NOT is_root_span"))
    assert got == set(ds.spans) - want, f"NOT is_root_span: {sorted(got)}"


def test_a_span_with_a_remote_parent_is_not_a_root(srv, ds):
    """The backend's server span has a parent from another process (propagated context): it is
    not a root, and its parent is the frontend's client span."""
    got = rows(srv, f"SELECT is_root_span, parent_span_id FROM ps_trace.span "
                    f"WHERE span_id = '{ds.span_hex('a_server')}'")
    assert got == [{"is_root_span": False, "parent_span_id": ds.span_hex("a_client")}], got


# ---------------------------------------------------------------- tags

TAG_FILTERS = [
    # Promscale's idiom: a tag compared with a JSON literal; strings JSON-quoted.
    ("span_tags -> 'http.method' = '\"GET\"'", {"a_root", "c_root"}),
    ("'\"POST\"' = span_tags -> 'http.method'", {"a_client", "a_server", "c_client", "c_server"}),
    ("span_tags -> 'http.method' <> '\"GET\"'", {"a_client", "a_server", "c_client", "c_server"}),
    ("span_tags -> 'http.status_code' = '502'", {"a_server"}),
    ("span_tags -> 'http.status_code' <> '200'", {"a_server"}),
    ("span_tags -> 'cache.hit' = 'true'", {"a_root"}),
    ("span_tags -> 'retry' = 'false'", {"a_server"}),
    ("span_tags -> 'sample.ratio' = '0.25'", {"a_root"}),
    ("span_tags -> 'feature.flags' = '[\"a\",\"b\"]'", {"a_root"}),
    ("span_tags -> 'job.id' = '7'", {"e_job"}),
    # ->> (text) and the unquoted text.
    ("span_tags ->> 'http.method' = 'GET'", {"a_root", "c_root"}),
    ("span_tags -> 'http.method' = 'GET'", {"a_root", "c_root"}),
    ("span_tags ->> 'net.peer.port' = '8080'", {"a_client"}),
    ("(span_tags ->> 'http.status_code')::int >= 500", {"a_server"}),
    ("span_tags ->> 'http.route' LIKE '/check%'", {"a_root", "c_root"}),
    ("span_tags ->> 'messaging.system' = 'kafka' AND span_kind = 'consumer'", {"b_consumer"}),
    # PostgreSQL 14+ subscripts, which Promscale's tag_map also took.
    ("span_tags['card.brand'] = 'visa'", {"a_internal"}),
    # Resource tags.
    ("resource_tags -> 'host.name' = '\"h1\"'",
     {"a_root", "a_client", "c_root", "c_client", "d_root", "d_step"}),
    ("resource_tags -> 'host.cpu.count' = '8' AND span_kind = 'server'", {"a_root", "c_root", "d_root"}),
    ("resource_tags ->> 'service.name' = 'backend' AND span_tags -> 'http.method' = '\"POST\"'",
     {"a_server", "c_server"}),
    # A key no span has.
    ("span_tags -> 'no.such.key' = '\"x\"'", set()),
    ("span_tags -> 'http.method' = '\"PUT\"'", set()),
]


@pytest.mark.parametrize("where,want", TAG_FILTERS, ids=[w for w, _ in TAG_FILTERS])
def test_tag_filter(srv, ds, where, want):
    got = keys(ds, values(srv, f"SELECT span_id FROM ps_trace.span WHERE {where}"))
    assert got == want, f"WHERE {where}: {sorted(got)}, want {sorted(want)}"


def test_tag_values_are_text(srv, ds):
    """Each typed attribute reads back as its text (JSON text for non-strings), by -> and ->>."""
    attrs = dict(ds.span("a_root").attributes)
    cols = ", ".join(f"span_tags -> '{k}' AS \"a{i}\", span_tags ->> '{k}' AS \"b{i}\""
                     for i, k in enumerate(attrs))
    got = rows(srv, f"SELECT {cols}, span_tags -> 'no.such.key' AS missing "
                    f"FROM ps_trace.span WHERE span_id = '{ds.span_hex('a_root')}'")
    assert len(got) == 1, got
    for i, (k, v) in enumerate(attrs.items()):
        assert got[0][f"a{i}"] == tag_text(v), f"span_tags -> '{k}' = {got[0][f'a{i}']!r}, want {tag_text(v)!r}"
        assert got[0][f"b{i}"] == tag_text(v), f"span_tags ->> '{k}' = {got[0][f'b{i}']!r}, want {tag_text(v)!r}"
    assert got[0]["missing"] is None, f"a missing key should give NULL: {got[0]['missing']!r}"


def test_tags_in_select_group_by_and_order_by(srv, ds):
    got = values(srv, "SELECT span_tags ->> 'http.method' AS method, count(*) AS n "
                      "FROM ps_trace.span WHERE span_tags ->> 'http.method' IS NOT NULL "
                      "GROUP BY 1 ORDER BY 1")
    want = {}
    for s in ds.spans.values():
        m = (s.attributes or {}).get("http.method")
        if m is not None:
            want[m] = want.get(m, 0) + 1
    assert got == [[m, n] for m, n in sorted(want.items())], f"{got}, want {sorted(want.items())}"


# ---------------------------------------------------------------- kind and status

def test_span_kind_values_are_lower_case(srv, ds):
    got = values(srv, "SELECT span_kind, count(*) FROM ps_trace.span GROUP BY 1 ORDER BY 1")
    want = {}
    for s in ds.spans.values():
        want[s.kind.name.lower()] = want.get(s.kind.name.lower(), 0) + 1
    assert got == [[k, n] for k, n in sorted(want.items())], f"{got}, want {sorted(want.items())}"
    got = keys(ds, values(srv, "SELECT span_id FROM ps_trace.span WHERE span_kind = 'producer'"))
    assert got == {"a_producer"}, got


def test_status_code_values_are_lower_case(srv, ds):
    got = values(srv, "SELECT status_code, count(*) FROM ps_trace.span GROUP BY 1 ORDER BY 1")
    want = {}
    for s in ds.spans.values():
        want[status_of(s)] = want.get(status_of(s), 0) + 1
    assert want == {"error": 1, "ok": 2, "unset": 9}, want  # the data set as sdk.py builds it
    assert got == [[k, n] for k, n in sorted(want.items())], f"{got}, want {sorted(want.items())}"
    got = rows(srv, "SELECT span_id, status_message FROM ps_trace.span WHERE status_code = 'error'")
    assert got == [{"span_id": ds.span_hex("a_server"), "status_message": "payment gateway timeout"}], got


# ---------------------------------------------------------------- events

def sdk_events(ds):
    """(span key, event) for every event in the data set, in time order."""
    out = [(k, e) for k, s in ds.spans.items() for e in s.events]
    return sorted(out, key=lambda ke: ke[1].timestamp)


def test_events_field_by_field(srv, ds):
    got = rows(srv, "SELECT * FROM ps_trace.event ORDER BY time")
    want = sdk_events(ds)
    assert len(got) == len(want) == 2, f"events: {got}"
    for row, (key, ev) in zip(got, want):
        span = ds.span(key)
        where = f"event {ev.name!r} of {key}"
        assert row["trace_id"] == hex32(span.context.trace_id), where
        assert row["span_id"] == ds.span_hex(key), f"{where}: span_id {row['span_id']}"
        assert row["event_name"] == ev.name, f"{where}: event_name {row['event_name']!r}"
        assert ts_ns(row["time"]) == ev.timestamp, \
            f"{where}: time {row['time']!r}, want {iso(ev.timestamp)}"
        assert row["event_tags"] == tags_text(ev.attributes), \
            f"{where}: event_tags {row['event_tags']}, want {tags_text(ev.attributes)}"
        assert row["service_name"] == ds.service_of(span), where
        assert row["span_name"] == span.name, where
        assert row["span_kind"] == span.kind.name.lower(), where
        assert row["status_code"] == status_of(span), where
        assert ts_ns(row["span_start_time"]) == span.start_time, where
        assert ts_ns(row["span_end_time"]) == span.end_time, where
        assert approx(row["span_duration_ms"], duration_ms(span)), where
        assert row["span_tags"] == tags_text(span.attributes), where
        assert row["resource_tags"] == tags_text(ds.resources[ds.service_of(span)]), where


@pytest.mark.parametrize("where,want", [
    ("event_name = 'exception'", {("a_server", "exception")}),
    ("event_tags -> 'exception.type' = '\"TimeoutError\"'", {("a_server", "exception")}),
    ("event_tags ->> 'exception.message' LIKE '%timeout%'", {("a_server", "exception")}),
    ("event_tags -> 'items' = '3'", {("a_root", "cart.loaded")}),
    ("event_tags -> 'premium' = 'true' AND service_name = 'frontend'", {("a_root", "cart.loaded")}),
    ("status_code = 'error'", {("a_server", "exception")}),
    ("event_tags -> 'items' = '4'", set()),
])
def test_event_filter(srv, ds, where, want):
    got = {(key_of(ds, r[0]), r[1])
           for r in values(srv, f"SELECT span_id, event_name FROM ps_trace.event WHERE {where}")}
    assert got == want, f"WHERE {where}: {sorted(got)}, want {sorted(want)}"


def test_exception_messages_of_failing_spans(srv, ds):
    """What a user asks of events: which exceptions did erroring spans record, per service."""
    got = values(srv, "SELECT service_name, span_name, event_tags ->> 'exception.type' AS type, "
                      "event_tags ->> 'exception.message' AS message, count(*) AS n "
                      "FROM ps_trace.event WHERE event_name = 'exception' AND status_code = 'error' "
                      "GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC")
    assert got == [[BACKEND, "POST /charge", "TimeoutError", "gateway timeout", 1]], got


# ---------------------------------------------------------------- links

def test_links_field_by_field(srv, ds):
    got = rows(srv, "SELECT * FROM ps_trace.link")
    consumer, producer = ds.span("b_consumer"), ds.span("a_producer")
    assert len(got) == 1, f"want the one link of the data set, got {got}"
    row = got[0]
    link = consumer.links[0]
    want = {
        "trace_id": hex32(consumer.context.trace_id),
        "span_id": ds.span_hex("b_consumer"),
        "parent_span_id": None,
        "is_root_span": True,
        "service_name": BACKEND,
        "span_name": "process receipt",
        "span_kind": "consumer",
        "status_code": "unset",
        "span_tags": tags_text(consumer.attributes),
        "linked_trace_id": hex32(producer.context.trace_id),
        "linked_span_id": ds.span_hex("a_producer"),
        "link_tags": tags_text(link.attributes),
    }
    for col, value in want.items():
        assert row.get(col) == value, f"link: {col} = {row.get(col)!r}, want {value!r}"
    assert row["linked_trace_state"] in ("", None), row["linked_trace_state"]
    assert ts_ns(row["start_time"]) == consumer.start_time
    assert approx(row["duration_ms"], duration_ms(consumer))


def test_link_joined_to_the_linked_span(srv, ds):
    got = values(srv, "SELECT l.span_name, l.link_tags ->> 'link.reason', s.service_name, "
                      "s.span_name, s.span_kind "
                      "FROM ps_trace.link l JOIN ps_trace.span s "
                      "ON s.trace_id = l.linked_trace_id AND s.span_id = l.linked_span_id")
    assert got == [["process receipt", "receipt", BACKEND, "publish receipt", "producer"]], got


def test_link_filter_by_tag(srv, ds):
    got = values(srv, "SELECT span_id FROM ps_trace.link WHERE link_tags -> 'batch.size' = '1' "
                      "AND linked_trace_id = '" + ds.trace_hex("A") + "'")
    assert got == [[ds.span_hex("b_consumer")]], got


# ---------------------------------------------------------------- APM dashboards

def requests_by_service(ds) -> dict:
    out: dict = {}
    for s in ds.spans.values():
        if is_request(s):
            out.setdefault(ds.service_of(s), []).append(s)
    return out


def test_overview_services_red(srv, ds):
    """[1] Overview, "Services (Last 30 minutes)": per service throughput, average latency,
    p90 and error rate of requests. Adapted: lower-case enum values and
    approx_percentile_cont for Toolkit's approx_percentile(percentile_agg())."""
    got = rows(srv, """SELECT
    service_name AS "Service",
    COUNT(*)::numeric / (30 * 60) AS "Throughput",
    AVG(duration_ms) AS "Avg Latency",
    ROUND(approx_percentile_cont(duration_ms, 0.90)::numeric, 3) AS "p90 Latency",
    (count(*) filter (where status_code = 'error')::numeric / count(*)) AS "Error rate"
FROM ps_trace.span s
WHERE start_time > NOW() - INTERVAL '30m'
AND (span_kind = 'server' OR parent_span_id is NULL)
GROUP BY 1
ORDER BY 2""")
    want = requests_by_service(ds)
    assert [r["Service"] for r in got] == sorted(want, key=lambda k: len(want[k])), \
        f"services ordered by throughput: {[r['Service'] for r in got]}"
    for r in got:
        spans = want[r["Service"]]
        durs = sorted(duration_ms(s) for s in spans)
        errors = sum(1 for s in spans if status_of(s) == "error")
        where = f"service {r['Service']!r} ({len(spans)} requests)"
        assert approx(r["Throughput"], len(spans) / 1800, 1e-4), f"{where}: Throughput {r['Throughput']}"
        assert approx(r["Avg Latency"], sum(durs) / len(durs)), f"{where}: Avg Latency {r['Avg Latency']}"
        assert approx(r["Error rate"], errors / len(spans)), f"{where}: Error rate {r['Error rate']}"
        p90 = r["p90 Latency"]
        assert p90 is not None and durs[-2] - 1e-3 <= float(p90) <= durs[-1] + 1e-3, \
            f"{where}: p90 {p90} should lie between the two largest durations {durs[-2:]}"


def test_overview_slowest_requests(srv, ds):
    """[1] Overview, "Slowest Requests": unchanged (replace(trace_id::text, '-', '') is a
    no-op on Osprey's hex ids)."""
    got = rows(srv, """SELECT
  replace(trace_id::text, '-'::text, ''::text) as "Trace ID",
  service_name as "Service",
  span_name as "Operation",
  start_time as "Time",
  duration_ms as "Duration"
FROM ps_trace.span
WHERE start_time > NOW() - INTERVAL '30m'
AND parent_span_id is null
ORDER BY duration_ms DESC
LIMIT 50
;""")
    roots = sorted((s for s in ds.spans.values() if s.parent is None),
                   key=lambda s: -duration_ms(s))
    assert [(r["Trace ID"], r["Service"], r["Operation"]) for r in got] == \
        [(hex32(s.context.trace_id), ds.service_of(s), s.name) for s in roots], got
    for r, s in zip(got, roots):
        assert ts_ns(r["Time"]) == s.start_time and approx(r["Duration"], duration_ms(s)), (r, s.name)


def test_overview_most_common_errors(srv):
    """[1] Overview, "Most Common Errors"; adapted: status_code = 'error'."""
    got = rows(srv, """SELECT
  status_message as "Error",
  service_name as "Service",
  count(*) as "Occurrences"
FROM ps_trace.span
WHERE start_time > NOW() - INTERVAL '30m'
AND status_code = 'error'
GROUP BY 1, 2
ORDER BY 3
;""")
    assert got == [{"Error": "payment gateway timeout", "Service": BACKEND, "Occurrences": 1}], got


def test_service_details_error_rate_series(srv, ds):
    """[2] Service Details, "Error Rate" for the backend; adapted: time_bucket('$__interval',
    start_time) → date_bin, with a 1 s interval, and $__timeFilter expanded as Grafana does."""
    frm, to = ds.t0 - 60_000_000_000, time.time_ns() + 60_000_000_000
    got = values(srv, f"""SELECT
    date_bin(INTERVAL '1 second', start_time) as time,
    coalesce(count(*) filter (where status_code = 'error')::numeric / count(*), 0) as "Error rate"
FROM ps_trace.span s
WHERE start_time BETWEEN '{iso(frm)}' AND '{iso(to)}'
AND (span_kind = 'server' OR parent_span_id is NULL)
AND service_name = 'backend'
GROUP BY 1
ORDER BY 1""")
    buckets: dict = {}
    for s in requests_by_service(ds)[BACKEND]:
        b = s.start_time // 1_000_000_000 * 1_000_000_000
        n, e = buckets.get(b, (0, 0))
        buckets[b] = (n + 1, e + (status_of(s) == "error"))
    assert [ts_ns(r[0]) for r in got] == sorted(buckets), \
        f"buckets {[r[0] for r in got]}, want {[iso(b) for b in sorted(buckets)]}"
    for (t, rate), b in zip(got, sorted(buckets)):
        n, e = buckets[b]
        assert approx(rate, e / n), f"bucket {t}: error rate {rate}, want {e}/{n}"


def test_service_details_statistics_by_operation(srv, ds):
    """[2] Service Details, "Statistics by Operation" for the backend; adapted: lower-case
    enums, Grafana's ${__to:date:seconds} - ${__from:date:seconds} and $__timeFilter written
    out."""
    frm_s, to_s = ds.t0 // 1_000_000_000 - 600, ds.t0 // 1_000_000_000 + 600
    got = rows(srv, f"""SELECT
    span_name as "Operation",
    count(*)::numeric / ({to_s} - {frm_s}) AS "Requests",
    sum(duration_ms) / count(*)::numeric as "Avg Duration",
    coalesce((count(*) filter (where status_code = 'error')::numeric / count(*)), 0) as "Error rate"
FROM ps_trace.span s
WHERE start_time BETWEEN '{iso(frm_s * 10**9)}' AND '{iso(to_s * 10**9)}'
AND (span_kind = 'server' OR parent_span_id is NULL)
AND service_name = 'backend'
GROUP BY 1
ORDER BY 1""")
    ops: dict = {}
    for s in requests_by_service(ds)[BACKEND]:
        ops.setdefault(s.name, []).append(s)
    assert [r["Operation"] for r in got] == sorted(ops), got
    for r in got:
        spans = ops[r["Operation"]]
        errors = sum(1 for s in spans if status_of(s) == "error")
        assert approx(r["Requests"], len(spans) / (to_s - frm_s), 1e-4), r
        assert approx(r["Avg Duration"], sum(map(duration_ms, spans)) / len(spans)), r
        assert approx(r["Error rate"], errors / len(spans)), r


def test_service_dependencies_self_join(srv, ds):
    """[3] Service Map, "Service Dependencies": the parent/child self-join, unchanged."""
    got = rows(srv, """SELECT
    p.service_name as "Source",
    k.service_name as "Target",
    k.span_name as "Operation",
    count(*) as "Calls",
    sum(k.duration_ms) as "Total exec time",
    avg(k.duration_ms) as "Avg exec time"
FROM ps_trace.span p
INNER JOIN ps_trace.span k
ON (p.trace_id = k.trace_id
AND p.span_id = k.parent_span_id
AND p.service_name != k.service_name)
WHERE p.start_time >= NOW() - INTERVAL '10 minutes'
AND k.start_time >= NOW() - INTERVAL '10 minutes'
GROUP BY 1, 2, 3
ORDER BY 5 DESC""")
    calls = [ds.span("a_server"), ds.span("c_server")]
    assert len(got) == 1, f"want one dependency frontend → backend 'POST /charge': {got}"
    r = got[0]
    assert (r["Source"], r["Target"], r["Operation"], r["Calls"]) == \
        (FRONTEND, BACKEND, "POST /charge", ds.cross_service_calls), r
    total = sum(map(duration_ms, calls))
    assert approx(r["Total exec time"], total) and approx(r["Avg exec time"], total / 2), r


def test_service_map_node_graph(srv, ds):
    """[3] Service Map, node graph: nodes and edges queries, unchanged."""
    nodes = values(srv, """SELECT
   service_name as id,
   service_name as title
FROM ps_trace.span
WHERE start_time >= NOW() - INTERVAL '10 minutes'
GROUP BY service_name""")
    assert sorted(nodes) == [[BACKEND, BACKEND], [FRONTEND, FRONTEND]], nodes
    edges = rows(srv, """SELECT
    p.service_name || '->' || k.service_name || ':' || k.span_name as id,
    p.service_name as source,
    k.service_name as target,
    k.span_name as "mainStat",
    count(*) as "secondaryStat"
FROM ps_trace.span p
INNER JOIN ps_trace.span k
ON (p.trace_id = k.trace_id
AND p.span_id = k.parent_span_id
AND p.service_name != k.service_name)
WHERE p.start_time >= NOW() - INTERVAL '10 minutes'
AND k.start_time >= NOW() - INTERVAL '10 minutes'
GROUP BY 1, 2, 3, 4""")
    assert edges == [{"id": "frontend->backend:POST /charge", "source": FRONTEND,
                      "target": BACKEND, "mainStat": "POST /charge",
                      "secondaryStat": ds.cross_service_calls}], edges


def test_every_parent_child_pair_by_self_join(srv, ds):
    got = {(key_of(ds, p), key_of(ds, c)) for p, c in values(srv, """
        SELECT p.span_id, k.span_id FROM ps_trace.span p
        JOIN ps_trace.span k ON p.trace_id = k.trace_id AND p.span_id = k.parent_span_id""")}
    by_id = {s.context.span_id: k for k, s in ds.spans.items()}
    want = {(by_id[s.parent.span_id], k) for k, s in ds.spans.items() if s.parent is not None}
    assert got == want, f"parent/child pairs: {sorted(got)}, want {sorted(want)}"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_downstream_dependencies_recursive(srv, ds):
    """[4] Downstream Dependencies for service=frontend, operation='GET /checkout': WITH
    RECURSIVE down the parent/child links, md5 node ids; unchanged but for the template
    variables filled in."""
    nodes = rows(srv, """WITH RECURSIVE x AS
(
    SELECT
        trace_id,
        span_id,
        parent_span_id,
        service_name,
        span_name
    FROM ps_trace.span
    WHERE start_time > NOW() - INTERVAL '10 minutes'
    AND service_name = 'frontend'
    AND span_name = 'GET /checkout'
    UNION ALL
    SELECT
        s.trace_id,
        s.span_id,
        s.parent_span_id,
        s.service_name,
        s.span_name
    FROM x
    INNER JOIN ps_trace.span s
    ON (x.trace_id = s.trace_id
    AND x.span_id = s.parent_span_id)
    AND s.start_time > NOW() - INTERVAL '10 minutes'
)
SELECT
    md5(service_name || '-' || span_name) as id,
    span_name as title,
    service_name as "subTitle",
    count(*) as "mainStat"
FROM x
GROUP BY service_name, span_name""")
    want = {(FRONTEND, "GET /checkout"): 2, (FRONTEND, "POST /api/charge"): 2,
            (BACKEND, "POST /charge"): 2, (BACKEND, "validate card"): 1,
            (BACKEND, "publish receipt"): 1}
    got = {(r["subTitle"], r["title"]): r["mainStat"] for r in nodes}
    assert got == want, f"downstream nodes: {got}, want {want}"
    for r in nodes:
        assert r["id"] == md5(f"{r['subTitle']}-{r['title']}"), f"md5 node id: {r}"

    edges = values(srv, """WITH RECURSIVE x AS
(
    SELECT
        trace_id,
        span_id,
        parent_span_id,
        service_name,
        span_name,
        null::text as id,
        null::text as source,
        null::text as target
    FROM ps_trace.span
    WHERE start_time > NOW() - INTERVAL '10 minutes'
    AND service_name = 'frontend'
    AND span_name = 'GET /checkout'
    UNION ALL
    SELECT
        s.trace_id,
        s.span_id,
        s.parent_span_id,
        s.service_name,
        s.span_name,
        md5(s.service_name || '-' || s.span_name || '-' || x.service_name || '-' || x.span_name) as id,
        md5(x.service_name || '-' || x.span_name) as source,
        md5(s.service_name || '-' || s.span_name) as target
    FROM x
    INNER JOIN ps_trace.span s
    ON (x.trace_id = s.trace_id
    AND x.span_id = s.parent_span_id)
    AND s.start_time > NOW() - INTERVAL '10 minutes'
)
SELECT DISTINCT
    x.id,
    x.source,
    x.target
FROM x
WHERE id is not null""")
    pairs = [((FRONTEND, "GET /checkout"), (FRONTEND, "POST /api/charge")),
             ((FRONTEND, "POST /api/charge"), (BACKEND, "POST /charge")),
             ((BACKEND, "POST /charge"), (BACKEND, "validate card")),
             ((BACKEND, "POST /charge"), (BACKEND, "publish receipt"))]
    want_edges = sorted([md5(f"{c[0]}-{c[1]}-{p[0]}-{p[1]}"), md5(f"{p[0]}-{p[1]}"),
                         md5(f"{c[0]}-{c[1]}")] for p, c in pairs)
    assert sorted(edges) == want_edges, f"downstream edges: {sorted(edges)}, want {want_edges}"


# ---------------------------------------------------------------- time filters

def test_time_filters_as_users_wrote_them(srv, ds):
    n = len(ds.spans)
    t0_s = ds.t0 // 1_000_000_000
    cases = [
        "start_time > NOW() - INTERVAL '30m'",
        "start_time > now() - interval '1 hour' AND end_time <= now()",
        f"start_time BETWEEN '{iso(ds.t0 - 60 * 10**9)}' AND '{iso(time.time_ns() + 60 * 10**9)}'",
        f"start_time >= to_timestamp({t0_s})",
        f"date_trunc('minute', start_time) >= date_trunc('minute', to_timestamp({t0_s}))",
    ]
    for where in cases:
        got = values(srv, f"SELECT count(*) FROM ps_trace.span WHERE {where}")
        assert got == [[n]], f"WHERE {where}: {got}, want [[{n}]]"
    # A window holding only trace A (0 → 120 ms after t0).
    got = keys(ds, values(srv, f"SELECT span_id FROM ps_trace.span WHERE start_time "
                               f"BETWEEN '{iso(ds.t0)}' AND '{iso(ds.t(150))}'"))
    want = {k for k, s in ds.spans.items() if s.context.trace_id == ds.traces["A"]}
    assert got == want, f"spans starting in [t0, t0+150ms]: {sorted(got)}, want {sorted(want)}"


def test_duration_filter_and_order(srv, ds):
    got = keys(ds, values(srv, "SELECT span_id FROM ps_trace.span WHERE duration_ms > 50"))
    want = {k for k, s in ds.spans.items() if duration_ms(s) > 50}
    assert got == want, f"duration_ms > 50: {sorted(got)}, want {sorted(want)}"


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("sql,name", [
    ("SELECT span_tagz FROM ps_trace.span", "span_tagz"),
    ("SELECT span_id FROM ps_trace.span WHERE no_such_column = 1", "no_such_column"),
    ("SELECT event_nam FROM ps_trace.event", "event_nam"),
    ("SELECT linked_span FROM ps_trace.link", "linked_span"),
])
def test_unknown_column_is_400_naming_it(srv, sql, name):
    err = error_of(srv, sql)
    assert name in err, f"{sql!r}: the error should name {name!r}: {err}"


def test_unknown_view_is_400_naming_it(srv):
    err = error_of(srv, "SELECT * FROM ps_trace.spans")
    assert "spans" in err, err


@pytest.mark.parametrize("sql", [
    "DELETE FROM ps_trace.span",
    "DELETE FROM spans WHERE service_name = 'frontend'",
    "CREATE TABLE ps_trace.x (a int)",
    "CREATE VIEW ps_trace.v AS SELECT 1",
    "DROP VIEW ps_trace.span",
    "INSERT INTO spans (trace_id) VALUES ('00')",
    "UPDATE spans SET span_name = 'x'",
])
def test_writes_are_refused(srv, ds, sql):
    err = error_of(srv, sql)
    assert "read-only" in err.lower(), f"{sql!r}: {err}"
    assert values(srv, "SELECT count(*) FROM ps_trace.span") == [[len(ds.spans)]], \
        "the data should be untouched"


# ---------------------------------------------------------------- trace functions

def _sdk_tree(ds, name):
    """span hex → parent hex (None for a root or a parent outside the trace) of trace `name`."""
    spans = ds.trace_spans(name)
    ids = {hex16(s.context.span_id) for s in spans}
    out = {}
    for s in spans:
        p = hex16(s.parent.span_id) if s.parent is not None else None
        out[hex16(s.context.span_id)] = p if p in ids else None
    return out


def _path_to_root(tree, span):
    path = [span]
    while tree[path[-1]] is not None:
        path.append(tree[path[-1]])
    return path


def test_trace_tree_levels_and_paths(srv, ds):
    tree = _sdk_tree(ds, "A")
    got = rows(srv, f"select * from trace_tree('{ds.trace_hex('A')}')")
    assert {r["span_id"] for r in got} == set(tree), got
    for r in got:
        want_path = list(reversed(_path_to_root(tree, r["span_id"])))
        assert r["trace_id"] == ds.trace_hex("A"), r
        assert r["path"] == want_path, f"path of {r['span_id']}: {r['path']} want {want_path}"
        assert r["lvl"] == len(want_path), r
        assert r["parent_span_id"] == (None if len(want_path) == 1 else want_path[-2]) or \
            r["parent_span_id"] == tree[r["span_id"]], r


def test_upstream_and_downstream_spans(srv, ds):
    tree = _sdk_tree(ds, "A")
    depth = {s: len(_path_to_root(tree, s)) for s in tree}
    leaf = max(tree, key=lambda s: (depth[s], s))
    up = rows(srv, f"select span_id, dist, path from upstream_spans('{ds.trace_hex('A')}', '{leaf}')")
    chain = _path_to_root(tree, leaf)
    assert [r["span_id"] for r in sorted(up, key=lambda r: r["dist"])] == chain, up
    assert [r["dist"] for r in sorted(up, key=lambda r: r["dist"])] == list(range(len(chain)))
    root = chain[-1]
    down = rows(srv, f"select span_id, dist from downstream_spans('{ds.trace_hex('A')}', '{root}')")
    assert {r["span_id"] for r in down} == set(tree), "every span of A is below its root"
    near = rows(srv, f"select span_id, dist from downstream_spans('{ds.trace_hex('A')}', '{root}', 1)")
    assert {r["span_id"] for r in near} == {root} | {s for s, p in tree.items() if p == root}, near
    assert rows(srv, f"select * from upstream_spans('{ds.trace_hex('A')}', 'ffffffffffffffff')") == []


def test_trace_function_bad_arguments_are_400(srv, ds):
    assert "upstream_spans" in error_of(srv, "select * from upstream_spans('abc')")
