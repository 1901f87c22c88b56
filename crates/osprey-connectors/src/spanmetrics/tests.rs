//! Tests of the `spanmetrics` config, aggregator and connector task.

use super::*;
use osprey_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use osprey_model::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use osprey_model::otlp::metrics::v1::{metric, number_data_point, Metric, ResourceMetrics};
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn span(name: &str, dur_ns: u64, kind: span::SpanKind, code: status::StatusCode) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + dur_ns,
        status: Some(Status {
            code: code as i32,
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn server(name: &str, dur_ns: u64) -> Span {
    span(
        name,
        dur_ns,
        span::SpanKind::Server,
        status::StatusCode::Unset,
    )
}

fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn config(yaml: &str) -> SpanMetricsConfig {
    SpanMetricsConfig::from_yaml(&serde_yaml::from_str(yaml).unwrap()).unwrap()
}

fn metric<'a>(rm: &'a ResourceMetrics, name: &str) -> &'a Metric {
    rm.scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn attr<'a>(attrs: &'a [KeyValue], k: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.key == k)
        .and_then(|a| match &a.value {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => Some(s.as_str()),
            _ => None,
        })
}

fn sums(m: &Metric) -> Vec<(Vec<KeyValue>, i64, u64)> {
    let Some(metric::Data::Sum(s)) = &m.data else {
        panic!("not a sum")
    };
    assert!(s.is_monotonic);
    s.data_points
        .iter()
        .map(|p| match p.value {
            Some(number_data_point::Value::AsInt(v)) => {
                (p.attributes.clone(), v, p.start_time_unix_nano)
            }
            _ => panic!("not an int"),
        })
        .collect()
}

#[test]
fn defaults_follow_upstream() {
    let c = SpanMetricsConfig::from_yaml(&serde_yaml::Value::Null).unwrap();
    assert_eq!(c.namespace, "traces.span.metrics");
    assert_eq!(c.metrics_flush_interval, std::time::Duration::from_secs(60));
    assert_eq!(c.histogram.unit, Unit::Milliseconds);
    assert_eq!(c.bounds(), DEFAULT_BUCKETS_MS.to_vec());
    assert!(!c.is_delta());
    let s = config("histogram: {unit: s}");
    assert_eq!(s.bounds()[0], 0.002);
    let b = config("histogram: {explicit: {buckets: [100us, 1ms, 2s]}}");
    assert_eq!(b.bounds(), vec![0.1, 1.0, 2000.0]);
}

#[test]
fn config_errors_name_the_key() {
    let bad = |yaml: &str| {
        SpanMetricsConfig::from_yaml(&serde_yaml::from_str(yaml).unwrap()).unwrap_err()
    };
    assert_eq!(bad("dimensions: [{name: span.kind}]").path, "dimensions");
    assert_eq!(
        bad("histogram: {exponential: {max_size: 10}}").path,
        "histogram.exponential"
    );
    assert_eq!(bad("histogram: {unit: h}").path, "histogram.unit");
    assert_eq!(bad("events: {enabled: true}").path, "events.dimensions");
    assert_eq!(
        bad("metrics_flush_interval: 0s").path,
        "metrics_flush_interval"
    );
    assert_eq!(
        bad("histogram: {explicit: {buckets: [2ms, 1ms]}}").path,
        "histogram.explicit.buckets"
    );
    assert!(bad("dimension: []").message.contains("unknown field"));
}

