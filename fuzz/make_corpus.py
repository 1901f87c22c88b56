"""Writes the seed corpora under fuzz/corpus/ (see docs/fuzzing.md).

Needs the test virtualenv (scripts/install-test-deps.sh): opentelemetry-proto for OTLP protobuf,
`thrift` and the jaeger.thrift classes shipped with opentelemetry-exporter-jaeger-thrift.
Zipkin JSON seeds are the fixtures of crates/osprey-receivers/src/zipkin/fixtures.rs; the Zipkin
protobuf and OTLP/JSON seeds are written by hand per zipkin.proto and the OTLP/JSON spec.
corpus/otlp_skim/loadgen.bin is one request body captured from `osprey loadgen --protocol http`.

    .venv/bin/python fuzz/make_corpus.py
"""
import json, os, re, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, 'fuzz', 'corpus')

# --- otlp_skim: OTLP protobuf requests.
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.proto.common.v1.common_pb2 import KeyValue, AnyValue, ArrayValue, KeyValueList
out = os.path.join(BASE, 'otlp_skim')
os.makedirs(out, exist_ok=True)
def req(spans, res_attrs=()):
    r = ExportTraceServiceRequest()
    rs = r.resource_spans.add()
    for k, v in res_attrs:
        rs.resource.attributes.add(key=k, value=AnyValue(string_value=v))
    rs.schema_url = 'https://opentelemetry.io/schemas/1.21.0'
    ss = rs.scope_spans.add()
    ss.scope.name = 'fuzz-seed'; ss.scope.version = '1.0'
    ss.spans.extend(spans)
    return r
def span(i, **kw):
    s = Span(trace_id=bytes([7]*16), span_id=bytes([i+1]*8), name=f'op{i}', kind=2,
             start_time_unix_nano=1_700_000_000_000_000_000 + i, end_time_unix_nano=1_700_000_000_000_001_000 + i)
    for k, v in kw.items():
        (getattr(s, k).extend(v) if isinstance(v, list) else getattr(s, k).CopyFrom(v) if k == "status" else setattr(s, k, v))
    return s
seeds = {
  'empty': ExportTraceServiceRequest(),
  'one-span': req([span(0)], [('service.name', 'checkout')]),
  'attrs': req([span(1, parent_span_id=bytes([1]*8), attributes=[
      KeyValue(key='http.method', value=AnyValue(string_value='GET')),
      KeyValue(key='n', value=AnyValue(int_value=-3)),
      KeyValue(key='d', value=AnyValue(double_value=1.5)),
      KeyValue(key='b', value=AnyValue(bool_value=True)),
      KeyValue(key='raw', value=AnyValue(bytes_value=b'\x00\xff')),
      KeyValue(key='arr', value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value='x')]))),
      KeyValue(key='kv', value=AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key='in', value=AnyValue(bool_value=False))]))),
  ])], [('service.name', 'api')]),
  'events-links-status': req([span(2, events=[Span.Event(time_unix_nano=1_700_000_000_000_000_500, name='exception',
        attributes=[KeyValue(key='exception.message', value=AnyValue(string_value='boom'))])],
      links=[Span.Link(trace_id=bytes([9]*16), span_id=bytes([3]*8), trace_state='a=b', flags=1)],
      status=Status(code=2, message='failed'), trace_state='vendor=x', flags=0x301)]),
  'dirty': req([span(3, trace_id=b'\x00'*16), span(4, end_time_unix_nano=0)]),
}
for name, r in seeds.items():
    open(f'{out}/{name}.bin', 'wb').write(r.SerializeToString())

def put(target, name, data):
    os.makedirs(f'{BASE}/{target}', exist_ok=True)
    open(f'{BASE}/{target}/{name}', 'wb').write(data if isinstance(data, bytes) else data.encode())

