//! `TraceService/Export` served with a codec that keeps the request's bytes: the receiver
//! skims them ([`osprey_model::skim`]) and passes a clean request on undecoded
//! ([`TraceIngest::export_bytes`]). Compression, the size limit and the status codes are those
//! of the generated service it replaces.

use super::grpc::to_status;
use super::TraceIngest;
use bytes::{Buf, Bytes};
use osprey_model::otlp::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{
    http, Body, BoxFuture, CompressionEncoding, EnabledCompressionEncodings, StdError,
};
use tonic::{Response, Status};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Request: the message bytes as received (decompressed). Response: prost-encoded.
#[derive(Debug, Clone, Copy, Default)]
struct RawRequestCodec;

struct ResponseEncoder;
struct BytesDecoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawRequestCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = BytesDecoder;
    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }
    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

/// The trace service (gzip in and out, `max_decoding_message_size` = the receiver's limit).
#[derive(Clone)]
pub struct RawTraceServer {
    ingest: TraceIngest,
    limit: usize,
}

impl RawTraceServer {
    pub fn new(ingest: TraceIngest) -> Self {
        let limit = ingest.config().max_request_bytes;
        RawTraceServer { ingest, limit }
    }
}

impl tonic::server::NamedService for RawTraceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

struct ExportSvc(TraceIngest);

impl tonic::server::UnaryService<Bytes> for ExportSvc {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;
    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            let client = request.remote_addr().map(|a| a.ip());
            match ingest.export_bytes(request.into_inner(), client).await {
                Ok(outcome) => Ok(Response::new(outcome.into_response())),
                Err(e) => Err(to_status(&e)),
            }
        })
    }
}

impl<B> tower::Service<http::Request<B>> for RawTraceServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!("no method {}", req.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        if let Err(e) = self.ingest.check_room() {
            // Trailers-only answer; the unread body is discarded with the stream.
            let status = to_status(&e);
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let (ingest, limit) = (self.ingest.clone(), self.limit);
        Box::pin(async move {
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(RawRequestCodec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(limit), None);
            Ok(grpc.unary(ExportSvc(ingest), req).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::OtlpConfig;
    use super::*;
    use bytes::BufMut;
    use osprey_model::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
    use osprey_pipeline::Payload;
    use std::sync::Arc;

    async fn serve(rec: Arc<Recorder>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ingest = TraceIngest::new(rec, OtlpConfig::default());
        tokio::spawn(super::super::grpc::serve_listener(
            listener,
            ingest,
            std::future::pending(),
        ));
        format!("http://{addr}")
    }

    /// Sends arbitrary bytes as the request message.
    #[derive(Clone, Copy, Default)]
    struct Garbage;
    struct GarbageEnc;
    impl Encoder for GarbageEnc {
        type Item = Bytes;
        type Error = Status;
        fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put(item);
            Ok(())
        }
    }
    struct AnyDec;
    impl Decoder for AnyDec {
        type Item = ();
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
            src.advance(src.remaining());
            Ok(Some(()))
        }
    }
    impl Codec for Garbage {
        type Encode = Bytes;
        type Decode = ();
        type Encoder = GarbageEnc;
        type Decoder = AnyDec;
        fn encoder(&mut self) -> GarbageEnc {
            GarbageEnc
        }
        fn decoder(&mut self) -> AnyDec {
            AnyDec
        }
    }

    #[tokio::test]
    async fn clean_requests_pass_raw_and_others_are_decoded() {
        let rec = Arc::new(Recorder::default());
        let url = serve(rec.clone()).await;
        let mut client = TraceServiceClient::connect(url.clone())
            .await
            .unwrap()
            .send_compressed(CompressionEncoding::Gzip);
        let clean = request(vec![span(1, 1), span(1, 2)]);
        let resp = client.export(clean.clone()).await.unwrap().into_inner();
        assert_eq!(resp.partial_success, None);
        let mut bad = span(1, 3);
        bad.span_id = vec![0; 8];
        let resp = client
            .export(request(vec![span(1, 4), bad]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.partial_success.map(|p| p.rejected_spans), Some(1));
        let got = rec.got.lock().map(|g| g.clone()).unwrap_or_default();
        let Payload::RawTraces(raw) = &got[0].payload else {
            panic!("expected raw, got {:?}", got[0].payload)
        };
        assert_eq!(raw.to_bytes().as_ref(), clean.encode_to_vec().as_slice());
        assert!(got[0].context.client_addr.is_some());
        assert_eq!(
            got[1].trace_request().map(osprey_model::span_count),
            Some(1)
        );

        let mut grpc = tonic::client::Grpc::new(
            tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect_lazy(),
        );
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
        let junk = Bytes::from_static(&[0x0a, 0x05, 0x12, 0x03, 0x1a, 0x01, 0xff]);
        let err = grpc
            .unary(tonic::Request::new(junk), path, Garbage)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message()
                .starts_with("failed to decode Protobuf message"),
            "{}",
            err.message()
        );
        assert_eq!(rec.got.lock().map(|g| g.len()).unwrap_or(0), 2);
    }

    #[tokio::test]
    async fn a_full_pipeline_refuses_before_reading() {
        let rec = Arc::new(Recorder::default());
        rec.no_room
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let url = serve(rec.clone()).await;
        let mut client = TraceServiceClient::connect(url).await.unwrap();
        let err = client.export(request(vec![span(1, 1)])).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(
            err.message().contains("pipeline is full"),
            "{}",
            err.message()
        );
        assert_eq!(rec.got.lock().map(|g| g.len()).unwrap_or(9), 0);
        // Room again: the same connection carries the next request.
        rec.no_room
            .store(false, std::sync::atomic::Ordering::Relaxed);
        client.export(request(vec![span(1, 2)])).await.unwrap();
        assert_eq!(rec.got.lock().map(|g| g.len()).unwrap_or(0), 1);
    }
}