#[test]
fn counts_buckets_and_default_attributes() {
    let mut sm = SpanMetrics::new(&config("")).unwrap();
    let res = vec![kv("service.name", "shop"), kv("host.name", "h1")];
    let mut err = span(
        "GET /",
        3 * MS,
        span::SpanKind::Client,
        status::StatusCode::Error,
    );
    err.end_time_unix_nano = T0 - 5; // end before start: duration 0
    sm.add(
        &request(
            res,
            vec![
                server("/a", MS),
                server("/a", 2 * MS),
                server("/a", 3 * MS),
                server("/a", 20_000 * MS),
                err,
            ],
        ),
        T0,
    );
    let out = sm.flush(T0 + 60_000 * MS);
    assert_eq!(out.resource_metrics.len(), 1);
    let rm = &out.resource_metrics[0];
    assert_eq!(
        attr(&rm.resource.as_ref().unwrap().attributes, "host.name"),
        Some("h1")
    );
    assert_eq!(
        rm.scope_metrics[0].scope.as_ref().unwrap().name,
        "spanmetricsconnector"
    );

    let calls = sums(metric(rm, "traces.span.metrics.calls"));
    assert_eq!(calls.len(), 2);
    let a = calls
        .iter()
        .find(|c| attr(&c.0, "span.name") == Some("/a"))
        .unwrap();
    assert_eq!(a.1, 4);
    assert_eq!(attr(&a.0, "service.name"), Some("shop"));
    assert_eq!(attr(&a.0, "span.kind"), Some("SPAN_KIND_SERVER"));
    assert_eq!(attr(&a.0, "status.code"), Some("STATUS_CODE_UNSET"));
    let e = calls
        .iter()
        .find(|c| attr(&c.0, "span.name") == Some("GET /"))
        .unwrap();
    assert_eq!(attr(&e.0, "span.kind"), Some("SPAN_KIND_CLIENT"));
    assert_eq!(attr(&e.0, "status.code"), Some("STATUS_CODE_ERROR"));

    let d = metric(rm, "traces.span.metrics.duration");
    assert_eq!(d.unit, "ms");
    let Some(metric::Data::Histogram(h)) = &d.data else {
        panic!()
    };
    let p = h
        .data_points
        .iter()
        .find(|p| attr(&p.attributes, "span.name") == Some("/a"))
        .unwrap();
    assert_eq!(p.count, 4);
    assert_eq!(p.sum, Some(20_006.0));
    assert_eq!(p.explicit_bounds, DEFAULT_BUCKETS_MS.to_vec());
    // 1ms and 2ms fall in le=2 (bounds are inclusive upper limits), 3ms in le=4, 20s in +Inf.
    let mut want = vec![0u64; 17];
    want[0] = 2;
    want[1] = 1;
    want[16] = 1;
    assert_eq!(p.bucket_counts, want);
    let z = h
        .data_points
        .iter()
        .find(|p| attr(&p.attributes, "span.name") == Some("GET /"))
        .unwrap();
    assert_eq!((z.count, z.sum, z.bucket_counts[0]), (1, Some(0.0), 1));
}

#[test]
fn dimensions_span_then_resource_then_default() {
    let c = config(
        "dimensions: [{name: region}, {name: http.method, default: GET}, {name: missing}, {name: code, default: 200}]\n\
         exclude_dimensions: [status.code]",
    );
    let mut sm = SpanMetrics::new(&c).unwrap();
    let mut s1 = server("/x", MS);
    s1.attributes = vec![kv("region", "span-eu")];
    let s2 = server("/x", MS);
    sm.add(
        &request(
            vec![kv("service.name", "svc"), kv("region", "res-us")],
            vec![s1, s2],
        ),
        T0,
    );
    let out = sm.flush(T0 + MS);
    let calls = sums(metric(
        &out.resource_metrics[0],
        "traces.span.metrics.calls",
    ));
    assert_eq!(calls.len(), 2);
    let regions: Vec<_> = calls
        .iter()
        .map(|c| attr(&c.0, "region").unwrap())
        .collect();
    assert!(regions.contains(&"span-eu") && regions.contains(&"res-us"));
    for c in &calls {
        assert_eq!(attr(&c.0, "http.method"), Some("GET"));
        assert_eq!(attr(&c.0, "code"), Some("200"));
        assert!(attr(&c.0, "missing").is_none());
        assert!(attr(&c.0, "status.code").is_none());
        assert_eq!(c.1, 1);
    }
}

#[test]
fn cumulative_keeps_start_time_and_delta_resets() {
    let res = vec![kv("service.name", "svc")];
    let mut cum = SpanMetrics::new(&config("")).unwrap();
    cum.add(
        &request(res.clone(), vec![server("/", MS), server("/", MS)]),
        T0,
    );
    let out = cum.flush(T0 + 10);
    let first = sums(metric(
        &out.resource_metrics[0],
        "traces.span.metrics.calls",
    ));
    assert_eq!((first[0].1, first[0].2), (2, T0));
    cum.add(&request(res.clone(), vec![server("/", MS)]), T0 + 20);
    let out = cum.flush(T0 + 30);
    let second = sums(metric(
        &out.resource_metrics[0],
        "traces.span.metrics.calls",
    ));
    assert_eq!((second[0].1, second[0].2), (3, T0));
    // Nothing new: the cumulative value is repeated.
    assert_eq!(
        sums(metric(
            &cum.flush(T0 + 40).resource_metrics[0],
            "traces.span.metrics.calls"
        ))[0]
            .1,
        3
    );

    let mut delta = SpanMetrics::new(&config(
        "aggregation_temporality: AGGREGATION_TEMPORALITY_DELTA",
    ))
    .unwrap();
    delta.add(
        &request(res.clone(), vec![server("/", MS), server("/", MS)]),
        T0,
    );
    let out = delta.flush(T0 + 10);
    let d1 = sums(metric(
        &out.resource_metrics[0],
        "traces.span.metrics.calls",
    ));
    assert_eq!((d1[0].1, d1[0].2), (2, T0));
    assert!(delta.flush(T0 + 15).resource_metrics.is_empty());
    delta.add(&request(res, vec![server("/", MS)]), T0 + 20);
    let out = delta.flush(T0 + 30);
    let d2 = sums(metric(
        &out.resource_metrics[0],
        "traces.span.metrics.calls",
    ));
    assert_eq!((d2[0].1, d2[0].2), (1, T0 + 10));
}

