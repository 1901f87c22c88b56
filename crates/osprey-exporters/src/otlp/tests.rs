//! The `otlp` exporter against a local tonic OTLP server on 127.0.0.1.

use super::*;
use osprey_model::otlp::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use osprey_model::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use osprey_model::otlp::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use osprey_model::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use osprey_model::otlp::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use osprey_model::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use osprey_model::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

type Reply = Result<ExportTraceServiceResponse, Status>;
type Seen = (Option<String>, Option<String>, usize);

#[derive(Default)]
struct Mock {
    replies: Mutex<VecDeque<Reply>>,
    /// (grpc-encoding, x-tenant header, span count) per trace request.
    seen: Mutex<Vec<Seen>>,
    other: Mutex<Vec<&'static str>>,
}

#[derive(Clone)]
struct Svc(Arc<Mock>);

#[tonic::async_trait]
impl TraceService for Svc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
        let header = |k: &str| {
            request
                .metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let seen = (
            header("grpc-encoding"),
            header("x-tenant"),
            osprey_model::span_count(request.get_ref()),
        );
        self.0.seen.lock().unwrap().push(seen);
        let reply = self.0.replies.lock().unwrap().pop_front();
        reply
            .unwrap_or_else(|| Ok(ExportTraceServiceResponse::default()))
            .map(tonic::Response::new)
    }
}

#[tonic::async_trait]
impl MetricsService for Svc {
    async fn export(
        &self,
        _: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, Status> {
        self.0.other.lock().unwrap().push("metrics");
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Svc {
    async fn export(
        &self,
        _: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, Status> {
        self.0.other.lock().unwrap().push("logs");
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Starts the mock server; returns its state and `127.0.0.1:port`.
async fn server() -> (Arc<Mock>, String) {
    let mock = Arc::new(Mock::default());
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let svc = Svc(mock.clone());
    let router = tonic::transport::Server::builder()
        .add_service(
            TraceServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd),
        )
        .add_service(
            MetricsServiceServer::new(svc.clone()).accept_compressed(CompressionEncoding::Gzip),
        )
        .add_service(LogsServiceServer::new(svc).accept_compressed(CompressionEncoding::Gzip));
    tokio::spawn(router.serve_with_incoming(incoming));
    (mock, addr.to_string())
}

fn exporter(yaml: &str) -> OtlpExporter {
    let config: OtlpConfig =
        osprey_pipeline::decode_config(&serde_yaml::from_str(yaml).unwrap()).unwrap();
    OtlpExporter::new(config).unwrap()
}

fn traces(spans: usize) -> Batch {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "op".into(),
        ..Default::default()
    };
    Batch::traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span; spans],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

#[tokio::test]
async fn exports_all_signals_with_gzip_and_headers() {
    let (mock, addr) = server().await;
    let e = exporter(&format!(
        "endpoint: {addr}\ntls: {{insecure: true}}\nheaders: {{x-tenant: acme}}"
    ));
    e.consume(traces(3)).await.unwrap();
    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(Some("gzip".into()), Some("acme".into()), 3)]);

    let metric = osprey_model::otlp::metrics::v1::ResourceMetrics::default();
    e.consume(Batch::metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![metric],
    }))
    .await
    .unwrap();
    let logs = ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: vec![LogRecord::default()],
            ..Default::default()
        }],
        ..Default::default()
    };
    e.consume(Batch::logs(ExportLogsServiceRequest {
        resource_logs: vec![logs],
    }))
    .await
    .unwrap();
    assert_eq!(*mock.other.lock().unwrap(), vec!["metrics", "logs"]);
}

#[tokio::test]
async fn zstd_and_no_compression() {
    let (mock, addr) = server().await;
    let z = exporter(&format!(
        "endpoint: http://{addr}\ntls: {{insecure: true}}\ncompression: zstd"
    ));
    z.consume(traces(1)).await.unwrap();
    let none = exporter(&format!(
        "endpoint: {addr}\ntls: {{insecure: true}}\ncompression: none"
    ));
    none.consume(traces(1)).await.unwrap();
    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0.as_deref(), Some("zstd"));
    assert_eq!(seen[1].0, None);
}

