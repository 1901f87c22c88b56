//! Zipkin v1 JSON (`POST /api/v1/spans`) decoded and converted to the v2 model the way
//! Zipkin's own `V1SpanConverter` does: the core annotations (`cs`, `sr`, `ss`, `cr`, `ms`,
//! `mr`, `ws`, `wr`) become kind, timestamp and duration; a span shared by client and server
//! splits in two; binary annotations become tags, except the address annotations `ca`, `sa`
//! and `ma`, which become the remote endpoint.

use super::json::{micros, parse_json, scalar_text, JsonEndpoint};
use super::model::{
    parse_parent_id, parse_span_id, parse_trace_id, Annotation, DecodeError, Endpoint, Kind,
    ZipkinSpan,
};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1Span {
    trace_id: Option<String>,
    /// Old 128-bit form: the high half separately.
    trace_id_high: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    name: Option<String>,
    #[serde(default, deserialize_with = "micros")]
    timestamp: u64,
    #[serde(default, deserialize_with = "micros")]
    duration: u64,
    annotations: Option<Vec<V1Annotation>>,
    binary_annotations: Option<Vec<V1BinaryAnnotation>>,
}

#[derive(Deserialize)]
struct V1Annotation {
    #[serde(default, deserialize_with = "micros")]
    timestamp: u64,
    value: Option<String>,
    endpoint: Option<JsonEndpoint>,
}

#[derive(Deserialize)]
struct V1BinaryAnnotation {
    key: Option<String>,
    value: Option<Value>,
    endpoint: Option<JsonEndpoint>,
}

/// A decoded core annotation.
#[derive(Clone)]
struct Core {
    timestamp: u64,
    value: &'static str,
    endpoint: Endpoint,
}

/// Decodes a v1 JSON body and converts each span to one or more v2 spans.
pub fn decode_v1(body: &[u8]) -> Result<Vec<ZipkinSpan>, DecodeError> {
    let spans: Option<Vec<Option<V1Span>>> = parse_json(body, "Zipkin v1 JSON")?;
    let mut out = Vec::new();
    for (i, span) in spans.unwrap_or_default().into_iter().enumerate() {
        if let Some(span) = span {
            Converter::default().convert(span, i, &mut out)?;
        }
    }
    Ok(out)
}

fn endpoint(e: Option<JsonEndpoint>, field: &str) -> Result<Option<Endpoint>, DecodeError> {
    match e {
        Some(e) => Ok(e.into_model(field)?.non_empty()),
        None => Ok(None),
    }
}

/// The state of converting one v1 span; `spans[0]` is the first v2 span.
#[derive(Default)]
struct Converter {
    spans: Vec<ZipkinSpan>,
    cs: Option<Core>,
    sr: Option<Core>,
    ss: Option<Core>,
    cr: Option<Core>,
    ms: Option<Core>,
    mr: Option<Core>,
    ws: Option<Core>,
    wr: Option<Core>,
}

impl Converter {
    fn convert(
        mut self,
        src: V1Span,
        i: usize,
        out: &mut Vec<ZipkinSpan>,
    ) -> Result<(), DecodeError> {
        let field = |name: &str| format!("span[{i}].{name}");
        let mut trace_id = match &src.trace_id {
            Some(t) => parse_trace_id(t, &field("traceId"))?,
            None => return Err(DecodeError::new(format!("{} is missing", field("traceId")))),
        };
        if let Some(high) = src.trace_id_high.as_deref().filter(|h| !h.is_empty()) {
            if trace_id[..8] == [0; 8] {
                let high = parse_parent_id(high, &field("traceIdHigh"))?.unwrap_or_default();
                trace_id[..8].copy_from_slice(&high);
            }
        }
        let id = match &src.id {
            Some(t) => parse_span_id(t, &field("id"))?,
            None => return Err(DecodeError::new(format!("{} is missing", field("id")))),
        };
        let parent_id =
            parse_parent_id(src.parent_id.as_deref().unwrap_or(""), &field("parentId"))?;
        self.spans.push(ZipkinSpan {
            trace_id,
            id,
            parent_id,
            name: src.name.clone().unwrap_or_default(),
            ..Default::default()
        });
        self.process_annotations(&src, i)?;
        self.process_binary_annotations(&src, i)?;
        for mut span in self.spans {
            span.annotations
                .sort_by(|a, b| (a.timestamp_us, &a.value).cmp(&(b.timestamp_us, &b.value)));
            out.push(span);
        }
        Ok(())
    }

