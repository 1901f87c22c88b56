"""`osprey collector`: configuration validation, lifecycle, and the reliability features of the
Collector's exporter helper and processors, driven with real OTLP clients (the gRPC stubs and
protobuf messages of the `opentelemetry-proto` package, and OTLP/HTTP with `requests`).

Where the expectations come from (upstream OpenTelemetry Collector behaviour and docs):

* Configuration: https://opentelemetry.io/docs/collector/configuration/ (component ids
  `type[/name]`, `service.pipelines`, connectors used as exporter of one pipeline and receiver
  of another, several `--config` files merged with later ones winning, `${env:VAR}` and
  `${env:VAR:-default}` expansion from the environment of the collector process) and
  `otelcol validate --config FILE` (exit status 0 for a valid config, an error otherwise).
* exporterhelper README (collector/exporter/exporterhelper): `sending_queue` {enabled,
  num_consumers, queue_size, storage}, `retry_on_failure` {enabled, initial_interval,
  max_interval, max_elapsed_time (0 = no limit)}; a full queue rejects the data
  (`otelcol_exporter_enqueue_failed_spans`), `otelcol_exporter_queue_size` /
  `otelcol_exporter_queue_capacity` gauges; with `storage` the queue is persisted by a storage
  extension and survives a crash (at-least-once).
* OTLP specification (opentelemetry-proto docs/specification.md): a retryable refusal is gRPC
  UNAVAILABLE, or HTTP 503 with `Retry-After`; OTLP/JSON encodes traceId/spanId as hex strings
  (not base64), enum values as integers, field names in lowerCamelCase.
* memorylimiterprocessor README: above the soft limit (`limit_mib - spike_limit_mib`, spike
  defaulting to 20% of the limit) data is refused with a retryable error; receivers count it in
  `otelcol_receiver_refused_spans`.
* batchprocessor README: `send_batch_size` triggers a send, `send_batch_max_size` caps and
  splits, `timeout` sends what remains.
* fileexporter README: `path`, one JSON-encoded OTLP export request per line.
* healthcheckextension README: GET `endpoint` -> 200 `{"status":"Server available",...}`.
* filestorage extension README: `directory`, `create_directory`.
"""
from __future__ import annotations

import base64
import json
import os
import re
import uuid
from pathlib import Path

import grpc
import pytest
import requests
import yaml
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector import run_validate, seed_collector_config
from conftest import free_port, wait_until
from otlp import attr_map, make_request, make_span, post_traces

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


# ---------------------------------------------------------------- helpers

def good_config() -> dict:
    """A small valid config: OTLP in, batch, debug out."""
    return {
        "receivers": {"otlp": {"protocols": {
            "grpc": {"endpoint": "127.0.0.1:4317"},
            "http": {"endpoint": "127.0.0.1:4318"},
        }}},
        "processors": {"batch": {"timeout": "5s"}},
        "exporters": {"debug": {"verbosity": "basic"}},
        "service": {"pipelines": {
            "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["debug"]},
        }},
    }


def write(path: Path, config) -> Path:
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
    return path