# --- otlp_json: OTLP/JSON per the spec (hex ids, int64 as strings or numbers, integer enums).
trace = '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"scope":{"name":"manual","version":"1.2"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173","name":"GET /cart","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,"attributes":[{"key":"i","value":{"intValue":"42"}},{"key":"d","value":{"doubleValue":1.5}},{"key":"b","value":{"boolValue":true}},{"key":"a","value":{"arrayValue":{"values":[{"stringValue":"x"}]}}},{"key":"k","value":{"kvlistValue":{"values":[{"key":"n","value":{"intValue":7}}]}}},{"key":"y","value":{"bytesValue":"aGk="}}],"events":[{"timeUnixNano":"1544712660500000000","name":"retry","attributes":[{"key":"attempt","value":{"intValue":2}}]}],"links":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","traceState":"a=b"}],"status":{"code":2,"message":"boom"},"flags":257}]}],"schemaUrl":"https://opentelemetry.io/schemas/1.21.0"}]}'
json.loads(trace)
put('otlp_json', 'trace.json', trace)
put('otlp_json', 'empty.json', '{}')
put('otlp_json', 'empty-groups.json', '{"resourceSpans":[{"scopeSpans":[{"spans":[]}]}]}')
metrics = '{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeMetrics":[{"metrics":[{"name":"requests","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"asInt":"5","timeUnixNano":"1544712660000000000","attributes":[{"key":"route","value":{"stringValue":"/"}}]}]}},{"name":"latency","histogram":{"aggregationTemporality":2,"dataPoints":[{"count":"3","sum":1.5,"bucketCounts":["1","2"],"explicitBounds":[1.0],"timeUnixNano":"1544712660000000000"}]}},{"name":"temp","gauge":{"dataPoints":[{"asDouble":21.5,"timeUnixNano":"1544712660000000000"}]}}]}]}]}'
json.loads(metrics)
put('otlp_json', 'metrics.json', metrics)
logs = '{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1544712660000000000","severityNumber":9,"severityText":"INFO","body":{"stringValue":"hello"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}'
json.loads(logs)
put('otlp_json', 'logs.json', logs)

# --- zipkin: the fixtures of crates/osprey-receivers/src/zipkin/fixtures.rs, and a ListOfSpans.
src = open(os.path.join(ROOT, 'crates/osprey-receivers/src/zipkin/fixtures.rs')).read()
for name in ['V2_OTEL', 'V1_RPC']:
    m = re.search(r'pub const ' + name + r': &str = r#"(.*?)"#;', src, re.S)
    json.loads(m.group(1))
    put('zipkin', name.lower() + '.json', m.group(1))
put('zipkin', 'v2-minimal.json', '[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","name":"x","timestamp":1581452772000000,"duration":7,"kind":"SERVER","localEndpoint":{"serviceName":"s","ipv4":"127.0.0.1","port":80},"shared":true,"debug":false}]')

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f; n >>= 7
        if n: out.append(b | 0x80)
        else: out.append(b); return bytes(out)
def key(f, wt): return varint(f << 3 | wt)
def ld(f, b): return key(f, 2) + varint(len(b)) + b
def vi(f, n): return key(f, 0) + varint(n)
def f64(f, n): return key(f, 1) + struct.pack('<Q', n)
# zipkin.proto: Span{1 trace_id,2 parent_id,3 id,4 kind,5 name,6 timestamp(fixed64),7 duration,
# 8 local_endpoint,9 remote_endpoint,10 annotations,11 tags(map),12 debug,13 shared};
# Endpoint{1 service_name,2 ipv4,3 ipv6,4 port}; Annotation{1 timestamp(fixed64),2 value}.
ep = ld(1, b'frontend') + ld(2, bytes([10, 0, 0, 1])) + vi(4, 8080)
rep = ld(1, b'backend') + ld(3, bytes(15) + b'\x01')
ann = f64(1, 1581452772000500) + ld(2, b'cache miss')
tag = ld(1, b'http.method') + ld(2, b'GET')
span = (ld(1, bytes(range(1, 17))) + ld(2, bytes([9]*8)) + ld(3, bytes(range(1, 9))) + vi(4, 1)
        + ld(5, b'HTTP GET') + f64(6, 1581452772000000) + vi(7, 1000) + ld(8, ep) + ld(9, rep)
        + ld(10, ann) + ld(11, tag) + ld(11, ld(1, b'otel.status_code') + ld(2, b'ERROR')) + vi(13, 1))