#[tokio::test]
async fn partial_success_is_counted_not_failed() {
    let (mock, addr) = server().await;
    mock.replies
        .lock()
        .unwrap()
        .push_back(Ok(ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "too old".into(),
            }),
        }));
    let e = exporter(&format!("endpoint: {addr}\ntls: {{insecure: true}}"));
    e.consume(traces(5)).await.unwrap();
    assert_eq!(e.rejected_items(), 2);
}

#[tokio::test]
async fn failures_are_classified() {
    let (mock, addr) = server().await;
    let throttled = Status::with_error_details(
        Code::ResourceExhausted,
        "slow down",
        ErrorDetails::with_retry_info(Some(Duration::from_secs(7))),
    );
    mock.replies.lock().unwrap().extend([
        Err(Status::unavailable("busy")),
        Err(Status::invalid_argument("bad spans")),
        Err(throttled),
        Err(Status::resource_exhausted("full")),
    ]);
    let e = exporter(&format!("endpoint: {addr}\ntls: {{insecure: true}}"));
    let err = e.consume(traces(1)).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Unavailable(_)), "{err}");
    let err = e.consume(traces(1)).await.unwrap_err();
    assert!(
        matches!(err, ConsumeError::Permanent(ref m) if m.contains("bad spans")),
        "{err}"
    );
    match e.consume(traces(1)).await.unwrap_err() {
        ConsumeError::Overloaded { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(7))
        }
        other => panic!("{other}"),
    }
    let err = e.consume(traces(1)).await.unwrap_err();
    assert!(matches!(err, ConsumeError::Permanent(_)), "{err}");
}

#[tokio::test]
async fn unreachable_endpoint_is_retryable() {
    // Bind and drop a listener so the port is (very likely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = exporter(&format!(
        "endpoint: 127.0.0.1:{port}\ntls: {{insecure: true}}"
    ));
    let err = e.consume(traces(1)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn empty_batches_are_not_sent() {
    let (mock, addr) = server().await;
    let e = exporter(&format!("endpoint: {addr}\ntls: {{insecure: true}}"));
    e.consume(Batch::traces(ExportTraceServiceRequest::default()))
        .await
        .unwrap();
    assert!(mock.seen.lock().unwrap().is_empty());
}

#[test]
fn new_needs_no_runtime_and_checks_config() {
    let e = OtlpExporter::new(OtlpConfig::default()).unwrap_err();
    assert_eq!(e.path, "endpoint");
    // TLS by default: building must work outside a runtime (the system roots may be absent
    // in a sandbox, so only the insecure form is asserted to succeed).
    assert!(OtlpExporter::new(OtlpConfig {
        endpoint: "localhost:4317".into(),
        tls: tls::TlsClientConfig {
            insecure: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .is_ok());
}

fn raw_traces(spans: usize) -> Batch {
    let Payload::Traces(request) = traces(spans).payload else {
        panic!("traces")
    };
    let bytes = bytes::Bytes::from(prost::Message::encode_to_vec(&request));
    Batch::from_payload(Payload::RawTraces(
        osprey_pipeline::RawTraces::from_bytes(bytes).unwrap(),
    ))
}

#[tokio::test]
async fn raw_traces_are_sent_as_they_are() {
    let (mock, addr) = server().await;
    mock.replies
        .lock()
        .unwrap()
        .push_back(Ok(ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 1,
                error_message: "one too old".into(),
            }),
        }));
    let e = exporter(&format!(
        "endpoint: {addr}\ntls: {{insecure: true}}\nheaders: {{x-tenant: acme}}"
    ));
    e.consume(raw_traces(4)).await.unwrap();
    let z = exporter(&format!(
        "endpoint: {addr}\ntls: {{insecure: true}}\ncompression: zstd"
    ));
    z.consume(raw_traces(2)).await.unwrap();
    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (Some("gzip".into()), Some("acme".into()), 4),
            (Some("zstd".into()), None, 2)
        ]
    );
    assert_eq!(e.rejected_items(), 1);
    mock.replies
        .lock()
        .unwrap()
        .push_back(Err(Status::invalid_argument("bad")));
    let err = e.consume(raw_traces(1)).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}
