//! Tests of the remote-write config and translator, including the names the `spanmetrics`
//! connector's output gets.

use super::prompb::{Label, TimeSeries};
use super::*;
use osprey_connectors::spanmetrics::{SpanMetrics, SpanMetricsConfig};
use osprey_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use osprey_model::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use osprey_model::otlp::metrics::v1::{
    exemplar, metric::Data, number_data_point, AggregationTemporality, Exemplar, Gauge, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use osprey_pipeline::MetricsRequest;

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

fn settings(yaml: &str) -> Settings {
    let config = PrwConfig::from_yaml(&serde_yaml::from_str(yaml).unwrap()).unwrap();
    // The exporter's own settings, as `new` derives them.
    let exporter = PrwExporter::new(config).unwrap();
    exporter.settings.clone()
}

fn series<'a>(t: &'a Translation, name: &str, extra: &[(&str, &str)]) -> &'a TimeSeries {
    t.series
        .iter()
        .find(|ts| {
            ts.labels.contains(&Label::new("__name__", name))
                && extra
                    .iter()
                    .all(|(k, v)| ts.labels.contains(&Label::new(*k, *v)))
        })
        .unwrap_or_else(|| panic!("no series {name} {extra:?} in {:#?}", names(t)))
}

fn names(t: &Translation) -> Vec<String> {
    t.series
        .iter()
        .map(|ts| {
            ts.labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

fn spanmetrics_output() -> MetricsRequest {
    let mut sm = SpanMetrics::new(&SpanMetricsConfig::default()).unwrap();
    let span = |ms: u64| Span {
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        name: "/checkout".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + ms * MS,
        ..Default::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "shop"),
                    kv("service.instance.id", "i-1"),
                    kv("host.name", "h1"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1), span(3), span(30_000)],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    };
    sm.add(&req, T0);
    sm.flush(T0 + 60_000 * MS)
}

#[test]
fn spanmetrics_output_gets_upstream_names_and_labels() {
    let t = translate(
        &spanmetrics_output(),
        &settings("endpoint: http://127.0.0.1:1/write"),
    );
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    let base = [
        ("service_name", "shop"),
        ("span_name", "/checkout"),
        ("span_kind", "SPAN_KIND_SERVER"),
        ("status_code", "STATUS_CODE_UNSET"),
    ];
    let calls = series(&t, "traces_span_metrics_calls_total", &base);
    assert_eq!(calls.samples[0].value, 3.0);
    assert_eq!(calls.samples[0].timestamp, ((T0 + 60_000 * MS) / MS) as i64);
    let want: Vec<Label> = [
        ("__name__", "traces_span_metrics_calls_total"),
        ("instance", "i-1"),
        ("job", "shop"),
        ("otel_scope_name", "spanmetricsconnector"),
        ("service_name", "shop"),
        ("span_kind", "SPAN_KIND_SERVER"),
        ("span_name", "/checkout"),
        ("status_code", "STATUS_CODE_UNSET"),
    ]
    .iter()
    .map(|(k, v)| Label::new(*k, *v))
    .collect();
    assert_eq!(calls.labels, want, "labels sorted by name");
    let bucket = |le: &str| {
        let mut l = base.to_vec();
        l.push(("le", le));
        series(&t, "traces_span_metrics_duration_milliseconds_bucket", &l).samples[0].value
    };
    assert_eq!(
        (
            bucket("2"),
            bucket("4"),
            bucket("1400"),
            bucket("15000"),
            bucket("+Inf")
        ),
        (1.0, 2.0, 2.0, 2.0, 3.0)
    );
    assert_eq!(
        series(&t, "traces_span_metrics_duration_milliseconds_sum", &base).samples[0].value,
        30_004.0
    );
    assert_eq!(
        series(&t, "traces_span_metrics_duration_milliseconds_count", &base).samples[0].value,
        3.0
    );
    let info = series(
        &t,
        "target_info",
        &[("job", "shop"), ("instance", "i-1"), ("host_name", "h1")],
    );
    assert_eq!(info.samples[0].value, 1.0);
    assert!(!info.labels.iter().any(|l| l.name == "service_name"));
    // 1 calls + 17 buckets + sum + count + target_info
    assert_eq!(t.series.len(), 21);
}

fn request(metrics: Vec<Metric>, resource: Vec<KeyValue>) -> MetricsRequest {
    MetricsRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.2".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn point(attrs: Vec<KeyValue>, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: T0 - 1000 * MS,
        time_unix_nano: T0,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn sum(
    name: &str,
    temporality: AggregationTemporality,
    monotonic: bool,
    points: Vec<NumberDataPoint>,
) -> Metric {
    Metric {
        name: name.into(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }
}

#[test]
fn delta_sums_are_dropped_and_the_rest_exported() {
    let req = request(
        vec![
            sum(
                "a.delta",
                AggregationTemporality::Delta,
                true,
                vec![point(vec![], 1.0)],
            ),
            sum(
                "b.cum",
                AggregationTemporality::Cumulative,
                true,
                vec![point(vec![], 2.0)],
            ),
            sum(
                "c.updown",
                AggregationTemporality::Cumulative,
                false,
                vec![point(vec![], -2.0)],
            ),
        ],
        vec![kv("service.name", "svc")],
    );
    let t = translate(
        &req,
        &settings("endpoint: localhost:9201/write\ndisable_scope_info: true"),
    );
    assert_eq!(
        t.errors,
        vec!["invalid temporality and type combination for metric \"a.delta\"".to_string()]
    );
    assert_eq!(
        series(&t, "b_cum_total", &[("job", "svc")]).samples[0].value,
        2.0
    );
    assert_eq!(series(&t, "c_updown", &[]).samples[0].value, -2.0);
    // Only service.name: no target_info.
    assert_eq!(t.series.len(), 2);
}

#[test]
fn labels_namespace_external_labels_and_resource_conversion() {
    let gauge = Metric {
        name: "cpu.utilization".into(),
        unit: "1".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![point(
                vec![
                    kv("a.b", "1"),
                    kv("a_b", "2"),
                    kv("job", "mine"),
                    kv("0day", "x"),
                ],
                0.5,
            )],
        })),
        ..Default::default()
    };
    let req = request(
        vec![gauge],
        vec![
            kv("service.name", "svc"),
            kv("service.namespace", "ns"),
            kv("region", "eu"),
        ],
    );
    let s = settings(
        "endpoint: http://h/w\nnamespace: osp\nexternal_labels: {cluster.name: c1, region: ext}\n\
         resource_to_telemetry_conversion: {enabled: true}\ntarget_info: {enabled: false}",
    );
    let t = translate(&req, &s);
    assert_eq!(t.series.len(), 1);
    let ts = series(&t, "osp_cpu_utilization_ratio", &[]);
    let get = |n: &str| {
        ts.labels
            .iter()
            .find(|l| l.name == n)
            .map(|l| l.value.as_str())
    };
    assert_eq!(get("a_b"), Some("1;2"));
    assert_eq!(
        get("job"),
        Some("ns/svc"),
        "job from the resource wins over the attribute"
    );
    assert_eq!(get("key_0day"), Some("x"));
    assert_eq!(get("cluster_name"), Some("c1"));
    assert_eq!(
        get("region"),
        Some("eu"),
        "attributes win over external labels"
    );
    assert_eq!(get("service_name"), Some("svc"));
    assert_eq!(get("otel_scope_name"), Some("lib"));
    assert_eq!(get("otel_scope_version"), Some("1.2"));

    let plain = translate(
        &req,
        &settings("endpoint: http://h/w\nadd_metric_suffixes: false"),
    );
    series(&plain, "cpu_utilization", &[]);
}