def assert_valid(proc, *files):
    assert proc.returncode == 0, (
        f"validate of {[str(f) for f in files]} should succeed; exit {proc.returncode}\n"
        f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    out = proc.stdout.lower()
    assert re.search(r"\bvalid\b", out) and "invalid" not in out, \
        f"expected a success line on stdout, got: {proc.stdout!r}"


def assert_invalid(proc, file: Path, *needles: str):
    """Non-zero exit; stderr names `file` and every needle (the dotted key path first)."""
    assert proc.returncode != 0, f"validate should fail; stdout: {proc.stdout}\nstderr: {proc.stderr}"
    err = proc.stderr
    assert str(file) in err, f"stderr should name the file {file}:\n{err}"
    for n in needles:
        assert n in err, f"stderr should mention {n!r}:\n{err}"
    return err


def grpc_export(addr: str, req: ExportTraceServiceRequest, timeout=30):
    """Sends with the raw gRPC stub; returns None when accepted, else the grpc.StatusCode."""
    with grpc.insecure_channel(addr) as ch:
        try:
            resp = TraceServiceStub(ch).Export(req, timeout=timeout)
        except grpc.RpcError as e:
            return e.code()
    assert not resp.HasField("partial_success"), f"unexpected partial success: {resp}"
    return None


def unique_request(n: int, prefix: str, service: str):
    spans = [make_span(f"{prefix}-{i}", attributes={"i": i}) for i in range(n)]
    return make_request(spans, service=service), spans


def has_sample(c, name: str, **labels) -> bool:
    for key in c.metrics():
        n, _, rest = key.partition("{")
        if n == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return True
    return False


def otlp_grpc_receiver(port: int, http_port: int | None = None) -> dict:
    protocols = {"grpc": {"endpoint": f"127.0.0.1:{port}"}}
    if http_port is not None:
        protocols["http"] = {"endpoint": f"127.0.0.1:{http_port}"}
    return {"otlp": {"protocols": protocols}}


# ---------------------------------------------------------------- 1. validate

def test_validate_good_config(binary, tmp_path):
    f = write(tmp_path / "good.yaml", good_config())
    assert_valid(run_validate(binary, f), f)


def test_validate_seed_collector_config(binary, tmp_path):
    """The seed's OpenTelemetryCollector config (jaeger+otlp -> logging+otlp, otlp ->
    prometheusremotewrite) is a valid configuration."""
    f = write(tmp_path / "seed.yaml", seed_collector_config())
    assert_valid(run_validate(binary, f), f)


def _case_unknown_receiver():
    c = good_config()
    c["receivers"]["otlq"] = {"protocols": {"grpc": None}}
    c["service"]["pipelines"]["traces"]["receivers"] = ["otlq"]
    return c, ["receivers.otlq", "unknown"]


def _case_not_yet():
    c = good_config()
    c["receivers"]["kafka"] = {"brokers": ["localhost:9092"], "topic": "otlp_spans"}
    c["service"]["pipelines"]["traces"]["receivers"] = ["otlp", "kafka"]
    return c, ["receivers.kafka", "not supported"]


def _case_undefined_exporter():
    c = good_config()
    c["service"]["pipelines"]["traces"]["exporters"] = ["otlp/missing"]
    return c, ["service.pipelines.traces.exporters[0]", "otlp/missing"]


def _case_wrong_signal():
    c = good_config()
    c["receivers"]["jaeger"] = {"protocols": {"grpc": {"endpoint": "127.0.0.1:14250"}}}
    c["service"]["pipelines"]["metrics"] = {"receivers": ["jaeger"], "exporters": ["debug"]}
    return c, ["service.pipelines.metrics.receivers[0]", "jaeger", "metrics"]


def _case_bad_endpoint():
    c = good_config()
    c["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = "127.0.0.1:99999"
    return c, ["receivers.otlp.protocols.grpc.endpoint", "99999"]


def _case_unknown_component_key():
    c = good_config()
    c["processors"]["batch"]["send_batch_sise"] = 100
    return c, ["processors.batch.send_batch_sise"]


def _case_bad_duration():
    c = good_config()
    c["processors"]["batch"]["timeout"] = "5 parsecs"
    return c, ["processors.batch.timeout", "parsecs"]


def _case_missing_service():
    c = good_config()
    del c["service"]
    return c, ["service"]


def _case_unknown_top_level():
    c = good_config()
    c["recievers"] = {"otlp": None}
    return c, ["recievers"]


def _case_connector_one_side():
    c = good_config()
    c["connectors"] = {"forward": {}}
    c["service"]["pipelines"]["traces"]["exporters"] = ["debug", "forward"]
    return c, ["connectors.forward"]


INVALID_CASES = {
    "unknown_receiver_type": _case_unknown_receiver,
    "collector_component_not_in_osprey": _case_not_yet,
    "pipeline_references_undefined_exporter": _case_undefined_exporter,
    "jaeger_receiver_in_metrics_pipeline": _case_wrong_signal,
    "bad_endpoint": _case_bad_endpoint,
    "unknown_key_in_component": _case_unknown_component_key,
    "bad_duration": _case_bad_duration,
    "missing_service": _case_missing_service,
    "unknown_top_level_key": _case_unknown_top_level,
    "connector_used_on_one_side_only": _case_connector_one_side,
}


@pytest.mark.parametrize("case", list(INVALID_CASES))
def test_validate_rejects(binary, tmp_path, case):
    config, needles = INVALID_CASES[case]()
    f = write(tmp_path / f"{case}.yaml", config)
    assert_invalid(run_validate(binary, f), f, *needles)


def test_validate_reports_the_yaml_line(binary, tmp_path):
    text = (
        "receivers:\n"                       # 1
        "  otlp:\n"                          # 2
        "    protocols:\n"                   # 3
        "      grpc:\n"                      # 4
        "        endpoint: 127.0.0.1:4317\n"  # 5
        "exporters:\n"                       # 6
        "  debug: verbosity: basic\n"        # 7  <- a mapping value where none is allowed
        "service:\n"                         # 8
        "  pipelines:\n"                     # 9
        "    traces: {receivers: [otlp], exporters: [debug]}\n"
    )
    f = write(tmp_path / "broken.yaml", text)
    err = assert_invalid(run_validate(binary, f), f, "line 7")
    assert "yaml" in err.lower(), err


def test_validate_merges_config_files_later_wins(binary, tmp_path):
    base = good_config()
    base["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = "127.0.0.1:99999"  # invalid
    fix = {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}}}}}
    fb, ff = write(tmp_path / "base.yaml", base), write(tmp_path / "fix.yaml", fix)
    # The second file overrides the bad endpoint: valid.
    assert_valid(run_validate(binary, fb, ff), fb, ff)
    # The other way round the bad endpoint wins, and the error names the file it came from.
    err = assert_invalid(run_validate(binary, ff, fb), fb,
                         "receivers.otlp.protocols.grpc.endpoint", "99999")
    assert str(ff) not in err, f"the error should name base.yaml only:\n{err}"


