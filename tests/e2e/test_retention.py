"""Spans older than --retention disappear; recent ones stay, also across a restart."""
from __future__ import annotations

import time

from conftest import wait_until
from otlp import make_request, make_span, post_traces, send_ok

HOUR_NS = 3600 * 1_000_000_000


def test_retention_drops_old_spans_and_keeps_recent(make_server):
    server = make_server("--retention=1h", "--maintenance-interval=1s", "--flush-interval=1s")
    now = time.time_ns()
    old = [make_span(f"old-{i}", start_ns=now - 3 * HOUR_NS + i) for i in range(20)]
    recent = [make_span(f"recent-{i}", start_ns=now - 1_000_000_000 + i) for i in range(20)]
    old_ids = {s.span_id.hex() for s in old}
    recent_ids = {s.span_id.hex() for s in recent}
    # Mixed in one request and in separate ones.
    for req in (make_request(old[:10] + recent[:10]), make_request(old[10:]),
                make_request(recent[10:])):
        r = post_traces(server.otlp_http, req)
        assert r.status_code == 200, r.content

    wait_until(lambda: set(server.span_ids()) >= recent_ids, what="recent spans to be stored")
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


def test_default_retention_keeps_day_old_spans(make_server):
    """With the default 7d retention a span from yesterday is kept."""
    server = make_server("--maintenance-interval=1s", "--flush-interval=1s")
    span = make_span("yesterday", start_ns=time.time_ns() - 24 * HOUR_NS)
    send_ok(server.otlp_http, make_request([span]))
    wait_until(lambda: server.span_ids() == [span.span_id.hex()], what="yesterday's span")
    time.sleep(3)  # several maintenance passes; the span must survive them
    assert server.span_ids() == [span.span_id.hex()]
