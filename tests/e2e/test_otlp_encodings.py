"""OTLP/HTTP encodings: hand-written OTLP/JSON (spec quirks: hex ids, integer enums, int64 as
strings, lowerCamelCase), gzip-compressed protobuf and JSON, and the response encodings."""
from __future__ import annotations

import gzip
import json
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from conftest import wait_until
from otlp import (JSON, PROTOBUF, expected_rows, normalize_row, post_traces, round_expected,
                  simple_request)

TRACE_ID = "5B8EFFF798038103D269B633813FC60C"  # upper case: OTLP/JSON ids are case-insensitive
ROOT_ID = "EEE19B7EC3C1B174"
CHILD_ID = "eee19b7ec3c1b173"
LINKED_TRACE = "5b8efff798038103d269b633813fc600"


def json_request(now_ns: int) -> dict:
    start = str(now_ns)
    return {
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "json-svc"}},
                {"key": "host.cpus", "value": {"intValue": "2"}},
            ]},
            "scopeSpans": [{
                "scope": {"name": "json-scope", "version": "9.9"},
                "spans": [
                    {
                        "traceId": TRACE_ID, "spanId": ROOT_ID, "parentSpanId": "",
                        "traceState": "k=v",
                        "name": "GET /json", "kind": 2,
                        "startTimeUnixNano": start,
                        "endTimeUnixNano": str(now_ns + 2_000_123),
                        "attributes": [
                            {"key": "int", "value": {"intValue": "42"}},
                            {"key": "int_number", "value": {"intValue": 7}},
                            {"key": "double", "value": {"doubleValue": 1.5}},
                            {"key": "bool", "value": {"boolValue": True}},
                            {"key": "str", "value": {"stringValue": "s"}},
                            {"key": "bytes", "value": {"bytesValue": "aGVsbG8="}},
                            {"key": "array", "value": {"arrayValue": {"values": [
                                {"stringValue": "a"}, {"intValue": "2"}, {"boolValue": False}]}}},
                            {"key": "kvlist", "value": {"kvlistValue": {"values": [
                                {"key": "k", "value": {"intValue": "1"}},
                                {"key": "s", "value": {"stringValue": "v"}}]}}},
                        ],
                        "events": [{"timeUnixNano": str(now_ns + 1000), "name": "ev",
                                    "attributes": [{"key": "e", "value": {"intValue": "5"}}]}],
                        "links": [{"traceId": LINKED_TRACE, "spanId": "0102030405060708",
                                   "traceState": "lk=lv",
                                   "attributes": [{"key": "l", "value": {"boolValue": True}}]}],
                        "status": {"code": 1},
                        "droppedAttributesCount": 3,
                        "someUnknownField": {"ignored": True},
                    },
                    {
                        "traceId": TRACE_ID, "spanId": CHILD_ID, "parentSpanId": ROOT_ID,
                        "name": "db", "kind": 3,
                        "startTimeUnixNano": now_ns + 10,  # int64 as a JSON number is allowed
                        "endTimeUnixNano": now_ns + 1_000_010,
                        "status": {"code": 2, "message": "bad"},
                        "flags": 257,
                    },
                ],
            }],
        }],
    }


