"""OTLP/gRPC with bad input, through grpcio and the generated TraceService stub: partial
success for bad items, INVALID_ARGUMENT for undecodable messages, RESOURCE_EXHAUSTED for
oversized ones; the server keeps serving."""
from __future__ import annotations

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from conftest import wait_until
from otlp import (make_request, make_span, nested_kvlist, simple_request, span_with_attr_bytes,
                  wrap_span_bytes)

LIMIT = 1 << 20
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def server(make_server):
    s = make_server(f"--max-request-bytes={LIMIT}")
    req, ids = simple_request(5, service="before")
    with grpc.insecure_channel(s.otlp_grpc) as ch:
        TraceServiceStub(ch).Export(req, timeout=30)
    wait_until(lambda: set(s.span_ids()) >= set(ids), what="baseline spans")
    s.baseline = set(ids)
    yield s
    assert s.healthy(), "server not healthy after bad input"
    assert set(s.span_ids()) >= s.baseline, "earlier spans no longer queryable"


@pytest.fixture
def channel(server):
    ch = grpc.insecure_channel(server.otlp_grpc)
    yield ch
    ch.close()


def export(channel, req, **kw):
    return TraceServiceStub(channel).Export(req, timeout=60, **kw)


def export_raw(channel, body: bytes):
    """Sends hand-made bytes as the request message."""
    call = channel.unary_unary(EXPORT, request_serializer=None,
                               response_deserializer=ExportTraceServiceResponse.FromString)
    return call(body, timeout=60)


def rpc_error(fn) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value


def test_good_request_has_no_partial_success(server, channel):
    req, ids = simple_request(3)
    resp = export(channel, req)
    assert not resp.HasField("partial_success"), resp
    wait_until(lambda: set(server.span_ids()) >= set(ids), what="spans")


def test_bad_ids_are_partial_success(server, channel):
    good = [make_span("good-1"), make_span("good-2")]
    bad = [make_span("short-trace", trace_id=b"\x01" * 15),
           make_span("zero-span", span_id=b"\x00" * 8),
           make_span("long-span", span_id=b"\x02" * 9)]
    resp = export(channel, make_request([bad[0], good[0], bad[1], good[1], bad[2]]))
    assert resp.partial_success.rejected_spans == 3, resp
    msg = resp.partial_success.error_message
    assert "trace_id" in msg and "span_id" in msg, msg
    good_ids = {s.span_id.hex() for s in good}
    ids = wait_until(lambda: (got := set(server.span_ids())) >= good_ids and got, what="good spans")
    assert not {s.span_id.hex() for s in bad} & ids


def test_oversized_message_is_resource_exhausted(server, channel):
    span = make_span("big", attributes={"blob": "x" * (LIMIT + 1000)})
    err = rpc_error(lambda: export(channel, make_request([span])))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
    assert span.span_id.hex() not in server.span_ids()


def test_oversized_after_decompression_is_resource_exhausted(server, channel):
    span = make_span("big-gz", attributes={"blob": "x" * (4 * LIMIT)})
    err = rpc_error(lambda: export(channel, make_request([span]),
                                   compression=grpc.Compression.Gzip))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())


def test_gzip_compressed_request_is_accepted(server, channel):
    req, ids = simple_request(10)
    resp = export(channel, req, compression=grpc.Compression.Gzip)
    assert not resp.HasField("partial_success"), resp
    wait_until(lambda: set(server.span_ids()) >= set(ids), what="gzip spans")


def test_malformed_message_is_invalid_argument(server, channel):
    err = rpc_error(lambda: export_raw(channel, b"\x0a\x64abc"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())


def test_invalid_utf8_is_invalid_argument(server, channel):
    span = make_span("XXXX").SerializeToString()
    body = wrap_span_bytes(span.replace(b"XXXX", b"\xff\xfe\xc3\x28"))
    err = rpc_error(lambda: export_raw(channel, body))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    details = (err.details() or "").lower()
    assert "utf-8" in details or "utf8" in details, details


def test_deep_nesting_is_invalid_argument(server, channel):
    body, _ = span_with_attr_bytes("deep", nested_kvlist(200))
    err = rpc_error(lambda: export_raw(channel, wrap_span_bytes(body)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())


def test_empty_request_is_success(server, channel):
    resp = export_raw(channel, b"")
    assert not resp.HasField("partial_success"), resp


def test_other_signals_are_unimplemented(server, channel):
    for method in ("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                   "/opentelemetry.proto.collector.logs.v1.LogsService/Export"):
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        err = rpc_error(lambda: call(b"", timeout=30))
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED, (method, err.code(), err.details())
