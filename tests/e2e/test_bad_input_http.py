"""OTLP/HTTP with bad input: each case gets the documented status, and the server keeps serving
the data it already had."""
from __future__ import annotations

import functools
import json
import zlib

import pytest
import requests
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList

from conftest import wait_until
from otlp import (JSON, PROTOBUF, make_request, make_span, nested_kvlist, parse_response,
                  post_traces, send_ok, simple_request, span_with_attr_bytes, wrap_span_bytes)

LIMIT = 1 << 20  # --max-request-bytes for this file


@pytest.fixture
def server(make_server):
    s = make_server(f"--max-request-bytes={LIMIT}")
    req, ids = simple_request(5, service="before")
    send_ok(s.otlp_http, req)
    wait_until(lambda: set(s.span_ids()) >= set(ids), what="baseline spans")
    s.baseline = set(ids)
    yield s
    # After every bad request: alive, healthy, and the earlier data still there.
    assert s.healthy(), "server not healthy after bad input"
    assert set(s.span_ids()) >= s.baseline, "earlier spans no longer queryable"


def rpc_status(resp: requests.Response) -> RpcStatus:
    """The google.rpc.Status body of a protobuf error response."""
    st = RpcStatus()
    st.ParseFromString(resp.content)
    assert st.message, f"error body without a message: {resp.content[:300]!r}"
    return st


def test_malformed_protobuf_is_400(server):
    r = post_traces(server.otlp_http, b"\x0a\x64abc")  # field 1 claims 100 bytes, has 3
    assert r.status_code == 400, r.content
    assert r.headers["Content-Type"].startswith(PROTOBUF)
    rpc_status(r)


def test_malformed_json_is_400(server):
    r = post_traces(server.otlp_http, b'{"resourceSpans": [', content_type=JSON)
    assert r.status_code == 400, r.content
    assert r.headers["Content-Type"].startswith(JSON)
    assert r.json().get("message"), r.text


def test_gzip_header_on_plain_body_is_400(server):
    req, _ = simple_request(1)
    r = post_traces(server.otlp_http, req.SerializeToString(),
                    headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400, r.content


def test_empty_request_is_success(server):
    r = post_traces(server.otlp_http, b"")
    resp = parse_response(r)
    assert not resp.HasField("partial_success"), resp


def test_bad_trace_id_rejects_only_that_span(server):
    good = [make_span(f"good-{i}") for i in range(3)]
    bad = make_span("bad-id", trace_id=b"\x01" * 15)
    resp = parse_response(post_traces(server.otlp_http, make_request(good[:2] + [bad] + good[2:])))
    assert resp.partial_success.rejected_spans == 1, resp
    assert "trace_id" in resp.partial_success.error_message, resp
    good_ids = {s.span_id.hex() for s in good}
    wait_until(lambda: set(server.span_ids()) >= good_ids, what="the good spans")
    assert bad.span_id.hex() not in server.span_ids()


def test_bad_ids_in_json_are_partial_success(server):
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "01" * 15, "spanId": "02" * 8, "name": "short", "startTimeUnixNano": "1"},
        {"traceId": "03" * 16, "spanId": "0000000000000000", "name": "zero-span-id",
         "startTimeUnixNano": "1"},
    ]}]}]}
    r = post_traces(server.otlp_http, body, content_type=JSON)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(JSON)
    ps = r.json()["partialSuccess"]
    assert int(ps["rejectedSpans"]) == 2, ps
    assert "trace_id" in ps["errorMessage"] and "span_id" in ps["errorMessage"], ps


def test_missing_start_time_is_rejected(server):
    good = make_span("good")
    no_start = make_span("no-start")
    no_start.start_time_unix_nano = 0
    resp = parse_response(post_traces(server.otlp_http, make_request([good, no_start])))
    assert resp.partial_success.rejected_spans == 1, resp
    assert "start" in resp.partial_success.error_message, resp
    wait_until(lambda: good.span_id.hex() in server.span_ids(), what="the good span")
    assert no_start.span_id.hex() not in server.span_ids()


def test_invalid_utf8_is_400_naming_utf8(server):
    span = make_span("XXXX").SerializeToString()
    assert span.count(b"XXXX") == 1
    body = wrap_span_bytes(span.replace(b"XXXX", b"\xff\xfe\xc3\x28"))
    r = post_traces(server.otlp_http, body)
    assert r.status_code == 400, r.content
    msg = rpc_status(r).message.lower()
    assert "utf-8" in msg or "utf8" in msg, msg


