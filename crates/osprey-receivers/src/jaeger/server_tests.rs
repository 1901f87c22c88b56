//! End-to-end tests: the four front ends on loopback ephemeral ports, a recording consumer,
//! real clients (reqwest, a tonic gRPC client, UDP datagrams built with the thrift crate).

use super::proto::{self, KeyValue, PostSpansRequest, PostSpansResponse};
use super::testutil::{encode_agent_message, encode_batch, sample_batch};
use super::thrift_reader::Wire;
use super::*;
use osprey_model::otlp::common::v1::any_value::Value as Av;
use osprey_pipeline::Consumer;
use std::time::Duration;
use tokio::sync::mpsc;

/// A guard against hangs only; nothing asserts on time.
const HANG_GUARD: Duration = Duration::from_secs(30);

struct Recorder {
    tx: mpsc::UnboundedSender<Batch>,
    refuse: Option<ConsumeError>,
}

#[async_trait::async_trait]
impl Consumer for Recorder {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if let Some(e) = &self.refuse {
            return Err(e.clone());
        }
        let _ = self.tx.send(batch);
        Ok(())
    }
}

fn all_protocols_config() -> JaegerConfig {
    let udp = || {
        Some(UdpConfig {
            endpoint: Some("127.0.0.1:0".into()),
            workers: 1,
            ..UdpConfig::default()
        })
    };
    JaegerConfig {
        protocols: Protocols {
            grpc: Some(GrpcConfig {
                endpoint: Some("127.0.0.1:0".into()),
                ..GrpcConfig::default()
            }),
            thrift_http: Some(ThriftHttpConfig {
                endpoint: Some("127.0.0.1:0".into()),
                ..ThriftHttpConfig::default()
            }),
            thrift_compact: udp(),
            thrift_binary: udp(),
        },
        remote_sampling: None,
    }
}

async fn start_all(
    refuse: Option<ConsumeError>,
) -> (
    JaegerServers,
    mpsc::UnboundedReceiver<Batch>,
    CancellationToken,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let token = CancellationToken::new();
    let servers = start(
        &all_protocols_config(),
        Arc::new(Recorder { tx, refuse }),
        token.clone(),
    )
    .await
    .unwrap();
    assert_eq!(servers.addrs.len(), 4);
    (servers, rx, token)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Batch>) -> Batch {
    tokio::time::timeout(HANG_GUARD, rx.recv())
        .await
        .expect("no batch arrived")
        .expect("channel closed")
}

fn service_and_span_ids(b: &Batch) -> (String, Vec<Vec<u8>>) {
    let req = b.trace_request().unwrap();
    let rs = &req.resource_spans[0];
    let svc = rs
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name");
    let svc = match svc.and_then(|kv| kv.value.clone()).and_then(|v| v.value) {
        Some(Av::StringValue(s)) => s,
        other => panic!("no service.name: {other:?}"),
    };
    let ids = rs
        .scope_spans
        .iter()
        .flat_map(|ss| &ss.spans)
        .map(|s| s.span_id.clone())
        .collect();
    (svc, ids)
}

