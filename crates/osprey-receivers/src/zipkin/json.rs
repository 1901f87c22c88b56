//! Zipkin v2 JSON (`POST /api/v2/spans`, a JSON array of spans as in zipkin-api's
//! `zipkin2-api.yaml`) decoded into the [`ZipkinSpan`] model, plus the JSON pieces the v1
//! decoder shares (endpoints, lenient numbers and tag maps).

use super::model::{
    parse_parent_id, parse_span_id, parse_trace_id, Annotation, DecodeError, Endpoint, Kind,
    ZipkinSpan,
};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// Decodes a v2 JSON body. `null` entries are skipped, as upstream does.
pub fn decode_v2(body: &[u8]) -> Result<Vec<ZipkinSpan>, DecodeError> {
    let spans: Option<Vec<Option<JsonSpan>>> = parse_json(body, "Zipkin v2 JSON")?;
    spans
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i, s)))
        .map(|(i, s)| s.into_model(i))
        .collect()
}

/// Parses `body` as `T`, naming the JSON path of the first problem.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, DecodeError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            DecodeError::new(format!("invalid {what}: {inner}"))
        } else {
            DecodeError::new(format!("invalid {what} at {path}: {inner}"))
        }
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: Option<String>,
    parent_id: Option<String>,
    id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    #[serde(default, deserialize_with = "micros")]
    timestamp: u64,
    #[serde(default, deserialize_with = "micros")]
    duration: u64,
    local_endpoint: Option<JsonEndpoint>,
    remote_endpoint: Option<JsonEndpoint>,
    annotations: Option<Vec<JsonAnnotation>>,
    tags: Option<Tags>,
}

#[derive(Deserialize)]
struct JsonAnnotation {
    #[serde(default, deserialize_with = "micros")]
    timestamp: u64,
    value: Option<String>,
}

/// A Zipkin JSON endpoint (the same in v1 and v2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JsonEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<i64>,
}

impl JsonEndpoint {
    /// The model endpoint; `field` names it in errors (`span[0].localEndpoint`).
    pub(crate) fn into_model(self, field: &str) -> Result<Endpoint, DecodeError> {
        let port = match self.port.unwrap_or(0) {
            p if p <= 0 => 0,
            p => u16::try_from(p)
                .map_err(|_| DecodeError::new(format!("{field}.port {p} is not a TCP/UDP port")))?,
        };
        Ok(Endpoint {
            service_name: self.service_name.unwrap_or_default(),
            ipv4: Endpoint::parse_ipv4(
                self.ipv4.as_deref().unwrap_or(""),
                &format!("{field}.ipv4"),
            )?,
            ipv6: Endpoint::parse_ipv6(
                self.ipv6.as_deref().unwrap_or(""),
                &format!("{field}.ipv6"),
            )?,
            port,
        })
    }
}

impl JsonSpan {
    fn into_model(self, i: usize) -> Result<ZipkinSpan, DecodeError> {
        let field = |name: &str| format!("span[{i}].{name}");
        let trace_id = match &self.trace_id {
            Some(t) => parse_trace_id(t, &field("traceId"))?,
            None => return Err(DecodeError::new(format!("{} is missing", field("traceId")))),
        };
        let id = match &self.id {
            Some(t) => parse_span_id(t, &field("id"))?,
            None => return Err(DecodeError::new(format!("{} is missing", field("id")))),
        };
        let parent_id =
            parse_parent_id(self.parent_id.as_deref().unwrap_or(""), &field("parentId"))?;
        let endpoint =
            |e: Option<JsonEndpoint>, name: &str| -> Result<Option<Endpoint>, DecodeError> {
                Ok(match e {
                    Some(e) => e.into_model(&field(name))?.non_empty(),
                    None => None,
                })
            };
        Ok(ZipkinSpan {
            trace_id,
            id,
            parent_id,
            kind: self.kind.as_deref().and_then(Kind::parse),
            name: self.name.unwrap_or_default(),
            timestamp_us: self.timestamp,
            duration_us: self.duration,
            local_endpoint: endpoint(self.local_endpoint, "localEndpoint")?,
            remote_endpoint: endpoint(self.remote_endpoint, "remoteEndpoint")?,
            annotations: self
                .annotations
                .unwrap_or_default()
                .into_iter()
                .map(|a| Annotation {
                    timestamp_us: a.timestamp,
                    value: a.value.unwrap_or_default(),
                })
                .collect(),
            tags: self.tags.map(|t| t.0).unwrap_or_default(),
        })
    }
}