#[test]
fn exemplars_stale_markers_created_and_metadata() {
    let mut p = point(vec![], 4.0);
    p.flags = 1;
    p.exemplars = vec![Exemplar {
        trace_id: vec![0xab; 16],
        span_id: vec![0xcd; 8],
        time_unix_nano: T0,
        value: Some(exemplar::Value::AsDouble(4.0)),
        ..Default::default()
    }];
    let req = request(
        vec![Metric {
            description: "requests".into(),
            ..sum(
                "http.requests",
                AggregationTemporality::Cumulative,
                true,
                vec![p],
            )
        }],
        vec![kv("service.name", "svc")],
    );
    let s = settings(
        "endpoint: http://h/w\nsend_metadata: true\nexport_created_metric: {enabled: true}",
    );
    let t = translate(&req, &s);
    let ts = series(&t, "http_requests_total", &[]);
    assert_eq!(ts.samples[0].value.to_bits(), 0x7ff0_0000_0000_0002);
    assert_eq!(
        ts.exemplars[0].labels[0],
        Label::new("trace_id", "ab".repeat(16))
    );
    assert_eq!(ts.exemplars[0].timestamp, (T0 / MS) as i64);
    let created = series(&t, "http_requests_total_created", &[]);
    assert_eq!(created.samples[0].value, ((T0 - 1000 * MS) / MS) as f64);
    assert_eq!(t.metadata.len(), 1);
    assert_eq!(t.metadata[0].metric_family_name, "http_requests_total");
    assert_eq!(t.metadata[0].help, "requests");
    assert_eq!(t.metadata[0].r#type, prompb::MetricType::Counter as i32);

    let many = batches(t, 120);
    assert!(
        many.len() >= 2,
        "small max_batch_size_bytes splits the request"
    );
    assert!(many
        .iter()
        .all(|r| !r.timeseries.is_empty() || !r.metadata.is_empty()));
    assert_eq!(many.iter().map(|r| r.timeseries.len()).sum::<usize>(), 2);
}

#[test]
fn config_defaults_and_errors() {
    let c = PrwConfig::from_yaml(&serde_yaml::from_str("endpoint: promscale:9201/write").unwrap())
        .unwrap();
    assert_eq!(
        c.endpoint_url().unwrap().as_str(),
        "http://promscale:9201/write"
    );
    assert!(c.add_metric_suffixes && c.target_info.enabled && !c.send_metadata);
    assert_eq!(
        (
            c.remote_write_queue.enabled,
            c.remote_write_queue.queue_size,
            c.remote_write_queue.num_consumers
        ),
        (true, 10_000, 5)
    );
    assert_eq!(c.max_batch_size(), 3_000_000);
    assert_eq!(c.timeout, std::time::Duration::from_secs(5));
    let nested = PrwConfig::from_yaml(
        &serde_yaml::from_str("http: {endpoint: 'https://m:443/api/v1/push'}").unwrap(),
    )
    .unwrap();
    assert_eq!(nested.endpoint_url().unwrap().scheme(), "https");

    let bad = |yaml: &str| PrwConfig::from_yaml(&serde_yaml::from_str(yaml).unwrap()).unwrap_err();
    assert_eq!(bad("namespace: x").path, "endpoint");
    assert_eq!(bad("endpoint: ftp://h/w").path, "endpoint");
    assert_eq!(
        bad("endpoint: http://h/w\nwal: {directory: /tmp}").path,
        "wal"
    );
    assert_eq!(
        bad("endpoint: http://h/w\nremote_write_queue: {queue_size: 0}").path,
        "remote_write_queue.queue_size"
    );
    assert_eq!(
        bad("endpoint: http://h/w\ncompression: gzip").path,
        "compression"
    );
    assert_eq!(
        bad("endpoint: http://h/w\nexternal_labels: {a: ''}").path,
        "external_labels"
    );
    assert_eq!(
        bad("endpoint: http://h/w\ntranslation_strategy: NoTranslation").path,
        "translation_strategy"
    );
    assert_eq!(
        bad("endpoint: http://h/w\ninclude_metadata_keys: [User-Agent]").path,
        "include_metadata_keys"
    );
    assert_eq!(
        bad("http: {endpoint: 'http://h/w', compression: zstd}").path,
        "http.compression"
    );
    assert!(bad("endpoint: http://h/w\nsending_queue: {}")
        .message
        .contains("unknown field"));
    let off = PrwConfig::from_yaml(&serde_yaml::from_str("endpoint: http://h/w\nadd_metric_suffixes: true\ntranslation_strategy: UnderscoreEscapingWithoutSuffixes").unwrap()).unwrap();
    assert!(!off.with_suffixes());
}