    /// The span recording for `e` (the first when `e` is absent), created if needed.
    fn for_endpoint(&mut self, e: Option<&Endpoint>) -> usize {
        let Some(e) = e else { return 0 };
        for (idx, span) in self.spans.iter_mut().enumerate() {
            match &span.local_endpoint {
                None => {
                    span.local_endpoint = Some(e.clone());
                    return idx;
                }
                Some(local) if local.service_name == e.service_name => return idx,
                Some(_) => {}
            }
        }
        self.new_span(e)
    }

    /// A new v2 span with the first span's identity, recorded by `e`.
    fn new_span(&mut self, e: &Endpoint) -> usize {
        let first = &self.spans[0];
        let span = ZipkinSpan {
            trace_id: first.trace_id,
            id: first.id,
            parent_id: first.parent_id,
            name: first.name.clone(),
            local_endpoint: Some(e.clone()),
            ..Default::default()
        };
        self.spans.push(span);
        self.spans.len() - 1
    }

    fn annotate(&mut self, idx: usize, timestamp_us: u64, value: &str) {
        self.spans[idx].annotations.push(Annotation {
            timestamp_us,
            value: value.to_string(),
        });
    }

    /// Timestamp and duration from the span when it has both, else from the annotations.
    fn timestamp_duration(&mut self, src: &V1Span, begin: &Core, end: Option<&Core>) {
        let idx = self.for_endpoint(Some(&begin.endpoint));
        let span = &mut self.spans[idx];
        if src.timestamp != 0 && src.duration != 0 {
            span.timestamp_us = src.timestamp;
            span.duration_us = src.duration;
        } else {
            span.timestamp_us = begin.timestamp;
            if let Some(end) = end {
                span.duration_us = end.timestamp.saturating_sub(begin.timestamp);
            }
        }
    }

    fn process_annotations(&mut self, src: &V1Span, i: usize) -> Result<(), DecodeError> {
        for (j, a) in src.annotations.iter().flatten().enumerate() {
            let ep = endpoint(
                a.endpoint.clone(),
                &format!("span[{i}].annotations[{j}].endpoint"),
            )?;
            let idx = self.for_endpoint(ep.as_ref());
            let value = a.value.as_deref().unwrap_or("");
            // Core annotations need an endpoint; without one they are plain events.
            let core = match (value, &ep) {
                ("cs" | "sr" | "ss" | "cr" | "ms" | "mr" | "ws" | "wr", Some(e)) => e.clone(),
                _ => {
                    self.annotate(idx, a.timestamp, value);
                    continue;
                }
            };
            let (slot, kind, name) = match value {
                "cs" => (&mut self.cs, Some(Kind::Client), "cs"),
                "sr" => (&mut self.sr, Some(Kind::Server), "sr"),
                "ss" => (&mut self.ss, Some(Kind::Server), "ss"),
                "cr" => (&mut self.cr, Some(Kind::Client), "cr"),
                "ms" => (&mut self.ms, Some(Kind::Producer), "ms"),
                "mr" => (&mut self.mr, Some(Kind::Consumer), "mr"),
                "ws" => (&mut self.ws, None, "ws"),
                _ => (&mut self.wr, None, "wr"),
            };
            *slot = Some(Core {
                timestamp: a.timestamp,
                value: name,
                endpoint: core,
            });
            if let Some(kind) = kind {
                self.spans[idx].kind = Some(kind);
            }
        }
        self.rpc(src);
        self.messaging(src);
        Ok(())
    }