def test_otlp_json_request(server):
    now = time.time_ns() - 5_000_000_000
    r = post_traces(server.otlp_http, json.dumps(json_request(now)), content_type=JSON)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(JSON), r.headers
    body = r.json()
    assert not body.get("partialSuccess"), body

    rows = wait_until(lambda: (got := server.rows("select * from spans")) and len(got) == 2 and got,
                      what="2 JSON spans")
    by_id = {row["span_id"]: normalize_row(row) for row in rows}
    root, child = by_id[ROOT_ID.lower()], by_id[CHILD_ID]
    assert root["trace_id"] == child["trace_id"] == TRACE_ID.lower()
    assert root["parent_span_id"] is None
    assert child["parent_span_id"] == ROOT_ID.lower()
    assert root["trace_state"] == "k=v"
    assert (root["service_name"], root["scope_name"], root["scope_version"]) == \
        ("json-svc", "json-scope", "9.9")
    assert root["resource_attributes"] == {"service.name": "json-svc", "host.cpus": "2"}
    assert (root["span_name"], root["span_kind"], root["status_code"], root["status_message"]) == \
        ("GET /json", "SPAN_KIND_SERVER", "STATUS_CODE_OK", "")
    assert (child["span_kind"], child["status_code"], child["status_message"]) == \
        ("SPAN_KIND_CLIENT", "STATUS_CODE_ERROR", "bad")
    assert (root["start_time"], root["end_time"]) == (now, now + 2_000_123)
    assert root["duration_ms"] == 2.000123
    assert (child["start_time"], child["end_time"]) == (now + 10, now + 1_000_010)
    assert root["span_attributes"] == {
        "int": "42", "int_number": "7", "double": "1.5", "bool": "true", "str": "s",
        "bytes": '"aGVsbG8="', "array": '["a",2,false]', "kvlist": '{"k":1,"s":"v"}',
    }
    assert root["events"] == [{"time": now + 1000, "name": "ev", "attributes": {"e": "5"}}]
    assert root["links"] == [{"trace_id": LINKED_TRACE, "span_id": "0102030405060708",
                              "trace_state": "lk=lv", "attributes": {"l": "true"}}]
    assert root["dropped_attributes_count"] == 3
    assert child["flags"] == 257
    assert child["events"] == [] and child["links"] == [] and child["span_attributes"] == {}


def test_enum_names_are_not_silently_misread(server):
    """Enums MUST be integers in OTLP/JSON. A request using names must not be stored as if the
    enum were unset and the span fine: either a 400 or the span is rejected/kept faithfully."""
    now = time.time_ns()
    req = json_request(now)
    span = req["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    span["kind"] = "SPAN_KIND_CLIENT"
    r = post_traces(server.otlp_http, json.dumps(req), content_type=JSON)
    if r.status_code == 200:
        rows = wait_until(lambda: server.rows(
            f"select span_kind from spans where span_id = '{CHILD_ID}'"), what="child span")
        assert rows[0]["span_kind"] == "SPAN_KIND_CLIENT", rows
    else:
        assert r.status_code == 400, r.text


def test_gzip_protobuf(server):
    req, ids = simple_request(25, service="gz")
    r = post_traces(server.otlp_http, req, gzip=True)
    assert r.status_code == 200, r.content
    assert r.headers["Content-Type"].startswith(PROTOBUF), r.headers
    resp = ExportTraceServiceResponse()
    resp.ParseFromString(r.content)
    assert not resp.HasField("partial_success"), resp
    want = expected_rows(req)
    got = wait_until(lambda: (rows := server.rows("select * from spans where service_name = 'gz'"))
                     and len(rows) == 25 and rows, what="25 gzip spans")
    for row in got:
        assert normalize_row(row) == round_expected(want[row["span_id"]])
    assert sorted(want) == sorted(ids)


def test_gzip_json(server):
    now = time.time_ns()
    body = gzip.compress(json.dumps(json_request(now)).encode())
    r = post_traces(server.otlp_http, body, content_type=JSON,
                    headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    wait_until(lambda: len(server.span_ids()) == 2, what="2 gzip JSON spans")


def test_content_type_parameters_are_accepted(server):
    req, ids = simple_request(2)
    r = post_traces(server.otlp_http, req, content_type="application/x-protobuf; charset=binary")
    assert r.status_code == 200, r.content
    r = post_traces(server.otlp_http, json.dumps(json_request(time.time_ns())),
                    content_type="application/json; charset=utf-8")
    assert r.status_code == 200, r.text
    wait_until(lambda: set(server.span_ids()) >= set(ids), what="protobuf spans")