/// A JSON number of microseconds; `null` and negatives are 0 (absent), fractions truncated.
pub(crate) fn micros<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n: Option<serde_json::Number> = Option::deserialize(d)?;
    Ok(match n {
        None => 0,
        Some(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f > 0.0).map(|f| f as u64))
            .unwrap_or(0),
    })
}

/// A scalar as Zipkin tag text: strings as they are, numbers and booleans spelled out.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A tag map in arrival order. Values should be strings; numbers and booleans are spelled
/// out, nulls skipped; nested values are refused.
pub(crate) struct Tags(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TagsVisitor;
        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = Tags;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string tags")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    if v.is_null() {
                        continue;
                    }
                    let Some(text) = scalar_text(&v) else {
                        return Err(serde::de::Error::custom(format!(
                            "tag {k:?} must be a string, not {v}"
                        )));
                    };
                    match out.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = text,
                        None => out.push((k, text)),
                    }
                }
                Ok(Tags(out))
            }
        }
        d.deserialize_map(TagsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zipkin::model::to_hex;

    /// The example from zipkin-api's `zipkin2-api.yaml` / the Zipkin quickstart.
    const DOCS_EXAMPLE: &str = r#"[{
      "id": "352bff9a74ca9ad2",
      "traceId": "5af7183fb1d4cf5f",
      "parentId": "6b221d5bc9e6496c",
      "name": "get /api",
      "timestamp": 1556604172355737,
      "duration": 1431,
      "kind": "SERVER",
      "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.1", "port": 3306},
      "remoteEndpoint": {"ipv4": "172.19.0.2", "port": 58648},
      "tags": {"http.method": "GET", "http.path": "/api"}
    }]"#;

    #[test]
    fn decodes_the_docs_example() {
        let spans = decode_v2(DOCS_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(to_hex(&s.trace_id), "00000000000000005af7183fb1d4cf5f");
        assert_eq!(to_hex(&s.id), "352bff9a74ca9ad2");
        assert_eq!(
            s.parent_id.map(|p| to_hex(&p)).as_deref(),
            Some("6b221d5bc9e6496c")
        );
        assert_eq!(s.kind, Some(Kind::Server));
        assert_eq!((s.timestamp_us, s.duration_us), (1556604172355737, 1431));
        let local = s.local_endpoint.as_ref().unwrap();
        assert_eq!(local.service_name, "backend");
        assert_eq!(local.ipv4, Some("192.168.99.1".parse().unwrap()));
        assert_eq!(local.port, 3306);
        assert_eq!(s.remote_endpoint.as_ref().unwrap().port, 58648);
        assert_eq!(s.tag("http.path"), Some("/api"));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = decode_v2(b"{\"not\": \"an array\"}").unwrap_err();
        assert!(
            e.0.starts_with("invalid Zipkin v2 JSON: invalid type: map"),
            "{e}"
        );
        let e = decode_v2(br#"[{"traceId": "abc", "id": 5}]"#).unwrap_err();
        assert!(e.0.contains("at [0].id: invalid type: integer `5`"), "{e}");
        let e = decode_v2(br#"[{"traceId": "zz", "id": "1"}]"#).unwrap_err();
        assert_eq!(e.0, "span[0].traceId \"zz\" is not hexadecimal");
        let e = decode_v2(br#"[{"id": "1"}]"#).unwrap_err();
        assert_eq!(e.0, "span[0].traceId is missing");
        let e = decode_v2(br#"[{"traceId":"1","id":"1","localEndpoint":{"ipv4":"300.1.1.1"}}]"#)
            .unwrap_err();
        assert!(e.0.contains("span[0].localEndpoint.ipv4"), "{e}");
        let e = decode_v2(br#"[{"traceId":"1","id":"1","tags":{"a":{"b":1}}}]"#).unwrap_err();
        assert!(e.0.contains("tag \"a\" must be a string"), "{e}");
        assert!(decode_v2(b"[").is_err());
    }

    #[test]
    fn lenient_where_harmless() {
        let spans = decode_v2(
            br#"[null, {"traceId":"1","id":"2","kind":"client","timestamp":1.5e15,
               "tags":{"n":5,"b":true,"z":null},"localEndpoint":{}}]"#,
        )
        .unwrap();
        let s = &spans[0];
        assert_eq!(s.kind, Some(Kind::Client));
        assert_eq!(s.timestamp_us, 1_500_000_000_000_000);
        assert_eq!(
            s.tags,
            vec![("n".into(), "5".into()), ("b".into(), "true".into())]
        );
        assert_eq!(s.local_endpoint, None);
        assert!(decode_v2(b"null").unwrap().is_empty());
    }
}