    fn rpc(&mut self, src: &V1Span) {
        // Bridged from an event model, a span may lack its start annotation.
        let reflects = |end: &Option<Core>| {
            end.as_ref().is_some_and(|e| {
                src.timestamp != 0
                    && src.duration != 0
                    // Wrapping, as upstream's long arithmetic (overflowed in debug builds).
                    && src.timestamp.wrapping_add(src.duration) == e.timestamp
            })
        };
        if self.cs.is_none() && reflects(&self.cr) {
            self.cs = self.cr.clone().map(|cr| Core {
                timestamp: src.timestamp,
                value: "cs",
                ..cr
            });
        }
        if self.sr.is_none() && reflects(&self.ss) {
            self.sr = self.ss.clone().map(|ss| Core {
                timestamp: src.timestamp,
                value: "sr",
                ..ss
            });
        }
        match (self.cs.clone(), self.sr.clone()) {
            (Some(cs), Some(sr)) => {
                // Shared span: the client owns the span's timestamp and duration.
                self.timestamp_duration(src, &cs, self.cr.clone().as_ref());
                let client = self.for_endpoint(Some(&cs.endpoint));
                let server = if cs.endpoint.service_name == sr.endpoint.service_name {
                    self.spans[client].kind = Some(Kind::Client);
                    let s = self.new_span(&sr.endpoint);
                    self.spans[s].kind = Some(Kind::Server);
                    s
                } else {
                    self.for_endpoint(Some(&sr.endpoint))
                };
                self.spans[server].timestamp_us = sr.timestamp;
                if let Some(ss) = &self.ss {
                    self.spans[server].duration_us = ss.timestamp.saturating_sub(sr.timestamp);
                }
                if self.cr.is_none() && src.duration == 0 {
                    self.spans[client].duration_us = 0; // one-way: no duration
                }
            }
            (Some(cs), None) if self.cr.is_some() => {
                self.timestamp_duration(src, &cs, self.cr.clone().as_ref())
            }
            (None, Some(sr)) if self.ss.is_some() => {
                self.timestamp_duration(src, &sr, self.ss.clone().as_ref())
            }
            _ => self.incomplete_rpc(src),
        }
    }

    /// Only one side of an RPC: put back the annotation that was not used.
    fn incomplete_rpc(&mut self, src: &V1Span) {
        for idx in 0..self.spans.len() {
            let (start, end) = match self.spans[idx].kind {
                Some(Kind::Client) => (self.cs.clone(), self.cr.clone()),
                Some(Kind::Server) => (self.sr.clone(), self.ss.clone()),
                _ => continue,
            };
            if let Some(start) = start {
                self.spans[idx].timestamp_us = start.timestamp;
            }
            if let Some(end) = end {
                self.annotate(idx, end.timestamp, end.value);
            }
        }
        if src.timestamp != 0 {
            self.spans[0].timestamp_us = src.timestamp;
            self.spans[0].duration_us = src.duration;
        }
    }

    fn messaging(&mut self, src: &V1Span) {
        match (self.ms.clone(), self.mr.clone()) {
            (Some(ms), Some(mr)) => {
                let producer = self.for_endpoint(Some(&ms.endpoint));
                let consumer = if ms.endpoint.service_name == mr.endpoint.service_name {
                    self.spans[producer].kind = Some(Kind::Producer);
                    let c = self.new_span(&mr.endpoint);
                    self.spans[c].kind = Some(Kind::Consumer);
                    c
                } else {
                    self.for_endpoint(Some(&mr.endpoint))
                };
                match &self.wr {
                    Some(wr) => {
                        self.spans[consumer].timestamp_us = wr.timestamp;
                        self.spans[consumer].duration_us =
                            mr.timestamp.saturating_sub(wr.timestamp);
                    }
                    None => self.spans[consumer].timestamp_us = mr.timestamp,
                }
                self.spans[producer].timestamp_us = ms.timestamp;
                self.spans[producer].duration_us = self
                    .ws
                    .as_ref()
                    .map_or(0, |ws| ws.timestamp.saturating_sub(ms.timestamp));
            }
            (Some(ms), None) => self.timestamp_duration(src, &ms, self.ws.clone().as_ref()),
            (None, Some(mr)) => match self.wr.clone() {
                Some(wr) => self.timestamp_duration(src, &wr, Some(&mr)),
                None => self.timestamp_duration(src, &mr, None),
            },
            (None, None) => {
                for wire in [self.ws.clone(), self.wr.clone()].into_iter().flatten() {
                    let idx = self.for_endpoint(Some(&wire.endpoint));
                    self.annotate(idx, wire.timestamp, wire.value);
                }
            }
        }
    }

