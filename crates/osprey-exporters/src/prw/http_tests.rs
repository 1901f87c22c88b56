//! The exporter against a small local remote-write server (axum on loopback) that decodes
//! snappy + protobuf and records what it got.

use super::prompb::WriteRequest;
use super::*;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use osprey_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use osprey_model::otlp::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use osprey_model::otlp::resource::v1::Resource;
use osprey_pipeline::{Context, MetricsRequest};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Received {
    requests: Vec<(HeaderMap, WriteRequest)>,
}

/// Starts a server answering `status` with `reply`; returns its address and the recorder.
async fn server(status: StatusCode, reply: &'static str) -> (String, Arc<Mutex<Received>>) {
    let got = Arc::new(Mutex::new(Received::default()));
    let rec = got.clone();
    let app = axum::Router::new().route(
        "/api/v1/write",
        post(move |headers: HeaderMap, body: Bytes| {
            let rec = rec.clone();
            async move {
                let raw = snap::raw::Decoder::new()
                    .decompress_vec(&body)
                    .expect("snappy body");
                let req = WriteRequest::decode(raw.as_slice()).expect("WriteRequest");
                rec.lock().unwrap().requests.push((headers, req));
                (status, reply)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("{addr}/api/v1/write"), got)
}

fn metrics() -> MetricsRequest {
    let value = |s: &str| {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(s.into())),
        })
    };
    MetricsRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: value("svc"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "traces.span.metrics.calls".into(),
                    data: Some(Data::Sum(Sum {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: 1_700_000_000_123_000_000,
                            value: Some(number_data_point::Value::AsInt(42)),
                            ..Default::default()
                        }],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn exporter(endpoint: &str, extra: &str) -> PrwExporter {
    let yaml = format!("endpoint: {endpoint}\nheaders: {{X-Scope-OrgID: tenant-1, Content-Type: text/plain}}\n{extra}");
    PrwExporter::new(PrwConfig::from_yaml(&serde_yaml::from_str(&yaml).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn posts_snappy_protobuf_with_the_remote_write_headers() {
    let (addr, got) = server(StatusCode::NO_CONTENT, "").await;
    // No scheme, like the seed config: http:// is assumed.
    let exp = exporter(&addr, "include_metadata_keys: [x-tenant]");
    let mut batch = Batch::metrics(metrics());
    let mut ctx = Context::default();
    ctx.metadata.insert("x-tenant".into(), vec!["t9".into()]);
    batch.context = Arc::new(ctx);
    exp.consume(batch).await.unwrap();

    let got = got.lock().unwrap();
    assert_eq!(got.requests.len(), 1);
    let (headers, req) = &got.requests[0];
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(h("content-encoding"), "snappy");
    assert_eq!(
        h("content-type"),
        "application/x-protobuf",
        "reserved headers cannot be overridden"
    );
    assert_eq!(h("x-prometheus-remote-write-version"), "0.1.0");
    assert!(h("user-agent").starts_with("osprey-collector/"));
    assert_eq!(h("x-scope-orgid"), "tenant-1");
    assert_eq!(h("x-tenant"), "t9");
    assert_eq!(req.timeseries.len(), 1);
    let ts = &req.timeseries[0];
    assert!(ts.labels.contains(&prompb::Label::new(
        "__name__",
        "traces_span_metrics_calls_total"
    )));
    assert!(ts.labels.contains(&prompb::Label::new("job", "svc")));
    assert_eq!(
        (ts.samples[0].value, ts.samples[0].timestamp),
        (42.0, 1_700_000_000_123)
    );
}

#[tokio::test]
async fn status_codes_map_to_retryable_or_permanent() {
    for (status, retryable) in [
        (StatusCode::INTERNAL_SERVER_ERROR, true),
        (StatusCode::SERVICE_UNAVAILABLE, true),
        (StatusCode::TOO_MANY_REQUESTS, true),
        (StatusCode::BAD_REQUEST, false),
        (StatusCode::NOT_FOUND, false),
    ] {
        let (addr, _) = server(status, "out of order sample").await;
        let err = exporter(&format!("http://{addr}"), "")
            .consume(Batch::metrics(metrics()))
            .await
            .unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
        assert!(
            err.to_string().contains(&status.as_u16().to_string()),
            "{err}"
        );
        if !retryable {
            assert!(
                matches!(&err, ConsumeError::Permanent(m) if m.contains("out of order sample")),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn unreachable_endpoint_is_retryable_and_traces_are_refused() {
    // Bind then drop a listener: nothing accepts on that port any more.
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let exp = exporter(&format!("http://{addr}/api/v1/write"), "");
    let err = exp.consume(Batch::metrics(metrics())).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Unavailable(_)), "{err}");
    let err = exp
        .consume(Batch::traces(Default::default()))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent(_)));
    // Nothing to send is a success without a request.
    exp.consume(Batch::metrics(MetricsRequest::default()))
        .await
        .unwrap();
}