async fn stop(servers: JaegerServers, token: CancellationToken) {
    token.cancel();
    for h in servers.handles {
        tokio::time::timeout(HANG_GUARD, h).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn thrift_http_and_udp_batches_reach_the_consumer() {
    let (servers, mut rx, token) = start_all(None).await;
    let url = format!(
        "http://{}/api/traces",
        servers.addr(Protocol::ThriftHttp).unwrap()
    );
    let body = encode_batch(&sample_batch(), Wire::Binary);
    let client = reqwest::Client::new();
    let resp = client
        .post(&url)
        .header("content-type", "application/x-thrift")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let b = next(&mut rx).await;
    let expected_ids = vec![
        0xAAu64.to_be_bytes().to_vec(),
        0xBBu64.to_be_bytes().to_vec(),
    ];
    assert_eq!(
        service_and_span_ids(&b),
        ("frontend".to_string(), expected_ids.clone())
    );
    assert_eq!(b.context.client_addr, Some("127.0.0.1".parse().unwrap()));

    // Wrong or missing content type, undecodable body: 400 with a reason.
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone());
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Unsupported content type"));
    let resp = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = client
        .post(&url)
        .header("content-type", "application/vnd.apache.thrift.binary")
        .body(vec![0x0c, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Unable to process request body"));

    // UDP: garbage first (dropped, counted), then a real emitBatch, compact and binary.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let compact = servers.addr(Protocol::ThriftCompact).unwrap();
    sock.send_to(b"not thrift", compact).await.unwrap();
    let msg = encode_agent_message("emitBatch", &sample_batch(), Wire::Compact);
    sock.send_to(&msg, compact).await.unwrap();
    let b = next(&mut rx).await;
    assert_eq!(
        service_and_span_ids(&b),
        ("frontend".to_string(), expected_ids.clone())
    );
    assert_eq!(servers.stats.decode_errors.load(Ordering::Relaxed), 2);

    let msg = encode_agent_message("emitBatch", &sample_batch(), Wire::Binary);
    sock.send_to(&msg, servers.addr(Protocol::ThriftBinary).unwrap())
        .await
        .unwrap();
    let b = next(&mut rx).await;
    assert_eq!(service_and_span_ids(&b).1, expected_ids);
    assert_eq!(servers.stats.spans_accepted.load(Ordering::Relaxed), 6);
    stop(servers, token).await;
}

fn proto_request() -> PostSpansRequest {
    let mut trace_id = vec![0u8; 16];
    trace_id[15] = 7;
    let span = proto::Span {
        trace_id,
        span_id: 5u64.to_be_bytes().to_vec(),
        operation_name: "grpc-op".into(),
        start_time: Some(proto::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        duration: Some(proto::Duration {
            seconds: 0,
            nanos: 1_000,
        }),
        tags: vec![KeyValue {
            key: "span.kind".into(),
            v_str: "producer".into(),
            ..KeyValue::default()
        }],
        ..proto::Span::default()
    };
    PostSpansRequest {
        batch: Some(proto::Batch {
            spans: vec![span],
            process: Some(proto::Process {
                service_name: "grpc-svc".into(),
                tags: vec![],
            }),
        }),
    }
}

async fn post_spans(
    addr: SocketAddr,
    req: PostSpansRequest,
) -> Result<tonic::Response<PostSpansResponse>, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(grpc::POST_SPANS_PATH);
    let codec = tonic_prost::ProstCodec::<PostSpansRequest, PostSpansResponse>::default();
    client.unary(tonic::Request::new(req), path, codec).await
}

#[tokio::test]
async fn grpc_post_spans_reaches_the_consumer() {
    let (servers, mut rx, token) = start_all(None).await;
    let addr = servers.addr(Protocol::Grpc).unwrap();
    post_spans(addr, proto_request()).await.unwrap();
    let b = next(&mut rx).await;
    assert_eq!(
        service_and_span_ids(&b),
        ("grpc-svc".to_string(), vec![5u64.to_be_bytes().to_vec()])
    );
    let span = &b.trace_request().unwrap().resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.kind, 4); // PRODUCER
    assert_eq!(span.end_time_unix_nano - span.start_time_unix_nano, 1_000);

    let mut bad = proto_request();
    bad.batch.as_mut().unwrap().spans[0].span_id = vec![1, 2, 3];
    let err = post_spans(addr, bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    stop(servers, token).await;
}

#[tokio::test]
async fn refusals_ask_clients_to_retry() {
    let overloaded = ConsumeError::Overloaded {
        retry_after: Duration::from_secs(3),
        reason: "queue full".into(),
    };
    let (servers, _rx, token) = start_all(Some(overloaded)).await;
    let url = format!(
        "http://{}/api/traces",
        servers.addr(Protocol::ThriftHttp).unwrap()
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-thrift")
        .body(encode_batch(&sample_batch(), Wire::Binary))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "3");
    let err = post_spans(servers.addr(Protocol::Grpc).unwrap(), proto_request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(servers.stats.batches_refused.load(Ordering::Relaxed), 2);
    stop(servers, token).await;
}

#[tokio::test]
async fn bind_failures_name_the_protocol_and_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let mut cfg = all_protocols_config();
    cfg.protocols.thrift_http.as_mut().unwrap().endpoint = Some(addr.to_string());
    let (tx, _rx) = mpsc::unbounded_channel();
    let consumer = Arc::new(Recorder { tx, refuse: None });
    let err = match start(&cfg, consumer, CancellationToken::new()).await {
        Err(e) => e,
        Ok(_) => panic!("bound a taken port"),
    };
    match &err {
        JaegerError::Bind {
            protocol, addr: a, ..
        } => {
            assert_eq!(*protocol, Protocol::ThriftHttp);
            assert_eq!(a, &addr.to_string());
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("thrift_http"), "{err}");
}