#[test]
fn one_resource_metrics_per_resource_key() {
    let mut sm = SpanMetrics::new(&config("")).unwrap();
    sm.add(
        &request(
            vec![kv("service.name", "a"), kv("pid", "1")],
            vec![server("/", MS)],
        ),
        T0,
    );
    sm.add(
        &request(
            vec![kv("service.name", "a"), kv("pid", "2")],
            vec![server("/", MS)],
        ),
        T0,
    );
    sm.add(
        &request(vec![kv("host.name", "no-service")], vec![server("/", MS)]),
        T0,
    );
    assert_eq!(sm.flush(T0 + 1).resource_metrics.len(), 2);

    let mut keyed =
        SpanMetrics::new(&config("resource_metrics_key_attributes: [service.name]")).unwrap();
    keyed.add(
        &request(
            vec![kv("service.name", "a"), kv("pid", "1")],
            vec![server("/", MS)],
        ),
        T0,
    );
    keyed.add(
        &request(
            vec![kv("service.name", "a"), kv("pid", "2")],
            vec![server("/", MS)],
        ),
        T0,
    );
    let out = keyed.flush(T0 + 1);
    assert_eq!(out.resource_metrics.len(), 1);
    let rm = &out.resource_metrics[0];
    // The first resource seen names the group.
    assert_eq!(
        attr(&rm.resource.as_ref().unwrap().attributes, "pid"),
        Some("1")
    );
    assert_eq!(sums(metric(rm, "traces.span.metrics.calls"))[0].1, 2);
}

#[test]
fn exemplars_events_overflow_and_expiration() {
    let c = config(
        "exemplars: {enabled: true, max_per_data_point: 1}\n\
         events: {enabled: true, dimensions: [{name: exception.type}]}\n\
         aggregation_cardinality_limit: 1\nmetrics_expiration: 1m\nnamespace: ''",
    );
    let mut sm = SpanMetrics::new(&c).unwrap();
    let mut s = server("/a", MS);
    s.events = vec![span::Event {
        name: "exception".into(),
        attributes: vec![kv("exception.type", "IOError")],
        ..Default::default()
    }];
    sm.add(
        &request(
            vec![kv("service.name", "svc")],
            vec![s, server("/a", MS), server("/b", MS)],
        ),
        T0,
    );
    let out = sm.flush(T0 + 5);
    let rm = &out.resource_metrics[0];
    let calls = metric(rm, "calls");
    let Some(metric::Data::Sum(sum)) = &calls.data else {
        panic!()
    };
    assert_eq!(
        sum.data_points.len(),
        2,
        "one regular series and the overflow"
    );
    assert_eq!(sum.data_points[0].exemplars.len(), 1);
    assert_eq!(sum.data_points[0].exemplars[0].trace_id, vec![1; 16]);
    assert_eq!(sum.data_points[0].exemplars[0].time_unix_nano, T0 + 5);
    assert_eq!(sum.data_points[1].attributes[0].key, "otel.metric.overflow");
    let events = sums(metric(rm, "events"));
    assert_eq!(attr(&events[0].0, "exception.type"), Some("IOError"));
    assert_eq!(events[0].1, 1);

    // Exemplars last one flush; the resource expires a minute after its last span.
    let again = sm.flush(T0 + 10);
    let Some(metric::Data::Sum(sum)) = &metric(&again.resource_metrics[0], "calls").data else {
        panic!()
    };
    assert!(sum.data_points[0].exemplars.is_empty());
    assert!(sm.flush(T0 + 61_000 * MS).resource_metrics.len() == 1);
    assert_eq!(sm.resource_count(), 0);
}

#[derive(Default)]
struct Capture(std::sync::Mutex<Vec<Batch>>);

#[async_trait::async_trait]
impl Consumer for Capture {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.0.lock().unwrap().push(batch);
        Ok(())
    }
}

#[tokio::test]
async fn connector_aggregates_and_flushes_on_shutdown() {
    let out = Arc::new(Capture::default());
    let conn =
        SpanMetricsConnector::new(config("metrics_flush_interval: 1h"), out.clone()).unwrap();
    let shutdown = CancellationToken::new();
    let task = conn.start(shutdown.clone());
    let req = request(vec![kv("service.name", "svc")], vec![server("/", MS)]);
    conn.consume(Batch::traces(req)).await.unwrap();
    assert!(conn
        .consume(Batch::metrics(Default::default()))
        .await
        .is_err());
    shutdown.cancel();
    task.await.unwrap();
    let got = out.0.lock().unwrap();
    assert_eq!(got.len(), 1, "the final flush on shutdown");
    let Payload::Metrics(m) = &got[0].payload else {
        panic!()
    };
    let calls = sums(metric(&m.resource_metrics[0], "traces.span.metrics.calls"));
    assert_eq!(calls[0].1, 1);
    assert!(validate(&serde_yaml::from_str("histogram: {disable: true}").unwrap()).is_ok());
}
