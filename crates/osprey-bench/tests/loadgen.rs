//! The load generator against throwaway in-process OTLP receivers on 127.0.0.1.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use osprey_bench::{run_loadgen, LoadgenArgs, Protocol};
use prost::Message;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Counter {
    requests: AtomicU64,
    spans: AtomicU64,
    /// Fail this many requests first (UNAVAILABLE / 503).
    fail_first: AtomicU64,
    /// Report this many spans per request as rejected.
    reject_each: u64,
    trace_ids: Mutex<HashSet<Vec<u8>>>,
}

impl Counter {
    fn take(&self, req: &ExportTraceServiceRequest) -> Result<(), ()> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let failing = self.fail_first.load(Ordering::SeqCst);
        if failing > 0 {
            self.fail_first.store(failing - 1, Ordering::SeqCst);
            return Err(());
        }
        let mut ids = self.trace_ids.lock().unwrap_or_else(|e| e.into_inner());
        for rs in &req.resource_spans {
            assert!(rs.resource.is_some());
            for ss in &rs.scope_spans {
                self.spans
                    .fetch_add(ss.spans.len() as u64, Ordering::SeqCst);
                for s in &ss.spans {
                    ids.insert(s.trace_id.clone());
                }
            }
        }
        Ok(())
    }

    fn response(&self) -> ExportTraceServiceResponse {
        let partial_success = (self.reject_each > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: self.reject_each as i64,
            error_message: "test rejects some".into(),
        });
        ExportTraceServiceResponse { partial_success }
    }
}

struct Grpc(Arc<Counter>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        match self.0.take(request.get_ref()) {
            Ok(()) => Ok(Response::new(self.0.response())),
            Err(()) => Err(Status::unavailable("warming up")),
        }
    }
}

async fn grpc_server(counter: Arc<Counter>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Grpc(counter)))
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

async fn http_server(counter: Arc<Counter>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handler = move |body: Bytes| {
        let counter = counter.clone();
        async move {
            let req = ExportTraceServiceRequest::decode(body).expect("protobuf body");
            match counter.take(&req) {
                Ok(()) => (StatusCode::OK, counter.response().encode_to_vec()).into_response(),
                Err(()) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "0")],
                    "busy",
                )
                    .into_response(),
            }
        }
    };
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn args(endpoint: String, protocol: Protocol, spans: u64) -> LoadgenArgs {
    LoadgenArgs {
        endpoint: Some(endpoint),
        protocol,
        spans: Some(spans),
        start_offset: Some(Duration::from_secs(3600)),
        batch: 500,
        quiet: true,
        ..LoadgenArgs::default()
    }
}

#[tokio::test]
async fn grpc_sends_the_span_budget_and_retries_unavailable() {
    let counter = Arc::new(Counter {
        fail_first: AtomicU64::new(3),
        ..Counter::default()
    });
    let endpoint = grpc_server(counter.clone()).await;
    let report = run_loadgen(args(endpoint, Protocol::Grpc, 20_000))
        .await
        .expect("loadgen");
    let received = counter.spans.load(Ordering::SeqCst);
    assert_eq!(report.spans_acked, received);
    assert_eq!(report.spans_sent, received);
    assert!(
        received <= 20_000 && received > 20_000 - 30,
        "received {received}"
    );
    assert_eq!(report.retry_count(), 3, "{:?}", report.retries);
    assert_eq!(report.retries.get("grpc Unavailable"), Some(&3));
    assert_eq!(report.failed_requests(), 0);
    assert!(report.latency_p99_ms >= report.latency_p50_ms && report.latency_p50_ms > 0.0);
    assert_eq!(
        report.traces_sent as usize,
        counter.trace_ids.lock().map(|s| s.len()).unwrap_or(0)
    );
}

#[tokio::test]
async fn http_protobuf_with_retry_after_and_partial_success() {
    let counter = Arc::new(Counter {
        fail_first: AtomicU64::new(2),
        reject_each: 1,
        ..Counter::default()
    });
    let endpoint = http_server(counter.clone()).await;
    let mut a = args(endpoint, Protocol::Http, 5_000);
    a.concurrency = 2;
    let report = run_loadgen(a).await.expect("loadgen");
    let received = counter.spans.load(Ordering::SeqCst);
    assert_eq!(report.spans_sent, received);
    assert_eq!(report.spans_rejected, report.requests);
    assert_eq!(report.spans_acked, received - report.requests);
    assert_eq!(report.retries.get("http 503"), Some(&2));
}

#[tokio::test]
async fn rate_limit_paces_requests() {
    let counter = Arc::new(Counter::default());
    let endpoint = grpc_server(counter.clone()).await;
    let mut a = args(endpoint, Protocol::Grpc, 10_000);
    a.rate = 20_000.0;
    let t = Instant::now();
    let report = run_loadgen(a).await.expect("loadgen");
    let secs = t.elapsed().as_secs_f64();
    // 10k spans at 20k/s: the last batch may start at ~0.475 s.
    assert!(secs >= 0.4, "took {secs}s");
    assert!(report.spans_per_sec < 25_000.0, "{}", report.spans_per_sec);
}

#[tokio::test]
async fn duration_stops_an_unbounded_run() {
    let counter = Arc::new(Counter::default());
    let endpoint = grpc_server(counter.clone()).await;
    let mut a = args(endpoint, Protocol::Grpc, 0);
    a.spans = None;
    a.duration = Some(Duration::from_millis(500));
    a.rate = 10_000.0;
    let t = Instant::now();
    let report = run_loadgen(a).await.expect("loadgen");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(
        report.spans_acked > 2_000 && report.spans_acked < 8_000,
        "{}",
        report.spans_acked
    );
}

#[tokio::test]
async fn unreachable_endpoint_gives_up() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut a = args(
        format!("http://127.0.0.1:{port}"),
        Protocol::Grpc,
        1_000_000,
    );
    a.max_retries = 1;
    a.timeout = Duration::from_secs(1);
    let t = Instant::now();
    let err = run_loadgen(a).await.expect_err("must fail");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(err.to_string().contains("no span was accepted"), "{err:#}");
}
