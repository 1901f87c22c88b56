//! Config pieces the `otlp` and `otlphttp` exporters share, as the Collector's `configgrpc` /
//! `confighttp` spell them: the `headers` map (or `[{name, value}]` list) and the
//! `compression` type.

use osprey_pipeline::ConfigError;
use serde::{Deserialize, Deserializer};
use std::io::Write;

/// `serde(deserialize_with)` for optional blocks the Collector enables by their mere presence
/// (`rotation:`, `keepalive:`): an empty body means "on, with defaults".
pub fn present_means_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// Extra request headers (`headers:`), in configuration order. Accepts a map
/// (`headers: {x-api-key: k}`) or the Collector's list form (`[{name: k, value: v}]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Pair {
            name: String,
            value: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Map(std::collections::BTreeMap<String, String>),
            List(Vec<Pair>),
            Null(()),
        }
        Ok(
            match Raw::deserialize(d).map_err(|_| {
                serde::de::Error::custom(
                    "expected a map of header names to string values, or a list of {name, value}",
                )
            })? {
                Raw::Map(m) => Headers(m.into_iter().collect()),
                Raw::List(l) => Headers(l.into_iter().map(|p| (p.name, p.value)).collect()),
                Raw::Null(()) => Headers::default(),
            },
        )
    }
}

impl Headers {
    /// Checks that every name and value is a valid HTTP header (`headers.<name>`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in &self.0 {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::new(
                    format!("headers.{name}"),
                    "not a valid header name",
                ));
            }
            if http::HeaderValue::from_str(value).is_err() {
                return Err(ConfigError::new(
                    format!("headers.{name}"),
                    "the value is not a valid header value",
                ));
            }
        }
        Ok(())
    }
}

/// `compression:` as `configcompression.Type` spells it. Empty and `none` mean none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zlib,
    Deflate,
    Snappy,
    Zstd,
    Lz4,
}

impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        Compression::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unsupported compression type {text:?} (expected gzip, zlib, deflate, snappy, zstd, lz4 or none)"
            ))
        })
    }
}

impl Compression {
    pub fn parse(text: &str) -> Option<Compression> {
        Some(match text {
            "" | "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "zlib" => Compression::Zlib,
            "deflate" => Compression::Deflate,
            "snappy" => Compression::Snappy,
            "zstd" => Compression::Zstd,
            "lz4" => Compression::Lz4,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zlib => "zlib",
            Compression::Deflate => "deflate",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }

    /// Compresses a request body for HTTP (`Content-Encoding` = [`Compression::as_str`]).
    /// `None` for the identity encoding.
    pub fn compress(self, body: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        use flate2::write::{GzEncoder, ZlibEncoder};
        let level = flate2::Compression::default();
        Ok(Some(match self {
            Compression::None => return Ok(None),
            Compression::Gzip => {
                let mut e = GzEncoder::new(Vec::with_capacity(body.len() / 4), level);
                e.write_all(body)?;
                e.finish()?
            }
            // Go's `compress/zlib` writer serves both names in confighttp.
            Compression::Zlib | Compression::Deflate => {
                let mut e = ZlibEncoder::new(Vec::with_capacity(body.len() / 4), level);
                e.write_all(body)?;
                e.finish()?
            }
            Compression::Zstd => zstd::bulk::compress(body, 0)?,
            Compression::Snappy | Compression::Lz4 => {
                return Err(std::io::Error::other(format!(
                    "{} request compression is not supported",
                    self.as_str()
                )))
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct C {
        headers: Headers,
        compression: Compression,
    }

    #[test]
    fn headers_map_and_list_forms() {
        let c: C = serde_yaml::from_str("headers: {b: '2', a: '1'}").unwrap();
        assert_eq!(
            c.headers.0,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        let c: C =
            serde_yaml::from_str("headers: [{name: x-key, value: secret}]\ncompression: zstd")
                .unwrap();
        assert_eq!(c.headers.0, vec![("x-key".into(), "secret".into())]);
        assert_eq!(c.compression, Compression::Zstd);
        assert!(serde_yaml::from_str::<C>("compression: brotli").is_err());
        let bad = Headers(vec![("bad header".into(), "v".into())]);
        assert_eq!(bad.validate().unwrap_err().path, "headers.bad header");
    }

    #[test]
    fn gzip_and_zstd_round_trip() {
        use std::io::Read;
        let body = b"hello hello hello hello".repeat(10);
        let gz = Compression::Gzip.compress(&body).unwrap().unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let z = Compression::Zstd.compress(&body).unwrap().unwrap();
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), body);
        assert!(Compression::None.compress(&body).unwrap().is_none());
    }
}
