//! Turning an HTTP body into a trace request: size limits, decompression, protobuf or JSON.
//!
//! Limits apply to the decompressed size, read incrementally, so a small gzip bomb is refused
//! after reading at most `limit + 1` bytes of output instead of inflating it whole.

use super::IngestError;
use bytes::Bytes;
use osprey_model::TraceRequest;
use prost::Message;
use std::io::Read;

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From a `Content-Type` header value (parameters such as `charset` are ignored).
    pub fn from_content_type(ct: &str) -> Option<Encoding> {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a body could not be turned into a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than the limit of {limit} bytes{}", if *.after_decompression { " after decompression" } else { "" })]
    TooLarge {
        limit: usize,
        after_decompression: bool,
    },
    #[error("unsupported Content-Encoding `{0}`; use gzip, deflate or none")]
    UnsupportedEncoding(String),
    #[error("request body is not valid {encoding}: {reason}")]
    Corrupt {
        encoding: &'static str,
        reason: String,
    },
}

impl From<BodyError> for IngestError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { .. } => IngestError::TooLarge(e.to_string()),
            other => IngestError::BadRequest(other.to_string()),
        }
    }
}

/// Decompresses `body` per its `Content-Encoding`, refusing output over `limit` bytes.
pub fn decompress(
    content_encoding: Option<&str>,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let enc = content_encoding
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match enc.as_str() {
        "" | "identity" => {
            if body.len() > limit {
                return Err(BodyError::TooLarge {
                    limit,
                    after_decompression: false,
                });
            }
            Ok(body)
        }
        "gzip" | "x-gzip" => inflate(
            flate2::read::MultiGzDecoder::new(body.as_ref()),
            limit,
            "gzip",
        ),
        "deflate" => inflate(
            flate2::read::ZlibDecoder::new(body.as_ref()),
            limit,
            "deflate",
        ),
        other => Err(BodyError::UnsupportedEncoding(other.to_string())),
    }
}

fn inflate(reader: impl Read, limit: usize, encoding: &'static str) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Corrupt {
            encoding,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(BodyError::TooLarge {
            limit,
            after_decompression: true,
        });
    }
    Ok(Bytes::from(out))
}

/// Decodes an `ExportTraceServiceRequest` in the given encoding.
pub fn decode(encoding: Encoding, body: &[u8]) -> Result<TraceRequest, BodyError> {
    match encoding {
        Encoding::Protobuf => TraceRequest::decode(body).map_err(|e| BodyError::Corrupt {
            encoding: "protobuf ExportTraceServiceRequest",
            reason: e.to_string(),
        }),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| BodyError::Corrupt {
            encoding: "OTLP/JSON ExportTraceServiceRequest",
            reason: e.to_string(),
        }),
    }
}

/// A traces body: decoded, or a protobuf body left undecoded because a skim found it clean.
#[derive(Debug)]
pub enum TraceBody {
    Decoded(TraceRequest),
    Clean { spans: usize },
}

/// [`decode`] for the fast path: a protobuf body that sanitizing would not change (per
/// `limits`) and whose spans all start at or after `cutoff_ns` stays undecoded.
pub fn decode_traces(
    encoding: Encoding,
    body: &[u8],
    limits: &osprey_model::Limits,
    cutoff_ns: Option<u64>,
) -> Result<TraceBody, BodyError> {
    if encoding == Encoding::Protobuf {
        if let Ok(s) = osprey_model::skim::skim(body, limits) {
            if s.clean && cutoff_ns.is_none_or(|c| s.oldest_start >= c) {
                return Ok(TraceBody::Clean { spans: s.spans });
            }
        }
    }
    decode(encoding, body).map(TraceBody::Decoded)
}

/// Decodes an `ExportMetricsServiceRequest` in the given encoding.
pub fn decode_metrics(
    encoding: Encoding,
    body: &[u8],
) -> Result<osprey_pipeline::MetricsRequest, BodyError> {
    decode_any(encoding, body, "ExportMetricsServiceRequest")
}

