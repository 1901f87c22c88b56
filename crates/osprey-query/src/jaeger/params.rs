//! Jaeger's query parameters (trace search, dependencies) and the SQL they become.

use super::model::otlp_kind;
use crate::traces::{normalize_trace_id, parse_duration_ns, quote, ts_literal};

/// Query-string parameters, keeping repeated keys.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        Params(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An integer parameter; an empty value counts as absent.
    pub fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.one(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("unable to parse parameter '{key}': {v:?} is not an integer")),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<i64>, String> {
        match self.one(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_duration_ns(v)
                .map(Some)
                .map_err(|e| format!("unable to parse parameter '{key}': {e}")),
        }
    }
}

/// A trace search (`GET /api/traces`).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub service: String,
    pub operation: Option<String>,
    pub tags: Vec<(String, String)>,
    pub start_ns: i64,
    pub end_ns: i64,
    pub min_duration_ns: Option<i64>,
    pub max_duration_ns: Option<i64>,
    pub limit: usize,
    /// `traceID=` parameters: fetch these traces, ignoring the rest.
    pub trace_ids: Vec<String>,
}

const DEFAULT_LOOKBACK_NS: i64 = 2 * 24 * 3600 * 1_000_000_000;
const DEFAULT_LIMIT: usize = 100;
/// Most traces one search returns, whatever `limit` asks.
const MAX_LIMIT: usize = 1_500;

impl SearchQuery {
    pub fn from_params(p: &Params, now_ns: i64) -> Result<SearchQuery, String> {
        let trace_ids = p
            .all("traceID")
            .map(normalize_trace_id)
            .collect::<Result<Vec<_>, _>>()?;
        let service = p.one("service").unwrap_or("").to_string();
        if service.is_empty() && trace_ids.is_empty() {
            return Err("parameter 'service' is required".into());
        }
        let micros = |key: &str| -> Result<Option<i64>, String> {
            Ok(p.int(key)?.map(|us| us.saturating_mul(1_000)))
        };
        let end_ns = micros("end")?.unwrap_or(now_ns);
        let start_ns = match micros("start")? {
            Some(s) => s,
            None => {
                let lookback = match p
                    .one("lookback")
                    .filter(|l| !l.is_empty() && *l != "custom")
                {
                    Some(l) => parse_duration_ns(l)
                        .map_err(|e| format!("unable to parse parameter 'lookback': {e}"))?,
                    None => DEFAULT_LOOKBACK_NS,
                };
                end_ns.saturating_sub(lookback)
            }
        };
        if start_ns > end_ns {
            return Err("parameter 'start' must not be after 'end'".into());
        }
        let min_duration_ns = p.duration("minDuration")?;
        let max_duration_ns = p.duration("maxDuration")?;
        if let (Some(lo), Some(hi)) = (min_duration_ns, max_duration_ns) {
            if hi < lo {
                return Err("'maxDuration' should be greater than 'minDuration'".into());
            }
        }
        let limit = match p.int("limit")? {
            None | Some(0) => DEFAULT_LIMIT,
            Some(n) if n < 0 => return Err("parameter 'limit' must not be negative".into()),
            Some(n) => (n as usize).min(MAX_LIMIT),
        };
        let mut tags = Vec::new();
        for t in p.all("tags").filter(|t| !t.trim().is_empty()) {
            tags.extend(parse_tags(t)?);
        }
        for t in p.all("tag").filter(|t| !t.is_empty()) {
            let (k, v) = t
                .split_once(':')
                .ok_or_else(|| format!("malformed 'tag' parameter {t:?}: expected key:value"))?;
            tags.push((k.to_string(), v.to_string()));
        }
        Ok(SearchQuery {
            service,
            operation: p
                .one("operation")
                .filter(|o| !o.is_empty())
                .map(str::to_string),
            tags,
            start_ns,
            end_ns,
            min_duration_ns,
            max_duration_ns,
            limit,
            trace_ids,
        })
    }

    /// SQL giving the ids of the matching traces, newest first: a trace matches when one of
    /// its spans satisfies every condition.
    pub fn candidates_sql(&self) -> String {
        let mut conds = vec![
            format!("service_name = {}", quote(&self.service)),
            format!("start_time >= {}", ts_literal(self.start_ns)),
            format!("start_time <= {}", ts_literal(self.end_ns)),
        ];
        if let Some(op) = &self.operation {
            conds.push(format!("span_name = {}", quote(op)));
        }
        if let Some(lo) = self.min_duration_ns {
            conds.push(format!("duration_ms >= {}", lo as f64 / 1e6));
        }
        if let Some(hi) = self.max_duration_ns {
            conds.push(format!("duration_ms <= {}", hi as f64 / 1e6));
        }
        for (k, v) in &self.tags {
            conds.push(tag_condition(k, v));
        }
        format!(
            "SELECT trace_id, max(start_time) AS latest FROM spans WHERE {} \
             GROUP BY trace_id ORDER BY latest DESC LIMIT {}",
            conds.join(" AND "),
            self.limit
        )
    }
}