def test_validate_error_in_second_file_names_it(binary, tmp_path):
    fb = write(tmp_path / "base.yaml", good_config())
    fs = write(tmp_path / "second.yaml", {"processors": {"batch": {"timeout": "5 parsecs"}}})
    assert_valid(run_validate(binary, fb), fb)
    err = assert_invalid(run_validate(binary, fb, fs), fs, "processors.batch.timeout")
    assert str(fb) not in err, f"the error should name second.yaml, not base.yaml:\n{err}"


def test_validate_expands_env_vars(binary, tmp_path):
    c = good_config()
    c["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = "127.0.0.1:${env:E2E_OTLP_GRPC_PORT}"
    c["processors"]["batch"]["timeout"] = "${env:E2E_SURELY_UNSET_TIMEOUT:-2s}"
    f = write(tmp_path / "env.yaml", c)
    env = {"E2E_OTLP_GRPC_PORT": "4317"}
    assert "E2E_SURELY_UNSET_TIMEOUT" not in os.environ
    assert_valid(run_validate(binary, f, env=env), f)
    # The variable's value is what gets validated.
    assert_invalid(run_validate(binary, f, env={"E2E_OTLP_GRPC_PORT": "99999"}), f,
                   "receivers.otlp.protocols.grpc.endpoint", "99999")
    # A default applies when the variable is unset: a bad default is what gets reported.
    c["processors"]["batch"]["timeout"] = "${env:E2E_SURELY_UNSET_TIMEOUT:-7 parsecs}"
    f2 = write(tmp_path / "env-default.yaml", c)
    assert_invalid(run_validate(binary, f2, env=env), f2, "processors.batch.timeout", "parsecs")
    # ... and a set variable wins over the default.
    assert_valid(run_validate(binary, f2, env={**env, "E2E_SURELY_UNSET_TIMEOUT": "3s"}), f2)


# ---------------------------------------------------------------- 2. running: health_check, SIGTERM

def test_health_check_and_sigterm(make_collector):
    hport = free_port()
    c = make_collector({
        "receivers": otlp_grpc_receiver(free_port()),
        "exporters": {"debug": {"verbosity": "basic"}},
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{hport}"}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["debug"]}},
        },
    })
    url = f"http://127.0.0.1:{hport}/"
    r = wait_until(lambda: (r := requests.get(url, timeout=5)).status_code == 200 and r,
                   timeout=30, what="health_check 200")
    body = r.json()
    assert body["status"] == "Server available", body
    assert c.stop() == 0, f"SIGTERM should stop the collector cleanly:\n{c.log_tail()}"
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)


