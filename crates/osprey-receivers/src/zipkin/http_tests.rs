//! HTTP tests: requests through the router with `oneshot`, and one through a real listener.

use super::super::config::{CorsConfig, ZipkinConfig};
use super::super::fixtures::{attr, s, Recorder, V1_RPC, V2_OTEL};
use super::super::proto::{ListOfSpans, ProtoAnnotation, ProtoEndpoint, Span, SpanKind};
use super::*;
use axum::body::Body;
use axum::http::Request as HttpRequest;
use osprey_model::otlp::trace::v1::span::SpanKind as OtlpKind;
use osprey_pipeline::Payload;
use prost::Message;
use std::io::Write;
use std::time::Duration;
use tower::ServiceExt;

async fn call(
    app: Router,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = HttpRequest::post(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body)).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn spans_of(rec: &Recorder) -> Vec<osprey_model::otlp::trace::v1::Span> {
    let batches = rec.batches.lock().unwrap();
    batches
        .iter()
        .flat_map(|b| match &b.payload {
            Payload::Traces(r) => r.resource_spans.clone(),
            _ => vec![],
        })
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect()
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn v2_json_is_accepted_with_202_and_sanitized() {
    let rec = Arc::new(Recorder::default());
    let app = router(&ZipkinConfig::default(), rec.clone());
    let (status, _, body) = call(app, "/api/v2/spans", &[JSON], V2_OTEL.into()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, "");
    // The span without a timestamp cannot be stored: sanitize drops it, the rest pass.
    let spans = spans_of(&rec);
    let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["internal work", "HTTP GET"]);
}

#[tokio::test]
async fn v1_json_and_gzip() {
    let rec = Arc::new(Recorder::default());
    let app = router(&ZipkinConfig::default(), rec.clone());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(V1_RPC.as_bytes()).unwrap();
    let headers = [JSON, ("content-encoding", "gzip")];
    let (status, _, body) = call(app, "/api/v1/spans", &headers, gz.finish().unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let spans = spans_of(&rec);
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0].kind, OtlpKind::Server as i32);
    assert_eq!(attr(&spans[0].attributes, "http.path"), Some(&s("/api")));
}

#[tokio::test]
async fn v2_protobuf_built_with_the_proto_structs() {
    let list = ListOfSpans {
        spans: vec![Span {
            trace_id: (1..=16).collect(),
            parent_id: vec![9; 8],
            id: vec![7; 8],
            kind: SpanKind::Producer as i32,
            name: "send".into(),
            timestamp: 1_700_000_000_000_000,
            duration: 250,
            local_endpoint: Some(ProtoEndpoint {
                service_name: "queue-writer".into(),
                ipv4: vec![10, 1, 2, 3],
                port: 80,
                ..Default::default()
            }),
            remote_endpoint: Some(ProtoEndpoint {
                service_name: "kafka".into(),
                ipv6: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ..Default::default()
            }),
            annotations: vec![ProtoAnnotation {
                timestamp: 1_700_000_000_000_100,
                value: "flushed".into(),
            }],
            tags: [("messaging.system".to_string(), "kafka".to_string())].into(),
            debug: true,
            shared: false,
        }],
    };
    let rec = Arc::new(Recorder::default());
    let app = router(&ZipkinConfig::default(), rec.clone());
    let headers = [("content-type", "application/x-protobuf")];
    let (status, _, body) = call(app, "/api/v2/spans", &headers, list.encode_to_vec()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let batches = rec.batches.lock().unwrap();
    let Payload::Traces(req) = &batches[0].payload else {
        panic!("not traces")
    };
    let rs = &req.resource_spans[0];
    let res = &rs.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(res, "service.name"), Some(&s("queue-writer")));
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.trace_id, (1..=16).collect::<Vec<u8>>());
    assert_eq!(span.span_id, vec![7; 8]);
    assert_eq!(span.parent_span_id, vec![9; 8]);
    assert_eq!(span.kind, OtlpKind::Producer as i32);
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_000_250_000);
    assert_eq!(
        attr(&span.attributes, "messaging.system"),
        Some(&s("kafka"))
    );
    assert_eq!(
        attr(&span.attributes, "network.local.address"),
        Some(&s("10.1.2.3"))
    );
    assert_eq!(
        attr(&span.attributes, "net.host.port"),
        Some(&Value::IntValue(80))
    );
    assert_eq!(
        attr(&span.attributes, "service.peer.name"),
        Some(&s("kafka"))
    );
    assert_eq!(
        attr(&span.attributes, "network.peer.address"),
        Some(&s("::1"))
    );
    assert_eq!(span.events[0].name, "flushed");
    assert_eq!(span.events[0].time_unix_nano, 1_700_000_000_000_100_000);
}

use osprey_model::otlp::common::v1::any_value::Value;

