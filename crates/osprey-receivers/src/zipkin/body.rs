//! Request bodies: which format a `Content-Type` names on each endpoint, and decompression
//! per `Content-Encoding` with the size limit applied to the decompressed output too.

use super::config::HttpServerSettings;
use bytes::Bytes;
use std::io::Read;

/// The two Zipkin endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V1,
    V2,
}

/// A wire format this receiver decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    V1Json,
    V2Json,
    V2Proto,
}

/// Why a body was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// HTTP 415.
    #[error("{0}")]
    Unsupported(String),
    /// HTTP 413.
    #[error("request body is larger than the limit of {limit} bytes{}", if *.decompressed { " after decompression" } else { "" })]
    TooLarge { limit: usize, decompressed: bool },
    /// HTTP 400.
    #[error("{0}")]
    Corrupt(String),
}

/// The format of a body sent to `api` with this `Content-Type`. Like Zipkin clients expect,
/// a missing type (and `text/plain`) means JSON.
pub fn format_for(api: Api, content_type: &str) -> Result<Format, BodyError> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = media.is_empty()
        || media == "application/json"
        || media == "text/plain"
        || media.ends_with("+json");
    match api {
        Api::V2 if media == "application/x-protobuf" || media == "application/protobuf" => {
            Ok(Format::V2Proto)
        }
        Api::V2 if json => Ok(Format::V2Json),
        Api::V1 if json => Ok(Format::V1Json),
        Api::V1 if media == "application/x-thrift" => Err(BodyError::Unsupported(
            "Zipkin v1 Thrift is not supported; send v1 JSON (application/json) or use /api/v2/spans"
                .into(),
        )),
        Api::V1 => Err(BodyError::Unsupported(format!(
            "unsupported Content-Type `{content_type}` on /api/v1/spans; use application/json"
        ))),
        Api::V2 => Err(BodyError::Unsupported(format!(
            "unsupported Content-Type `{content_type}` on /api/v2/spans; use application/json or application/x-protobuf"
        ))),
    }
}

/// Decompresses `body` per `content_encoding`, refusing output over `limit` bytes.
pub fn decompress(
    settings: &HttpServerSettings,
    content_encoding: &str,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let enc = content_encoding.trim().to_ascii_lowercase();
    let enc = if enc == "x-gzip" {
        "gzip".to_string()
    } else {
        enc
    };
    if enc.is_empty() || enc == "identity" {
        return Ok(body);
    }
    if !settings.accepts_encoding(&enc) {
        return Err(BodyError::Unsupported(format!(
            "unsupported Content-Encoding `{content_encoding}`"
        )));
    }
    match enc.as_str() {
        "gzip" => inflate(
            flate2::read::MultiGzDecoder::new(body.as_ref()),
            limit,
            "gzip",
        ),
        "zlib" => inflate(flate2::read::ZlibDecoder::new(body.as_ref()), limit, "zlib"),
        // HTTP's "deflate" is zlib-wrapped, but some clients send raw deflate.
        "deflate" => inflate(
            flate2::read::ZlibDecoder::new(body.as_ref()),
            limit,
            "deflate",
        )
        .or_else(|e| match e {
            BodyError::Corrupt(_) => inflate(
                flate2::read::DeflateDecoder::new(body.as_ref()),
                limit,
                "deflate",
            ),
            other => Err(other),
        }),
        "snappy" => {
            let len = snap::raw::decompress_len(&body)
                .map_err(|e| BodyError::Corrupt(format!("invalid snappy body: {e}")))?;
            if len > limit {
                return Err(BodyError::TooLarge {
                    limit,
                    decompressed: true,
                });
            }
            snap::raw::Decoder::new()
                .decompress_vec(&body)
                .map(Bytes::from)
                .map_err(|e| BodyError::Corrupt(format!("invalid snappy body: {e}")))
        }
        "x-snappy-framed" => inflate(
            snap::read::FrameDecoder::new(body.as_ref()),
            limit,
            "x-snappy-framed",
        ),
        other => Err(BodyError::Unsupported(format!(
            "unsupported Content-Encoding `{other}`"
        ))),
    }
}

fn inflate(reader: impl Read, limit: usize, name: &str) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Corrupt(format!("invalid {name} body: {e}")))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge {
            limit,
            decompressed: true,
        });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn content_types() {
        assert_eq!(
            format_for(Api::V2, "application/json; charset=utf-8"),
            Ok(Format::V2Json)
        );
        assert_eq!(format_for(Api::V2, ""), Ok(Format::V2Json));
        assert_eq!(
            format_for(Api::V2, "application/x-protobuf"),
            Ok(Format::V2Proto)
        );
        assert_eq!(format_for(Api::V1, "application/json"), Ok(Format::V1Json));
        assert!(
            matches!(format_for(Api::V1, "application/x-thrift"), Err(BodyError::Unsupported(m)) if m.contains("Thrift"))
        );
        assert!(format_for(Api::V1, "application/x-protobuf").is_err());
        assert!(format_for(Api::V2, "application/xml").is_err());
    }

    #[test]
    fn encodings_and_limits() {
        let s = HttpServerSettings::default();
        let plain = b"[{\"a\":1}]".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = Bytes::from(gz.finish().unwrap());
        assert_eq!(decompress(&s, "gzip", gz.clone(), 1 << 20).unwrap(), plain);
        assert_eq!(
            decompress(&s, "gzip", gz, 10),
            Err(BodyError::TooLarge {
                limit: 10,
                decompressed: true
            })
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&plain).unwrap();
        let raw = Bytes::from(raw.finish().unwrap());
        assert_eq!(decompress(&s, "deflate", raw, 1 << 20).unwrap(), plain);
        let sn = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        assert_eq!(decompress(&s, "snappy", sn.into(), 1 << 20).unwrap(), plain);
        assert!(matches!(
            decompress(&s, "br", Bytes::new(), 10),
            Err(BodyError::Unsupported(_))
        ));
        assert!(matches!(
            decompress(&s, "gzip", Bytes::from_static(b"nope"), 10),
            Err(BodyError::Corrupt(_))
        ));
        let only_gzip = HttpServerSettings {
            compression_algorithms: Some(vec!["gzip".into()]),
            ..Default::default()
        };
        assert!(matches!(
            decompress(&only_gzip, "zlib", Bytes::new(), 10),
            Err(BodyError::Unsupported(_))
        ));
    }
}
