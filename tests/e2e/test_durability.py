"""Acknowledged spans survive SIGTERM, `kill -9`, and `kill -9` in the middle of sustained load,
and come back exactly once."""
from __future__ import annotations

import threading
import time
from collections import Counter

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from conftest import wait_until
from otlp import (expected_rows, normalize_row, post_traces, round_expected, send_ok,
                  simple_request)

BIG = "--query-max-rows=100000000"


def assert_exactly(server, want: set[str], what="spans"):
    """Every id of `want` present (polling), the table holds nothing else, and no duplicates."""
    def present():
        ids = server.span_ids()
        return set(ids) >= want and ids
    ids = wait_until(present, timeout=30, what=f"{len(want)} {what}")
    dupes = {k: n for k, n in Counter(ids).items() if n > 1}
    assert not dupes, f"{len(dupes)} span ids stored more than once, e.g. {list(dupes.items())[:5]}"
    assert set(ids) == want, f"unexpected spans: {sorted(set(ids) - want)[:5]}"
    assert server.sql("select span_id, count(*) from spans group by span_id "
                      "having count(*) > 1")["rows"] == []


def send_http(server, n=50):
    req, ids = simple_request(n, service="durable-http")
    send_ok(server.otlp_http, req)
    return req, set(ids)


def send_grpc(server, n=50):
    req, ids = simple_request(n, service="durable-grpc")
    with grpc.insecure_channel(server.otlp_grpc) as ch:
        resp = TraceServiceStub(ch).Export(req, timeout=30)
    assert not resp.HasField("partial_success"), resp
    return req, set(ids)


def test_sigterm_restart_keeps_everything(make_server):
    server = make_server()
    req1, ids1 = send_http(server)
    req2, ids2 = send_grpc(server)
    assert_exactly(server, ids1 | ids2)
    assert server.stop() == 0, "SIGTERM should be a clean shutdown (exit 0)"
    server.start()
    assert_exactly(server, ids1 | ids2)
    # Restored rows are complete, not just their ids.
    want = {**expected_rows(req1), **expected_rows(req2)}
    got = {r["span_id"]: normalize_row(r) for r in server.rows("select * from spans")}
    for sid, row in want.items():
        assert got[sid] == round_expected(row)
    # And the store takes new writes after a restart.
    _, ids3 = send_http(server)
    assert_exactly(server, ids1 | ids2 | ids3)


@pytest.mark.parametrize("fsync", ["always", "never"])
def test_kill9_right_after_ack(make_server, fsync):
    server = make_server(f"--fsync={fsync}")
    _, ids1 = send_http(server)
    _, ids2 = send_grpc(server)
    server.kill9()
    server.start()
    assert_exactly(server, ids1 | ids2)


def test_repeated_kill9_never_duplicates(make_server):
    """Replaying the WAL twice, or replaying data already flushed to segments, must not
    store a span twice."""
    server = make_server("--flush-interval=1s", "--maintenance-interval=1s")
    want: set[str] = set()
    for round_ in range(3):
        _, ids = send_http(server)
        want |= ids
        if round_ == 1:
            time.sleep(3)  # likely lets a flush to segments happen first; correct either way
        server.kill9()
        server.start()
        assert_exactly(server, want)


class Load:
    """Several threads posting OTLP/HTTP protobuf requests of fresh spans, remembering the span
    ids of every request answered 200. Bounded in requests and time."""

    def __init__(self, url: str, threads=3, spans_per_request=20, max_requests=20_000,
                 max_seconds=120):
        self.url, self.n = url, spans_per_request
        self.acked: set[str] = set()
        self.ok_requests = 0
        self.statuses: Counter = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.budget = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self):
        session = requests.Session()
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if self.budget <= 0:
                    return
                self.budget -= 1
            req, ids = simple_request(self.n, service="load")
            try:
                r = post_traces(self.url, req, session=session, timeout=30)
                status = r.status_code
            except requests.RequestException as e:
                status = type(e).__name__
                session = requests.Session()
                time.sleep(0.05)
            with self.lock:
                self.statuses[status] += 1
                if status == 200:
                    self.acked.update(ids)
                    self.ok_requests += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def acked_snapshot(self) -> tuple[int, set[str]]:
        with self.lock:
            return self.ok_requests, set(self.acked)


@pytest.mark.parametrize("args", [("--fsync=always", "--flush-interval=1s"),
                                  ("--fsync=never", "--flush-interval=30s")],
                         ids=["fsync-always-flush-1s", "fsync-never-flush-30s"])
def test_kill9_under_load_loses_no_acknowledged_span(make_server, args):
    server = make_server(BIG, *args)
    with Load(server.otlp_http) as load:
        started = time.monotonic()
        # A few seconds of load, and enough acknowledged requests to make the test meaningful.
        wait_until(lambda: load.acked_snapshot()[0] >= 100 and time.monotonic() - started > 4,
                   timeout=60, what="100 acknowledged requests")
        server.kill9()
    # The senders have stopped; every 200 they saw was sent before the kill.
    assert not any(t.is_alive() for t in load.threads)
    _, acked = load.acked_snapshot()
    assert 200 in load.statuses, load.statuses

    server.start()
    ids = wait_until(lambda: (got := server.span_ids()) and set(got) >= acked and got,
                     timeout=30, what=f"{len(acked)} acknowledged spans after kill -9")
    missing = acked - set(ids)
    assert not missing, f"{len(missing)} acknowledged spans lost, e.g. {sorted(missing)[:5]}"
    dupes = [k for k, n in Counter(ids).items() if n > 1]
    assert not dupes, f"{len(dupes)} span ids stored twice, e.g. {dupes[:5]}"
    assert server.sql("select span_id, count(*) from spans group by span_id "
                      "having count(*) > 1")["rows"] == []
    # Requests in flight at the kill (one per sender) may be present; nothing else may be.
    extra = set(ids) - acked
    in_flight = len(load.threads) * load.n
    assert len(extra) <= in_flight, f"{len(extra)} unacknowledged spans, more than {in_flight}"