# ---------------------------------------------------------------- 3. backpressure: full queue

def test_full_sending_queue_refuses_with_retryable_error(make_collector):
    grpc_port, http_port, dead = free_port(), free_port(), free_port()
    c = make_collector({
        "receivers": otlp_grpc_receiver(grpc_port, http_port),
        "exporters": {"otlp": {
            "endpoint": f"127.0.0.1:{dead}",  # nothing listens there
            "tls": {"insecure": True},
            "sending_queue": {"enabled": True, "queue_size": 2, "num_consumers": 1},
            "retry_on_failure": {"enabled": True, "initial_interval": "120s",
                                 "max_interval": "300s", "max_elapsed_time": 0},
        }},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp"]}}},
    })
    addr = f"127.0.0.1:{grpc_port}"
    k = 3  # spans per request
    qs = dict(exporter="otlp")

    # Request 1 is queued, then taken by the only consumer, which stays stuck retrying. The
    # acknowledgement comes after the queue size was updated, so a 0 seen afterwards means
    # the consumer took it.
    assert grpc_export(addr, unique_request(k, "bp-1", "backpressure")[0]) is None
    wait_until(lambda: has_sample(c, "otelcol_exporter_queue_size", **qs)
               and c.metric("otelcol_exporter_queue_size", **qs) == 0,
               timeout=30, what="the queue consumer to take request 1")
    # Requests 2 and 3 fill the queue (capacity 2); request 4 is refused, retryably.
    assert grpc_export(addr, unique_request(k, "bp-2", "backpressure")[0]) is None
    assert grpc_export(addr, unique_request(k, "bp-3", "backpressure")[0]) is None
    code = grpc_export(addr, unique_request(k, "bp-4", "backpressure")[0])
    assert code == grpc.StatusCode.UNAVAILABLE, f"a full queue should answer UNAVAILABLE, got {code}"
    # Over OTLP/HTTP: 503 with Retry-After.
    r = post_traces(f"http://127.0.0.1:{http_port}", unique_request(k, "bp-5", "backpressure")[0])
    assert r.status_code == 503, f"HTTP {r.status_code}: {r.content[:300]!r}"
    retry_after = r.headers.get("Retry-After")
    assert retry_after is not None and retry_after.strip().isdigit(), dict(r.headers)

    m = lambda name, **kw: c.metric(name, **kw)  # noqa: E731
    # Request 3 filled the queue, so requests 4 and 5 were refused before their bodies were
    # read: counted as requests, since their spans were never seen.
    assert m("osprey_receiver_refused_unread_requests_total", receiver="otlp") == 2
    assert m("otelcol_exporter_enqueue_failed_spans_total", **qs) == 0
    assert m("otelcol_exporter_queue_size", **qs) == 2
    assert m("otelcol_exporter_queue_capacity", **qs) == 2
    assert m("otelcol_exporter_sent_spans_total", **qs) == 0
    assert m("otelcol_receiver_accepted_spans_total", receiver="otlp") == 3 * k
    assert m("otelcol_receiver_refused_spans_total", receiver="otlp") == 0