#[tokio::test]
async fn bad_bodies_and_types_are_refused_with_reasons() {
    let rec = Arc::new(Recorder::default());
    let app = router(&ZipkinConfig::default(), rec.clone());
    let (status, headers, body) = call(
        app.clone(),
        "/api/v2/spans",
        &[JSON],
        b"[{\"traceId\": 5}]".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("invalid Zipkin v2 JSON at [0].traceId"),
        "{body}"
    );
    assert_eq!(
        header_str(&headers, &header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
    let (status, _, body) = call(
        app.clone(),
        "/api/v2/spans",
        &[("content-type", "application/xml")],
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body.contains("application/xml"), "{body}");
    let thrift = [("content-type", "application/x-thrift")];
    let (status, _, body) = call(app.clone(), "/api/v1/spans", &thrift, vec![1, 2]).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body.contains("Thrift is not supported"), "{body}");
    let (status, _, _) = call(
        app.clone(),
        "/api/v2/spans",
        &[("content-encoding", "br")],
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let proto = [("content-type", "application/x-protobuf")];
    let (status, _, body) = call(app.clone(), "/api/v2/spans", &proto, vec![0x0a, 0x05]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid Zipkin v2 protobuf"), "{body}");
    // Every span invalid for storage: 400 with the sanitizer's reason.
    let no_ts = br#"[{"traceId":"1","id":"2","name":"x","localEndpoint":{"serviceName":"a"}}]"#;
    let (status, _, body) = call(app.clone(), "/api/v2/spans", &[JSON], no_ts.to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // An empty list is fine and reaches nobody.
    let (status, _, _) = call(app.clone(), "/api/v2/spans", &[JSON], b"[]".to_vec()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(rec.batches.lock().unwrap().is_empty());
    // Like upstream, a POST elsewhere is read as v2.
    let (status, _, _) = call(app, "/", &[JSON], b"[]".to_vec()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn body_limit_applies() {
    let config = ZipkinConfig {
        max_request_body_size: 64,
        ..Default::default()
    };
    let app = router(&config, Arc::new(Recorder::default()));
    let (status, _, body) = call(app, "/api/v2/spans", &[JSON], V2_OTEL.into()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("64 bytes"), "{body}");
}

#[tokio::test]
async fn consumer_refusals_map_to_status_codes() {
    let cases = [
        (
            ConsumeError::Overloaded {
                retry_after: Duration::from_secs(7),
                reason: "memory".into(),
            },
            StatusCode::SERVICE_UNAVAILABLE,
            Some("7"),
        ),
        (
            ConsumeError::Unavailable("disk".into()),
            StatusCode::SERVICE_UNAVAILABLE,
            None,
        ),
        (
            ConsumeError::Permanent("nope".into()),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (err, want, retry_after) in cases {
        let rec = Arc::new(Recorder {
            fail: Some(err),
            ..Default::default()
        });
        let app = router(&ZipkinConfig::default(), rec);
        let (status, headers, _) = call(app, "/api/v1/spans", &[JSON], V1_RPC.into()).await;
        assert_eq!(status, want);
        assert_eq!(
            headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            retry_after
        );
    }
}

#[tokio::test]
async fn metadata_cors_and_response_headers() {
    let config = ZipkinConfig {
        include_metadata: true,
        cors: Some(CorsConfig {
            allowed_origins: vec!["https://*.example.com".into()],
            max_age: 600,
            ..Default::default()
        }),
        response_headers: [("x-served-by".to_string(), "osprey".to_string())].into(),
        ..Default::default()
    };
    let rec = Arc::new(Recorder::default());
    let app = router(&config, rec.clone());
    let headers = [
        JSON,
        ("origin", "https://app.example.com"),
        ("x-tenant", "acme"),
    ];
    let (status, h, _) = call(app.clone(), "/api/v2/spans", &headers, V2_OTEL.into()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        header_str(&h, &header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "https://app.example.com"
    );
    assert_eq!(
        header_str(&h, &HeaderName::from_static("x-served-by")),
        "osprey"
    );
    {
        let batches = rec.batches.lock().unwrap();
        assert_eq!(
            batches[0].context.metadata.get("x-tenant"),
            Some(&vec!["acme".to_string()])
        );
    }

    let preflight = HttpRequest::builder()
        .method(Method::OPTIONS)
        .uri("/api/v2/spans")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(preflight).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let h = resp.headers();
    assert_eq!(header_str(h, &header::ACCESS_CONTROL_ALLOW_METHODS), "POST");
    assert_eq!(header_str(h, &header::ACCESS_CONTROL_MAX_AGE), "600");
    let (_, h, _) = call(
        app,
        "/api/v2/spans",
        &[JSON, ("origin", "https://evil.com")],
        b"[]".to_vec(),
    )
    .await;
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn start_serves_on_loopback_until_cancelled() {
    let config = ZipkinConfig {
        endpoint: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let rec = Arc::new(Recorder::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = super::super::start(&config, rec.clone(), shutdown.clone())
        .await
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let body = V2_OTEL.as_bytes();
    let head = format!(
        "POST /api/v2/spans HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
    {
        let batches = rec.batches.lock().unwrap();
        assert_eq!(
            batches[0].context.client_addr,
            Some("127.0.0.1".parse().unwrap())
        );
    }
    // A second receiver on the same port names the address it could not bind.
    let taken = ZipkinConfig {
        endpoint: server.addr.to_string(),
        ..Default::default()
    };
    let err = super::super::start(&taken, rec.clone(), shutdown.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&server.addr.to_string()), "{err}");
    shutdown.cancel();
    server.handle.await.unwrap().unwrap();
}
