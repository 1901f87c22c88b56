//! Sending [`RawTraces`] unchanged: a tonic codec whose encoder writes the request bytes as
//! they are (the same `TraceService/Export` call, compression and metadata as the generated
//! client) and whose decoder reads the usual `ExportTraceServiceResponse`.

use bytes::{BufMut, Bytes};
use osprey_model::otlp::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// The gRPC method the generated trace client calls.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Request: pre-encoded bytes, in chunks that are written one after the other. Response: a decoded `ExportTraceServiceResponse`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawTraceCodec;

pub struct BytesEncoder;
pub struct ResponseDecoder;

impl Encoder for BytesEncoder {
    type Item = Vec<Bytes>;
    type Error = Status;
    fn encode(&mut self, item: Vec<Bytes>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.iter().map(Bytes::len).sum());
        for chunk in item {
            dst.put(chunk);
        }
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Codec for RawTraceCodec {
    type Encode = Vec<Bytes>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = BytesEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}