# ---------------------------------------------------------------- 4. persistent queue, kill -9

def test_persistent_queue_survives_kill9(make_server, make_collector, tmp_path):
    target = make_server(start=False)  # its ports are known; nothing listens yet
    storage = tmp_path / "file_storage"
    storage.mkdir()
    grpc_port = free_port()
    c = make_collector({
        "receivers": otlp_grpc_receiver(grpc_port),
        "exporters": {"otlp": {
            "endpoint": target.grpc,
            "tls": {"insecure": True},
            "sending_queue": {"enabled": True, "storage": "file_storage"},
            "retry_on_failure": {"enabled": True, "initial_interval": "500ms",
                                 "max_interval": "1s", "max_elapsed_time": 0},
        }},
        "extensions": {"file_storage": {"directory": str(storage)}},
        "service": {
            "extensions": ["file_storage"],
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp"]}},
        },
    })
    service = f"persist-{uuid.uuid4().hex[:8]}"
    addr = f"127.0.0.1:{grpc_port}"
    sent: dict[str, str] = {}
    for r in range(6):
        req, spans = unique_request(5, f"{service}-r{r}", service)
        assert grpc_export(addr, req) is None, f"request {r} should be acknowledged"
        sent.update({s.span_id.hex(): s.name for s in spans})
    n = len(sent)
    assert n == 30

    files = [p for p in storage.rglob("*") if p.is_file()]
    assert files and sum(p.stat().st_size for p in files) > 0, \
        f"the persistent queue should be on disk under {storage}: {files}"
    assert c.metric("otelcol_exporter_sent_spans_total", exporter="otlp") == 0

    c.kill9()
    target.start()
    c.start()

    def arrived():
        rows = target.rows(f"select span_id, span_name from spans where service_name = '{service}'")
        got = {r["span_id"]: r["span_name"] for r in rows}
        return len(got) == n and got
    got = wait_until(arrived, timeout=90, interval=1, what=f"{n} spans in osprey up")
    assert got == sent
    # The restarted collector sent every span exactly once from its disk queue.
    wait_until(lambda: c.metric("otelcol_exporter_sent_spans_total", exporter="otlp") == n,
               timeout=30, what=f"otelcol_exporter_sent_spans_total == {n}")
    assert c.metric("otelcol_exporter_send_failed_spans_total", exporter="otlp") == 0


# ---------------------------------------------------------------- 5. memory_limiter refuses