def test_too_many_attributes_are_truncated_and_counted(server):
    span = make_span("wide", attributes={f"a{i:04d}": i for i in range(2000)})
    r = post_traces(server.otlp_http, make_request([span]))
    assert r.status_code == 200, r.content
    sid = span.span_id.hex()
    rows = wait_until(lambda: server.rows(
        f"select span_attributes, dropped_attributes_count from spans where span_id = '{sid}'"),
        what="the wide span")
    kept, dropped = rows[0]["span_attributes"], rows[0]["dropped_attributes_count"]
    assert dropped > 0
    assert len(kept) + dropped == 2000
    assert kept["a0000"] == "0"


def test_moderate_nesting_is_stored(server):
    body, sid = span_with_attr_bytes("nested", nested_kvlist(5))
    send_ok(server.otlp_http, wrap_span_bytes(body))
    rows = wait_until(lambda: server.rows(
        f"select span_attributes from spans where span_id = '{sid}'"), what="nested span")
    assert rows[0]["span_attributes"]["deep"] == '{"k":{"k":{"k":{"k":{"k":"leaf"}}}}}'


def test_deep_nesting_is_400_not_a_crash(server):
    body, _ = span_with_attr_bytes("deep", nested_kvlist(200))
    r = post_traces(server.otlp_http, wrap_span_bytes(body))
    assert r.status_code == 400, r.content
    rpc_status(r)


def test_oversized_body_is_413(server):
    span = make_span("big", attributes={"blob": "x" * (LIMIT + 1000)})
    r = post_traces(server.otlp_http, make_request([span]))
    assert r.status_code == 413, r.content[:300]
    assert span.span_id.hex() not in server.span_ids()


def test_oversized_after_decompression_is_413(server):
    span = make_span("big-gz", attributes={"blob": "x" * (2 * LIMIT)})
    r = post_traces(server.otlp_http, make_request([span]), gzip=True)
    assert r.status_code == 413, r.content[:300]


@functools.lru_cache(maxsize=1)
def gzip_bomb(mib=1000) -> bytes:
    """`mib` MiB of zeros, gzip-compressed to about 1 MB."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    chunk = bytes(1 << 20)
    return b"".join([c.compress(chunk) for _ in range(mib)] + [c.flush()])


def test_gzip_bomb_is_413_and_memory_stays_bounded(server):
    bomb = gzip_bomb()
    assert len(bomb) < LIMIT  # only the decompressed size is over the limit
    hwm_before = server.rss_kib("VmHWM")
    try:
        r = post_traces(server.otlp_http, bomb, headers={"Content-Encoding": "gzip"}, timeout=120)
    except requests.ConnectionError as e:
        pytest.fail(f"no HTTP answer to a gzip bomb (connection dropped: {e}); "
                    "clients would retry it")
    assert r.status_code == 413, r.content[:300]
    grew_mib = (server.rss_kib("VmHWM") - hwm_before) / 1024
    assert grew_mib < 256, f"peak RSS grew by {grew_mib:.0f} MiB on a 1000 MiB gzip bomb"
    req, ids = simple_request(2)
    send_ok(server.otlp_http, req)
    wait_until(lambda: set(server.span_ids()) >= set(ids), what="spans sent after the bomb")


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "application/grpc"])
def test_unsupported_content_type_is_415(server, ctype):
    req, _ = simple_request(1)
    r = post_traces(server.otlp_http, req, content_type=ctype)
    assert r.status_code == 415, (r.status_code, r.content[:300])


@pytest.mark.parametrize("path", ["/v1/metrics", "/v1/logs"])
@pytest.mark.parametrize("ctype", [PROTOBUF, JSON])
def test_metrics_and_logs_are_not_supported_yet(server, path, ctype):
    body = b"" if ctype == PROTOBUF else b"{}"
    r = post_traces(server.otlp_http, body, content_type=ctype, path=path)
    assert r.status_code in (501, 404), (r.status_code, r.content[:300])
    text = r.content.decode("utf-8", "replace")
    if ctype == JSON:
        text = json.dumps(r.json())
    assert "not supported" in text.lower(), text


def test_odd_but_legal_attributes_are_stored(server):
    """A KeyValue without a value and an empty kvlist are legal protobuf: stored, not rejected."""
    span = make_span("odd-attrs")
    span.attributes.extend([KeyValue(key="novalue"),
                            KeyValue(key="emptylist", value=AnyValue(kvlist_value=KeyValueList()))])
    resp = parse_response(post_traces(server.otlp_http, make_request([span])))
    assert resp.partial_success.rejected_spans == 0
    sid = span.span_id.hex()
    rows = wait_until(lambda: server.rows(
        f"select span_attributes from spans where span_id = '{sid}'"), what="odd-attrs span")
    assert rows[0]["span_attributes"]["emptylist"] == "{}"
    assert "novalue" in rows[0]["span_attributes"]
