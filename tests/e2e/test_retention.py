"""Spans older than --retention disappear; recent ones stay, also across a restart."""
from __future__ import annotations

import time

from conftest import wait_until
from otlp import make_request, make_span, post_traces, send_ok

HOUR_NS = 3600 * 1_000_000_000


def test_retention_drops_old_spans_and_keeps_recent(make_server):
    """Spans accepted inside the retention window are dropped once they age out of it."""
    server = make_server("--retention=10s", "--maintenance-interval=1s", "--flush-interval=1s")
    now = time.time_ns()
    # Ageing: 6 s from the cutoff when sent. Staying: 90 min in the future (clock skew), so
    # always in another hour partition, hence another segment file.
    old = [make_span(f"old-{i}", start_ns=now - 4_000_000_000 + i) for i in range(20)]
    recent = [make_span(f"recent-{i}", start_ns=now + 90 * 60 * 1_000_000_000 + i)
              for i in range(20)]
    old_ids = {s.span_id.hex() for s in old}
    recent_ids = {s.span_id.hex() for s in recent}
    # Mixed in one request and in separate ones.
    for req in (make_request(old[:10] + recent[:10]), make_request(old[10:]),
                make_request(recent[10:])):
        r = post_traces(server.otlp_http, req)
        assert r.status_code == 200, r.content
        assert r.content == b"", "nothing was rejected"

    wait_until(lambda: set(server.span_ids()) >= old_ids | recent_ids,
               what="all spans to be stored first")
    wait_until(lambda: set(server.span_ids()) == recent_ids, timeout=30,
               what="only the recent spans to remain (old ones past retention)")
    assert not old_ids & set(server.span_ids())

    # What retention removed stays removed after a restart (no WAL resurrection), and what it
    # kept is still there.
    assert server.stop() == 0
    server.start()
    ids = wait_until(lambda: (got := server.span_ids()) and set(got) >= recent_ids and got,
                     what="recent spans after restart")
    assert sorted(ids) == sorted(recent_ids)


def test_spans_already_past_retention_are_rejected_not_acknowledged(make_server):
    """Acknowledging a span the store would delete at once would lose acknowledged data:
    such spans get a partial success naming them, the rest of the request is stored."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse)
    server = make_server("--retention=1h")
    now = time.time_ns()
    stale = make_span("stale", start_ns=now - 3 * HOUR_NS)
    fresh = make_span("fresh", start_ns=now - 1_000_000_000)
    r = post_traces(server.otlp_http, make_request([stale, fresh]))
    assert r.status_code == 200, r.content
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1, resp
    assert stale.span_id.hex() in resp.partial_success.error_message
    assert "retention" in resp.partial_success.error_message
    wait_until(lambda: server.span_ids() == [fresh.span_id.hex()], what="the fresh span")


def test_zero_retention_is_refused(tmp_path):
    import subprocess
    from conftest import osprey_bin
    out = subprocess.run([str(osprey_bin()), "up", "--data-dir", str(tmp_path / "d"),
                          "--retention", "0s"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "retention" in out.stderr and "0" in out.stderr, out.stderr


def test_default_retention_keeps_day_old_spans(make_server):
    """With the default 7d retention a span from yesterday is kept."""
    server = make_server("--maintenance-interval=1s", "--flush-interval=1s")
    span = make_span("yesterday", start_ns=time.time_ns() - 24 * HOUR_NS)
    send_ok(server.otlp_http, make_request([span]))
    wait_until(lambda: server.span_ids() == [span.span_id.hex()], what="yesterday's span")
    time.sleep(3)  # several maintenance passes; the span must survive them
    assert server.span_ids() == [span.span_id.hex()]