def test_memory_limiter_refuses_above_limit(make_collector, tmp_path):
    grpc_port, http_port = free_port(), free_port()
    out = tmp_path / "ml-out.jsonl"
    c = make_collector({
        "receivers": otlp_grpc_receiver(grpc_port, http_port),
        "processors": {"memory_limiter": {"check_interval": "100ms", "limit_mib": 1}},
        "exporters": {"file": {"path": str(out)}},
        "service": {"pipelines": {"traces": {
            "receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["file"]}}},
    })
    addr = f"127.0.0.1:{grpc_port}"
    k = 4
    for i in range(3):
        code = grpc_export(addr, unique_request(k, f"ml-{i}", "memlimit")[0])
        assert code == grpc.StatusCode.UNAVAILABLE, \
            f"request {i} above the memory limit should be refused with UNAVAILABLE, got {code}"
    r = post_traces(f"http://127.0.0.1:{http_port}", unique_request(k, "ml-http", "memlimit")[0])
    assert r.status_code == 503, f"HTTP {r.status_code}: {r.content[:300]!r}"

    # Refused before their bodies were read: counted as requests, their spans never seen.
    assert c.metric("osprey_receiver_refused_unread_requests_total", receiver="otlp") == 4
    assert c.metric("otelcol_receiver_refused_spans_total", receiver="otlp") == 0
    assert c.metric("otelcol_receiver_accepted_spans_total", receiver="otlp") == 0
    assert c.metric("otelcol_exporter_sent_spans_total", exporter="file") == 0
    assert not out.exists() or out.read_text().strip() == "", out.read_text()[:500]


# ---------------------------------------------------------------- 6. batch split -> file exporter

def _hex_to_b64(h: str) -> str:
    return base64.b64encode(bytes.fromhex(h)).decode()


def parse_otlp_json_line(line: str) -> ExportTraceServiceRequest:
    """One OTLP/JSON ExportTraceServiceRequest, checked against the OTLP/JSON rules, then
    parsed strictly (unknown fields fail) into the protobuf message."""
    obj = json.loads(line)
    assert set(obj) == {"resourceSpans"}, f"unexpected top-level keys: {list(obj)}"
    for rs in obj["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                assert HEX32.match(sp["traceId"]), f"traceId not 32 hex digits: {sp['traceId']!r}"
                assert HEX16.match(sp["spanId"]), f"spanId not 16 hex digits: {sp['spanId']!r}"
                sp["traceId"], sp["spanId"] = _hex_to_b64(sp["traceId"]), _hex_to_b64(sp["spanId"])
                if sp.get("parentSpanId"):
                    assert HEX16.match(sp["parentSpanId"]), sp["parentSpanId"]
                    sp["parentSpanId"] = _hex_to_b64(sp["parentSpanId"])
                assert isinstance(sp.get("kind"), int), \
                    f"enum `kind` must be an integer in OTLP/JSON: {sp.get('kind')!r}"
                for ln in sp.get("links", []):
                    ln["traceId"], ln["spanId"] = _hex_to_b64(ln["traceId"]), _hex_to_b64(ln["spanId"])
    msg = ExportTraceServiceRequest()
    json_format.ParseDict(obj, msg)
    return msg


def test_batch_splits_at_max_size_into_file_exporter(make_collector, tmp_path):
    grpc_port = free_port()
    out = tmp_path / "batches.jsonl"
    c = make_collector({
        "receivers": otlp_grpc_receiver(grpc_port),
        "processors": {"batch": {"send_batch_size": 10, "send_batch_max_size": 10,
                                 "timeout": "1s"}},
        "exporters": {"file": {"path": str(out)}},
        "service": {"pipelines": {"traces": {
            "receivers": ["otlp"], "processors": ["batch"], "exporters": ["file"]}}},
    })
    spans = [make_span(f"batch-{i:02d}", kind=Span.SPAN_KIND_SERVER, attributes={"i": i})
             for i in range(25)]
    req = make_request(spans, service="batcher", resource_attrs={"host.name": "h1"})
    assert grpc_export(f"127.0.0.1:{grpc_port}", req, timeout=60) is None

    def lines():
        if not out.exists():
            return None
        ls = [ln for ln in out.read_text().splitlines() if ln.strip()]
        return len(ls) >= 3 and ls
    got_lines = wait_until(lines, timeout=30, what="3 lines in the file exporter's output")
    msgs = [parse_otlp_json_line(ln) for ln in got_lines]
    counts = [sum(len(ss.spans) for rs in m.resource_spans for ss in rs.scope_spans) for m in msgs]
    # The exporter's queue has several consumers: batches may be written in any order.
    assert sorted(counts) == [5, 10, 10], counts

    want = {s.span_id: s for s in spans}
    seen = []
    for m in msgs:
        for rs in m.resource_spans:
            assert attr_map(rs.resource.attributes) == {"service.name": "batcher", "host.name": "h1"}
            for ss in rs.scope_spans:
                assert (ss.scope.name, ss.scope.version) == ("e2e.scope", "0.1")
                for s in ss.spans:
                    assert s == want[s.span_id], f"span {s.span_id.hex()} changed:\n{s}\nvs\n{want[s.span_id]}"
                    seen.append(s.span_id)
    assert sorted(seen) == sorted(want), "every span exactly once across the batches"
    assert c.metric("otelcol_exporter_sent_spans_total", exporter="file") == 25