    fn process_binary_annotations(&mut self, src: &V1Span, i: usize) -> Result<(), DecodeError> {
        let (mut ca, mut sa, mut ma) = (None, None, None);
        for (j, b) in src.binary_annotations.iter().flatten().enumerate() {
            let key = b.key.clone().unwrap_or_default();
            let ep = endpoint(
                b.endpoint.clone(),
                &format!("span[{i}].binaryAnnotations[{j}].endpoint"),
            )?;
            let value = b.value.as_ref().unwrap_or(&Value::Null);
            // Address annotations carry `true` (some old tracers wrote "1" or "true").
            let address_key = matches!(key.as_str(), "ca" | "sa" | "ma");
            let truthy = matches!(value, Value::Bool(true))
                || matches!(value, Value::String(s) if s == "1" || s == "true");
            if address_key && truthy {
                match key.as_str() {
                    "ca" => ca = ep,
                    "sa" => sa = ep,
                    _ => ma = ep,
                }
                continue;
            }
            let Some(text) = scalar_text(value) else {
                continue;
            };
            // Even an empty "lc" (a marker, not a tag) says which service recorded the span.
            let idx = self.for_endpoint(ep.as_ref());
            if key == "lc" && text.is_empty() {
                continue;
            }
            self.spans[idx].put_tag(key, text);
        }
        let no_core =
            self.cs.is_none() && self.cr.is_none() && self.ss.is_none() && self.sr.is_none();
        if no_core && (ca.is_some() || sa.is_some()) {
            match (ca, sa) {
                (Some(ca), Some(sa)) => {
                    let idx = self.for_endpoint(Some(&ca));
                    self.spans[idx].remote_endpoint = Some(sa);
                }
                (None, Some(sa)) => self.spans[0].remote_endpoint = Some(sa),
                (Some(ca), None) => {
                    self.spans[0].kind = Some(Kind::Server);
                    self.spans[0].remote_endpoint = Some(ca);
                }
                (None, None) => {}
            }
            return Ok(());
        }
        let server = self.sr.clone().or_else(|| self.ss.clone());
        if let (Some(mut ca), Some(server)) = (ca, server) {
            if ca != server.endpoint {
                // Finagle's "ca" has the server's service name: drop it to avoid a loopback link.
                if ca.service_name == server.endpoint.service_name {
                    ca.service_name.clear();
                }
                let idx = self.for_endpoint(Some(&server.endpoint));
                self.spans[idx].remote_endpoint = ca.non_empty();
            }
        }
        if let Some(sa) = sa {
            if let Some(client) = self.cs.clone().or_else(|| self.cr.clone()) {
                let idx = self.for_endpoint(Some(&client.endpoint));
                self.spans[idx].remote_endpoint = Some(sa);
            }
        }
        if let Some(ma) = ma {
            for side in [self.ms.clone(), self.mr.clone()].into_iter().flatten() {
                let idx = self.for_endpoint(Some(&side.endpoint));
                self.spans[idx].remote_endpoint = Some(ma.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Found by `fuzz/` (target `zipkin`): a timestamp plus duration beyond u64 panicked with
    /// overflow checks while looking for a missing `cs`.
    #[test]
    fn timestamp_plus_duration_overflow_is_no_panic() {
        let body = br#"[{"traceId":"1e223ff1f80f1c69","id":"74280ae0c10d8062","name":"get",
          "timestamp":18446744073709551615,"duration":18446744073709551615,
          "annotations":[{"timestamp":1,"value":"cr","endpoint":{"serviceName":"a"}},
                         {"timestamp":1,"value":"ss","endpoint":{"serviceName":"b"}}]}]"#;
        let spans = super::decode_v1(body).map_err(|e| e.to_string());
        assert!(spans.is_ok_and(|s| !s.is_empty()));
    }
}