span2 = ld(1, bytes(range(1, 9))) + ld(3, bytes([5]*8)) + ld(5, b'root') + f64(6, 1581452772000000)
put('zipkin', 'v2.pb', ld(1, span) + ld(1, span2))

# --- jaeger_thrift: jaeger.thrift Batch and agent emitBatch, generated by the `thrift` package
# and the jaeger classes shipped with opentelemetry-exporter-jaeger-thrift.
from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.transport import TTransport
# The generated modules only: the exporter package's own __init__ needs an older SDK.
sys.path[:0] = [g for g in (os.path.join(p, 'opentelemetry/exporter/jaeger/thrift/gen') for p in sys.path) if os.path.isdir(g)]
from jaeger import ttypes as J
from agent import Agent
T = J.TagType
def batch(n_spans, rich):
    proc = J.Process(serviceName='frontend', tags=[J.Tag(key='hostname', vType=T.STRING, vStr='h1'),
                                                   J.Tag(key='jaeger.version', vType=T.STRING, vStr='Go-2.30')])
    spans = []
    for i in range(n_spans):
        tags = [J.Tag(key='span.kind', vType=T.STRING, vStr='server')]
        refs, logs = None, None
        if rich:
            tags += [J.Tag(key='error', vType=T.BOOL, vBool=True), J.Tag(key='n', vType=T.LONG, vLong=-5),
                     J.Tag(key='d', vType=T.DOUBLE, vDouble=0.25), J.Tag(key='raw', vType=T.BINARY, vBinary=b'\x00\x01'),
                     J.Tag(key='http.status_code', vType=T.LONG, vLong=503)]
            refs = [J.SpanRef(refType=J.SpanRefType.CHILD_OF, traceIdLow=2, traceIdHigh=1, spanId=0xBB),
                    J.SpanRef(refType=J.SpanRefType.FOLLOWS_FROM, traceIdLow=4, traceIdHigh=3, spanId=0xCC)]
            logs = [J.Log(timestamp=1700000000123457, fields=[J.Tag(key='event', vType=T.STRING, vStr='retry')])]
        spans.append(J.Span(traceIdLow=2, traceIdHigh=1, spanId=0xAA + i, parentSpanId=0, operationName=f'GET /{i}',
                            references=refs, flags=1, startTime=1700000000123456, duration=250, tags=tags, logs=logs))
    return J.Batch(process=proc, spans=spans)
def ser(obj, proto):
    t = TTransport.TMemoryBuffer(); obj.write(proto(t)); return t.getvalue()
def agent(b, proto):
    t = TTransport.TMemoryBuffer(); p = proto(t)
    c = Agent.Client(p); c._oprot = p
    c.send_emitBatch(b)
    return t.getvalue()
for wname, proto in [('compact', TCompactProtocol.TCompactProtocol), ('binary', TBinaryProtocol.TBinaryProtocol)]:
    put('jaeger_thrift', f'batch-{wname}.thrift', ser(batch(2, True), proto))
    put('jaeger_thrift', f'batch-small-{wname}.thrift', ser(batch(1, False), proto))
    put('jaeger_thrift', f'agent-emitbatch-{wname}.thrift', agent(batch(1, True), proto))
# A compact struct whose field id 32767 is followed by a delta of 1: the `thrift` crate's id
# arithmetic overflows (a panic in fuzz builds, which decode_batch turns into an error).
put('jaeger_thrift', 'field-id-overflow-compact.thrift', b'\x05\xfe\xff\x03\x00\x15\x00\x00')