/// `tags` as Jaeger takes it: a JSON object (`{"k":"v"}`; non-string values are compared as
/// their text) or logfmt (`k=v k2="a b"`).
pub fn parse_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    let t = text.trim();
    if t.starts_with('{') {
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(t).map_err(|e| {
                format!("malformed 'tags' parameter: expected a JSON object of strings: {e}")
            })?;
        return Ok(obj
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect());
    }
    logfmt(t).map_err(|e| format!("malformed 'tags' parameter: {e}"))
}

/// Parses `k=v k2="quoted value"` pairs.
pub fn logfmt(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(format!(
                "expected key=value pairs separated by spaces, or a JSON object; got {key:?} without a value"
            ));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value for {key:?}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// The SQL condition for one Jaeger tag filter. Tags Osprey synthesizes from span fields
/// (span.kind, error, otel.status_code, ...) map to those fields; other keys match a span
/// attribute or a resource (process) attribute with that text.
pub fn tag_condition(key: &str, value: &str) -> String {
    let v = quote(value);
    match key {
        "error" if value == "true" => {
            format!("(status_code = 'STATUS_CODE_ERROR' OR span_attributes['error'] = {v})")
        }
        "span.kind" => match otlp_kind(value) {
            Some(k) => format!("span_kind = {}", quote(k)),
            None => "FALSE".into(),
        },
        "otel.status_code" => format!(
            "status_code = {}",
            quote(&format!("STATUS_CODE_{}", value.to_ascii_uppercase()))
        ),
        "otel.status_description" => format!("status_message = {v}"),
        "otel.scope.name" | "otel.library.name" => format!("scope_name = {v}"),
        "otel.scope.version" | "otel.library.version" => format!("scope_version = {v}"),
        _ => {
            let k = quote(key);
            format!("(span_attributes[{k}] = {v} OR resource_attributes[{k}] = {v})")
        }
    }
}

/// Call counts between services: child spans whose parent span belongs to another service.
/// The child's start time picks the window; the parent may start up to an hour earlier.
pub fn dependencies_sql(start_ns: i64, end_ns: i64) -> String {
    let slack = 3_600 * 1_000_000_000i64;
    format!(
        "SELECT p.service_name AS parent, c.service_name AS child, count(*) AS call_count \
         FROM spans c JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id \
         WHERE c.start_time >= {cs} AND c.start_time <= {ce} \
         AND p.start_time >= {ps} AND p.start_time <= {ce} \
         AND p.service_name <> c.service_name \
         GROUP BY p.service_name, c.service_name ORDER BY parent, child",
        cs = ts_literal(start_ns),
        ce = ts_literal(end_ns),
        ps = ts_literal(start_ns.saturating_sub(slack)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<SearchQuery, String> {
        SearchQuery::from_params(&Params::parse(Some(s)), 10_000_000_000_000)
    }

    #[test]
    fn search_params() {
        let s = q("service=api&operation=GET&lookback=1h&minDuration=1ms&limit=5&tags=%7B%22a%22%3A%22b%22%7D&tag=c:d").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.service, "api");
        assert_eq!(s.operation.as_deref(), Some("GET"));
        assert_eq!(s.end_ns - s.start_ns, 3_600_000_000_000);
        assert_eq!(s.min_duration_ns, Some(1_000_000));
        assert_eq!(s.limit, 5);
        assert_eq!(
            s.tags,
            vec![("a".into(), "b".into()), ("c".into(), "d".into())]
        );
        let s = q("service=a&start=1000&end=2000").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.start_ns, s.end_ns), (1_000_000, 2_000_000));
    }

    #[test]
    fn bad_search_params_name_the_parameter() {
        for (query, word) in [
            ("operation=x", "service"),
            ("service=a&minDuration=abc", "minDuration"),
            ("service=a&minDuration=2s&maxDuration=1s", "maxDuration"),
            ("service=a&tags=%7Bbad", "tags"),
            ("service=a&start=yesterday", "start"),
            ("service=a&limit=-1", "limit"),
            ("service=a&traceID=zz", "trace ID"),
        ] {
            match q(query) {
                Ok(_) => panic!("{query} accepted"),
                Err(e) => assert!(e.contains(word), "{query}: {e}"),
            }
        }
    }

    #[test]
    fn logfmt_pairs() {
        assert_eq!(
            logfmt(r#"http.status_code=500 error=true msg="a b""#),
            Ok(vec![
                ("http.status_code".into(), "500".into()),
                ("error".into(), "true".into()),
                ("msg".into(), "a b".into()),
            ])
        );
        assert!(logfmt("novalue").is_err());
        assert!(logfmt("k=\"open").is_err());
    }

    #[test]
    fn tag_conditions() {
        assert_eq!(
            tag_condition("span.kind", "server"),
            "span_kind = 'SPAN_KIND_SERVER'"
        );
        assert_eq!(
            tag_condition("k'x", "v"),
            "(span_attributes['k''x'] = 'v' OR resource_attributes['k''x'] = 'v')"
        );
    }
}