/// Decodes an `ExportLogsServiceRequest` in the given encoding.
pub fn decode_logs(
    encoding: Encoding,
    body: &[u8],
) -> Result<osprey_pipeline::LogsRequest, BodyError> {
    decode_any(encoding, body, "ExportLogsServiceRequest")
}

fn decode_any<T>(encoding: Encoding, body: &[u8], what: &'static str) -> Result<T, BodyError>
where
    T: Message + Default + serde::de::DeserializeOwned,
{
    match encoding {
        Encoding::Protobuf => T::decode(body).map_err(|e| BodyError::Corrupt {
            encoding: "protobuf",
            reason: format!("{what}: {e}"),
        }),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| BodyError::Corrupt {
            encoding: "OTLP/JSON",
            reason: format!("{what}: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = enc.write_all(data);
        Bytes::from(enc.finish().unwrap_or_default())
    }

    #[test]
    fn gzip_bomb_is_refused_without_inflating_it() {
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        let err = decompress(Some("gzip"), bomb, 1 << 20);
        assert_eq!(
            err,
            Err(BodyError::TooLarge {
                limit: 1 << 20,
                after_decompression: true
            })
        );
    }

    #[test]
    fn gzip_round_trip_and_limits() {
        let body = gzip(b"hello");
        assert_eq!(
            decompress(Some("GZIP"), body, 5).ok(),
            Some(Bytes::from_static(b"hello"))
        );
        assert!(matches!(
            decompress(None, Bytes::from_static(b"123456"), 5),
            Err(BodyError::TooLarge { .. })
        ));
        assert!(matches!(
            decompress(Some("br"), Bytes::new(), 5),
            Err(BodyError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            decompress(Some("gzip"), Bytes::from_static(b"not gzip"), 5),
            Err(BodyError::Corrupt { .. })
        ));
    }

    #[test]
    fn otlp_json_follows_the_spec() {
        // Hex ids, integer enums, int64 as strings, every AnyValue kind, unknown fields ignored.
        let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
          "scopeSpans":[{"scope":{"name":"manual","version":"1.2"},"spans":[{
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"",
            "name":"GET /cart","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
            "someFutureField":{"x":1},
            "attributes":[{"key":"i","value":{"intValue":"42"}},{"key":"d","value":{"doubleValue":1.5}},
              {"key":"b","value":{"boolValue":true}},{"key":"a","value":{"arrayValue":{"values":[{"stringValue":"x"}]}}},
              {"key":"k","value":{"kvlistValue":{"values":[{"key":"n","value":{"intValue":7}}]}}},
              {"key":"y","value":{"bytesValue":"aGk="}}],
            "status":{"code":2,"message":"boom"}}]}]}]}"#;
        let req = decode(Encoding::Json, json);
        let req = req.unwrap_or_default();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.attributes.len(), 6);
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
        let rendered: Vec<String> = span
            .attributes
            .iter()
            .map(|kv| osprey_model::anyvalue::render(kv.value.as_ref()))
            .collect();
        assert_eq!(
            rendered,
            vec!["42", "1.5", "true", r#"["x"]"#, r#"{"n":7}"#, r#""aGk=""#]
        );
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let e = decode(Encoding::Json, b"{\"resourceSpans\": [")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("OTLP/JSON") && e.contains("EOF"), "{e}");
        let e = decode(Encoding::Protobuf, &[0x0a, 0xff, 0xff])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("protobuf"), "{e}");
        // A span name (field 5 of Span) holding invalid UTF-8.
        let span = [0x2a, 0x02, 0xc3, 0x28];
        let scope = [&[0x12, span.len() as u8][..], &span].concat();
        let rs = [&[0x12, scope.len() as u8][..], &scope].concat();
        let req = [&[0x0a, rs.len() as u8][..], &rs].concat();
        let e = decode(Encoding::Protobuf, &req)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("UTF-8"), "{e}");
    }
}
