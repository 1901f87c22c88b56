//! The `otlphttp` exporter against a local axum server on 127.0.0.1.

use super::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use osprey_model::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use osprey_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// (status, extra headers, body) the server answers with, in order; then 200 with no body.
type Reply = (u16, Vec<(&'static str, String)>, Vec<u8>);

type Seen = (String, String, String, String, ExportTraceServiceRequest);

#[derive(Default)]
struct Mock {
    replies: Mutex<VecDeque<Reply>>,
    /// (path, content-type, content-encoding, x-tenant, decoded request).
    seen: Mutex<Vec<Seen>>,
}

async fn handle(
    State(mock): State<Arc<Mock>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut raw = body.to_vec();
    match h("content-encoding").as_str() {
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .unwrap();
            raw = out;
        }
        "zstd" => raw = zstd::decode_all(&raw[..]).unwrap(),
        _ => {}
    }
    let request = if uri.path() == "/v1/traces" {
        if h("content-type") == "application/json" {
            serde_json::from_slice(&raw).unwrap()
        } else {
            prost::Message::decode(&raw[..]).unwrap()
        }
    } else {
        ExportTraceServiceRequest::default()
    };
    mock.seen.lock().unwrap().push((
        uri.path().into(),
        h("content-type"),
        h("content-encoding"),
        h("x-tenant"),
        request,
    ));
    let (status, extra, body) =
        mock.replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, vec![], vec![]));
    let mut out = HeaderMap::new();
    for (k, v) in extra {
        out.insert(k, v.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), out, body)
}

async fn server() -> (Arc<Mock>, String) {
    let mock = Arc::new(Mock::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(mock.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (mock, format!("http://{addr}"))
}

fn exporter(yaml: &str) -> OtlpHttpExporter {
    let config: OtlpHttpConfig =
        osprey_pipeline::decode_config(&serde_yaml::from_str(yaml).unwrap()).unwrap();
    OtlpHttpExporter::new(config).unwrap()
}

fn request() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        name: "GET /".into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        attributes: vec![KeyValue {
            key: "http.status_code".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(200)),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test]
async fn proto_with_gzip_and_headers() {
    let (mock, base) = server().await;
    let e = exporter(&format!("endpoint: {base}\nheaders: {{x-tenant: acme}}"));
    e.consume(Batch::traces(request())).await.unwrap();
    e.consume(Batch::logs(osprey_pipeline::LogsRequest {
        resource_logs: vec![Default::default()],
    }))
    .await
    .unwrap();
    let seen = mock.seen.lock().unwrap();
    let (path, ct, ce, tenant, got) = &seen[0];
    assert_eq!(
        (path.as_str(), ct.as_str(), ce.as_str(), tenant.as_str()),
        ("/v1/traces", "application/x-protobuf", "gzip", "acme")
    );
    assert_eq!(*got, request());
    assert_eq!(seen[1].0, "/v1/logs");
}

#[tokio::test]
async fn json_encoding_round_trips_as_otlp_json() {
    let (mock, base) = server().await;
    let e = exporter(&format!(
        "endpoint: {base}\nencoding: json\ncompression: none"
    ));
    e.consume(Batch::traces(request())).await.unwrap();
    let seen = mock.seen.lock().unwrap();
    assert_eq!(seen[0].1, "application/json");
    assert_eq!(seen[0].2, "");
    assert_eq!(seen[0].4, request());
}

#[tokio::test]
async fn zstd_and_pre_encoded_body() {
    let (mock, base) = server().await;
    let e = exporter(&format!(
        "traces_endpoint: {base}/v1/traces\ncompression: zstd"
    ));
    let mut batch = Batch::traces(request());
    batch.encoded = Some(prost::Message::encode_to_vec(&request()).into());
    e.consume(batch).await.unwrap();
    assert_eq!(mock.seen.lock().unwrap()[0].2, "zstd");
    // No URL for metrics: permanent.
    let err = e
        .consume(Batch::metrics(osprey_pipeline::MetricsRequest::default()))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent(_)), "{err}");
}

#[tokio::test]
async fn partial_success_is_counted() {
    let (mock, base) = server().await;
    let body = prost::Message::encode_to_vec(&ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "late".into(),
        }),
    });
    mock.replies.lock().unwrap().extend([
        (
            200,
            vec![("content-type", "application/x-protobuf".into())],
            body,
        ),
        (
            200,
            vec![("content-type", "application/json".into())],
            br#"{"partialSuccess":{"rejectedSpans":"2"}}"#.to_vec(),
        ),
    ]);
    let e = exporter(&format!("endpoint: {base}"));
    e.consume(Batch::traces(request())).await.unwrap();
    e.consume(Batch::traces(request())).await.unwrap();
    assert_eq!(e.rejected_items(), 3);
}

#[tokio::test]
async fn error_statuses_are_classified() {
    let (mock, base) = server().await;
    let status = prost::Message::encode_to_vec(&response::RpcStatus {
        code: 3,
        message: "bad span".into(),
    });
    mock.replies.lock().unwrap().extend([
        (503, vec![("retry-after", "7".into())], vec![]),
        (400, vec![], status),
        (502, vec![], vec![]),
        (429, vec![], vec![]),
        (500, vec![], vec![]),
    ]);
    let e = exporter(&format!("endpoint: {base}"));
    match e.consume(Batch::traces(request())).await.unwrap_err() {
        ConsumeError::Overloaded { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(7))
        }
        other => panic!("{other}"),
    }
    let err = e.consume(Batch::traces(request())).await.unwrap_err();
    assert!(
        matches!(err, ConsumeError::Permanent(ref m) if m.contains("bad span")),
        "{err}"
    );
    let err = e.consume(Batch::traces(request())).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Unavailable(_)), "{err}");
    let err = e.consume(Batch::traces(request())).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Unavailable(_)), "{err}");
    let err = e.consume(Batch::traces(request())).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent(_)), "{err}");
}

#[tokio::test]
async fn unreachable_endpoint_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = exporter(&format!("endpoint: http://127.0.0.1:{port}"));
    let err = e.consume(Batch::traces(request())).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Unavailable(_)), "{err}");
}

#[test]
fn otlp_json_mapping_uses_hex_ids_and_camel_case() {
    let json = serde_json::to_value(request()).unwrap();
    let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(span["spanId"], "0102030405060708");
    assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
    assert_eq!(span["attributes"][0]["value"]["intValue"], "200");
}
