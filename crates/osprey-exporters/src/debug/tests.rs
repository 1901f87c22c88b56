//! Debug exporter output, checked against the layout of the Collector's testdata
//! (`two_spans.out`, `one_record.out`, `metrics_with_all_types.out`).

use super::*;
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, InstrumentationScope, KeyValue};
use osprey_model::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use osprey_model::otlp::metrics::v1::{
    metric::Data, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics,
};
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::{
    span::Event, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use osprey_model::TraceRequest;
use osprey_pipeline::{LogsRequest, MetricsRequest};

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv(
            "resource-attr",
            Value::StringValue("resource-attr-val-1".into()),
        )],
        ..Default::default()
    })
}

const START: u64 = 1_581_452_772_000_000_321; // 2020-02-11 20:26:12.000000321
const END: u64 = 1_581_452_773_000_000_789;
const EVENT: u64 = 1_581_452_773_000_000_123;

fn traces() -> TraceRequest {
    let span_a = Span {
        trace_id: (1..=16).collect(),
        span_id: (0x11..=0x18).collect(),
        name: "operationA".into(),
        trace_state: "ot=th:0".into(),
        start_time_unix_nano: START,
        end_time_unix_nano: END,
        dropped_attributes_count: 1,
        events: vec![Event {
            time_unix_nano: EVENT,
            name: "event-with-attr".into(),
            attributes: vec![kv(
                "span-event-attr",
                Value::StringValue("span-event-attr-val".into()),
            )],
            dropped_attributes_count: 2,
        }],
        dropped_events_count: 1,
        status: Some(Status {
            code: StatusCode::Error as i32,
            message: "status-cancelled".into(),
        }),
        ..Default::default()
    };
    let span_b = Span {
        name: "operationB".into(),
        kind: 2,
        start_time_unix_nano: START,
        end_time_unix_nano: END,
        attributes: vec![kv("http.status", Value::IntValue(200))],
        ..Default::default()
    };
    TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![span_a, span_b],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn detailed_traces_match_the_collector_layout() {
    let expected = "\
ResourceSpans #0
Resource SchemaURL: 
Resource attributes:
     -> resource-attr: Str(resource-attr-val-1)
ScopeSpans #0
ScopeSpans SchemaURL: 
InstrumentationScope  
Span #0
    Trace ID       : 0102030405060708090a0b0c0d0e0f10
    Parent ID      : 
    ID             : 1112131415161718
    Name           : operationA
    Kind           : Unspecified
    TraceState     : ot=th:0
    Start time     : 2020-02-11 20:26:12.000000321 +0000 UTC
    End time       : 2020-02-11 20:26:13.000000789 +0000 UTC
    Status code    : Error
    Status message : status-cancelled
    DroppedAttributesCount: 1
    DroppedEventsCount: 1
    DroppedLinksCount: 0
Events:
SpanEvent #0
     -> Name: event-with-attr
     -> Timestamp: 2020-02-11 20:26:13.000000123 +0000 UTC
     -> DroppedAttributesCount: 2
     -> Attributes::
          -> span-event-attr: Str(span-event-attr-val)
Span #1
    Trace ID       : 
    Parent ID      : 
    ID             : 
    Name           : operationB
    Kind           : Server
    Start time     : 2020-02-11 20:26:12.000000321 +0000 UTC
    End time       : 2020-02-11 20:26:13.000000789 +0000 UTC
    Status code    : Unset
    Status message : 
    DroppedAttributesCount: 0
    DroppedEventsCount: 0
    DroppedLinksCount: 0
Attributes:
     -> http.status: Int(200)
";
    assert_eq!(detailed::traces(&traces()), expected);
}

#[test]
fn detailed_log_record_matches_the_collector_layout() {
    let rec = LogRecord {
        time_unix_nano: END,
        severity_text: "Info".into(),
        severity_number: 9,
        body: Some(AnyValue {
            value: Some(Value::StringValue("This is a log message".into())),
        }),
        attributes: vec![
            kv("app", Value::StringValue("server".into())),
            kv("instance_num", Value::IntValue(1)),
        ],
        trace_id: vec![8, 4, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        span_id: vec![1, 2, 4, 8, 0, 0, 0, 0],
        ..Default::default()
    };
    let r = LogsRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![rec],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let expected = "\
ResourceLog #0
Resource SchemaURL: 
Resource attributes:
     -> resource-attr: Str(resource-attr-val-1)
ScopeLogs #0
ScopeLogs SchemaURL: 
InstrumentationScope  
LogRecord #0
ObservedTimestamp: 1970-01-01 00:00:00 +0000 UTC
Timestamp: 2020-02-11 20:26:13.000000789 +0000 UTC
SeverityText: Info
SeverityNumber: Info(9)
Body: Str(This is a log message)
Attributes:
     -> app: Str(server)
     -> instance_num: Int(1)
Trace ID: 08040201000000000000000000000000
Span ID: 0102040800000000
Flags: 0
";
    assert_eq!(detailed::logs(&r), expected);
    assert_eq!(
        normal::logs(&r).lines().nth(2),
        Some("This is a log message app=server instance_num=1")
    );
}

fn metrics() -> MetricsRequest {
    let gauge = Metric {
        name: "gauge-int".into(),
        unit: "1".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes: vec![kv("label-1", Value::StringValue("label-value-1".into()))],
                start_time_unix_nano: START,
                time_unix_nano: END,
                value: Some(number_data_point::Value::AsInt(123)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let histogram = Metric {
        name: "histogram".into(),
        unit: "1".into(),
        data: Some(Data::Histogram(Histogram {
            aggregation_temporality: 2,
            data_points: vec![HistogramDataPoint {
                start_time_unix_nano: START,
                time_unix_nano: END,
                count: 1,
                sum: Some(15.0),
                bucket_counts: vec![0, 1],
                explicit_bounds: vec![1.0],
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    MetricsRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                metrics: vec![gauge, histogram],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn detailed_metrics_match_the_collector_layout() {
    let expected = "\
ResourceMetrics #0
Resource SchemaURL: 
Resource attributes:
     -> resource-attr: Str(resource-attr-val-1)
ScopeMetrics #0
ScopeMetrics SchemaURL: 
InstrumentationScope lib 1.0
Metric #0
Descriptor:
     -> Name: gauge-int
     -> Description: 
     -> Unit: 1
     -> DataType: Gauge
NumberDataPoints #0
Data point attributes:
     -> label-1: Str(label-value-1)
StartTimestamp: 2020-02-11 20:26:12.000000321 +0000 UTC
Timestamp: 2020-02-11 20:26:13.000000789 +0000 UTC
Value: 123
Metric #1
Descriptor:
     -> Name: histogram
     -> Description: 
     -> Unit: 1
     -> DataType: Histogram
     -> AggregationTemporality: Cumulative
HistogramDataPoints #0
StartTimestamp: 2020-02-11 20:26:12.000000321 +0000 UTC
Timestamp: 2020-02-11 20:26:13.000000789 +0000 UTC
Count: 1
Sum: 15.000000
ExplicitBounds #0: 1.000000
Buckets #0, Count: 0
Buckets #1, Count: 1
";
    assert_eq!(detailed::metrics(&metrics()), expected);
}

#[test]
fn normal_output_is_a_line_per_record() {
    let t = normal::traces(&traces());
    let lines: Vec<_> = t.lines().collect();
    assert_eq!(
        lines[0],
        "ResourceTraces #0 resource-attr=resource-attr-val-1"
    );
    assert_eq!(lines[1], "ScopeTraces #0");
    assert_eq!(
        lines[2],
        "operationA 0102030405060708090a0b0c0d0e0f10 1112131415161718"
    );
    assert_eq!(lines[3], "operationB   http.status=200");
    let m = normal::metrics(&metrics());
    let lines: Vec<_> = m.lines().collect();
    assert_eq!(lines[1], "ScopeMetrics #0 lib@1.0");
    assert_eq!(lines[2], "gauge-int{label-1=label-value-1} 123");
    assert_eq!(lines[3], "histogram{} count=1 sum=15 le1=0 1");
}

#[test]
fn summary_lines() {
    let p = Payload::Traces(traces());
    assert_eq!(
        summary_line(&p, false),
        r#"Traces {"resource spans": 1, "spans": 2}"#
    );
    assert_eq!(
        summary_line(&p, true),
        r#"TracesExporter {"resource spans": 1, "spans": 2}"#
    );
    let p = Payload::Metrics(metrics());
    assert_eq!(
        summary_line(&p, false),
        r#"Metrics {"resource metrics": 1, "metrics": 2, "data points": 2}"#
    );
    assert!(render(Verbosity::Basic, &p).is_none());
    assert!(render(Verbosity::Detailed, &p)
        .unwrap()
        .starts_with("ResourceMetrics #0"));
}

#[test]
fn sampler_follows_zap() {
    let t0 = Instant::now();
    let s = Sampler::new(2, 3);
    let passed: Vec<bool> = (0..8).map(|_| s.allow(t0)).collect();
    assert_eq!(passed, [true, true, false, false, true, false, false, true]);
    // A new one-second window starts over.
    assert!(s.allow(t0 + Duration::from_secs(1)));
    let all = Sampler::new(2, 1);
    assert!((0..10).all(|_| all.allow(t0)));
}

#[test]
fn configs() {
    let d: DebugConfig = osprey_pipeline::decode_config(
        &serde_yaml::from_str("verbosity: Detailed\nsampling_initial: 5").unwrap(),
    )
    .unwrap();
    assert_eq!(d.verbosity, Verbosity::Detailed);
    assert_eq!((d.sampling_initial, d.sampling_thereafter), (5, 1));
    assert!(osprey_pipeline::decode_config::<DebugConfig>(
        &serde_yaml::from_str("verbosity: none").unwrap()
    )
    .is_err());
    let bad = DebugConfig {
        use_internal_logger: false,
        output_paths: vec![],
        ..Default::default()
    };
    assert_eq!(bad.validate().unwrap_err().path, "output_paths");
    let l: LoggingConfig =
        osprey_pipeline::decode_config(&serde_yaml::from_str("loglevel: debug").unwrap()).unwrap();
    assert_eq!(l.effective_verbosity().unwrap(), Verbosity::Detailed);
    let l: LoggingConfig = osprey_pipeline::decode_config(
        &serde_yaml::from_str("loglevel: debug\nverbosity: basic").unwrap(),
    )
    .unwrap();
    assert_eq!(l.validate().unwrap_err().path, "loglevel");
}

#[tokio::test]
async fn writes_to_an_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("debug.log");
    let e = DebugExporter::new(DebugConfig {
        verbosity: Verbosity::Normal,
        use_internal_logger: false,
        output_paths: vec![path.to_string_lossy().into()],
        ..Default::default()
    })
    .unwrap();
    e.consume(Batch::traces(traces())).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("Traces {\"resource spans\": 1, \"spans\": 2}\nResourceTraces #0"),
        "{text}"
    );
}
