//! Tempo search: `/api/search` (TraceQL or legacy logfmt tags), tag names and tag values.

use super::traceql::{self, Field, Query};
use super::{fail, query_failed};
use crate::engine::QueryEngine;
use crate::jaeger::params::{logfmt, Params};
use crate::traces::{fetch_traces, now_ns, parse_duration_ns, quote, string_column, ts_literal};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use osprey_model::from_arrow::{SpanRecord, Typed};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1_000;
const DEFAULT_SPSS: usize = 3;
/// Without start/end, searches and tag lookups cover the last day.
const DEFAULT_WINDOW_NS: i64 = 24 * 3600 * 1_000_000_000;

/// The [start, end] window (ns) from `start`/`end` in unix seconds.
fn window(p: &Params) -> Result<(i64, i64), String> {
    let secs = |key: &str| -> Result<Option<i64>, String> {
        Ok(p.int(key)?.map(|s| s.saturating_mul(1_000_000_000)))
    };
    let end = secs("end")?.unwrap_or_else(now_ns);
    let start = secs("start")?.unwrap_or(end.saturating_sub(DEFAULT_WINDOW_NS));
    if start > end {
        return Err(format!(
            "invalid time range: start ({}) is after end ({})",
            start / 1_000_000_000,
            end / 1_000_000_000
        ));
    }
    Ok((start, end))
}

fn range_sql(start: i64, end: i64) -> String {
    format!(
        "start_time >= {} AND start_time <= {}",
        ts_literal(start),
        ts_literal(end)
    )
}

/// A legacy `tags=` filter: a case-insensitive substring of a span or resource attribute
/// (or the service / span name).
fn legacy_tag_sql(key: &str, value: &str) -> String {
    let needle = quote(&value.to_lowercase());
    let has = |expr: &str| format!("strpos(lower({expr}), {needle}) > 0");
    match key {
        "service.name" => has("service_name"),
        "name" => has("span_name"),
        "status.code" => has("status_code"),
        _ => {
            let k = quote(key);
            format!(
                "({} OR {})",
                has(&format!("span_attributes[{k}]")),
                has(&format!("resource_attributes[{k}]"))
            )
        }
    }
}

struct Search {
    span_cond: String,
    trace_cond: Option<String>,
    min_ns: Option<i64>,
    max_ns: Option<i64>,
    limit: usize,
    spss: usize,
    start: i64,
    end: i64,
    mentioned: Vec<Field>,
}

fn parse_search(p: &Params) -> Result<Search, String> {
    let (start, end) = window(p)?;
    let duration = |key: &str| -> Result<Option<i64>, String> {
        match p.one(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_duration_ns(v)
                .map(Some)
                .map_err(|e| format!("invalid {key}: {e}")),
        }
    };
    let (min_ns, max_ns) = (duration("minDuration")?, duration("maxDuration")?);
    if let (Some(lo), Some(hi)) = (min_ns, max_ns) {
        if hi < lo {
            return Err("invalid maxDuration: it must not be less than minDuration".into());
        }
    }
    let count = |key: &str, default: usize| -> Result<usize, String> {
        match p.one(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => Ok((n as usize).min(MAX_LIMIT)),
                Ok(0) => Ok(default),
                _ => Err(format!("invalid {key}: {v:?} is not a positive integer")),
            },
        }
    };
    let limit = count("limit", DEFAULT_LIMIT)?;
    let spss = count("spss", DEFAULT_SPSS)?;
    let mut mentioned = Vec::new();
    let (span_cond, trace_cond) = match p.one("q").filter(|q| !q.trim().is_empty()) {
        Some(q) => {
            let query: Query =
                traceql::parse(q).map_err(|e| format!("invalid TraceQL query: {e}"))?;
            traceql::mentioned(&query, &mut mentioned);
            let err = |e: String| format!("invalid TraceQL query: {e}");
            (
                traceql::any_span_sql(&query).map_err(err)?,
                traceql::trace_sql(&query).map_err(err)?,
            )
        }
        None => {
            let tags = match p.one("tags").filter(|t| !t.trim().is_empty()) {
                Some(t) => logfmt(t).map_err(|e| format!("invalid tags: {e}"))?,
                None => Vec::new(),
            };
            let conds: Vec<String> = tags.iter().map(|(k, v)| legacy_tag_sql(k, v)).collect();
            let trace_cond = (conds.len() > 1).then(|| {
                conds
                    .iter()
                    .map(|c| format!("bool_or({c})"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            });
            let any = if conds.is_empty() {
                "TRUE".to_string()
            } else {
                format!("({})", conds.join(" OR "))
            };
            (any, trace_cond)
        }
    };
    Ok(Search {
        span_cond,
        trace_cond,
        min_ns,
        max_ns,
        limit,
        spss,
        start,
        end,
        mentioned,
    })
}

impl Search {
    /// Ids of matching traces, newest first.
    fn candidates_sql(&self) -> String {
        let range = range_sql(self.start, self.end);
        let mut having: Vec<String> = self.trace_cond.iter().cloned().collect();
        let trace_ns = "(CAST(max(end_time) AS BIGINT) - CAST(min(start_time) AS BIGINT))";
        if let Some(lo) = self.min_ns {
            having.push(format!("{trace_ns} >= {lo}"));
        }
        if let Some(hi) = self.max_ns {
            having.push(format!("{trace_ns} <= {hi}"));
        }
        if having.is_empty() {
            return format!(
                "SELECT trace_id, min(start_time) AS first FROM spans WHERE {range} AND {} \
                 GROUP BY trace_id ORDER BY first DESC LIMIT {}",
                self.span_cond, self.limit
            );
        }
        format!(
            "SELECT trace_id, min(start_time) AS first FROM spans WHERE {range} AND trace_id IN \
             (SELECT trace_id FROM spans WHERE {range} AND {}) \
             GROUP BY trace_id HAVING {} ORDER BY first DESC LIMIT {}",
            self.span_cond,
            having.join(" AND "),
            self.limit
        )
    }
}

fn attr_json(key: &str, value: &Typed) -> Value {
    let v = serde_json::to_value(value.to_any_value()).unwrap_or(Value::Null);
    json!({ "key": key, "value": v })
}

/// The attributes of `span` a query mentioned (Tempo lists those in spansets).
fn mentioned_attrs(span: &SpanRecord, fields: &[Field]) -> Vec<Value> {
    let mut out = Vec::new();
    let find = |attrs: &[osprey_model::from_arrow::Attr], k: &str| {
        attrs.iter().find(|a| a.key == k).map(|a| a.value.clone())
    };
    for f in fields {
        let found = match f {
            Field::Span(k) => find(&span.attributes, k).map(|v| (k, v)),
            Field::Resource(k) => find(&span.resource, k).map(|v| (k, v)),
            Field::Any(k) => find(&span.attributes, k)
                .or_else(|| find(&span.resource, k))
                .map(|v| (k, v)),
            _ => None,
        };
        if let Some((k, v)) = found {
            out.push(attr_json(k, &v));
        }
    }
    out
}

fn tempo_trace_id(id: &str) -> String {
    let t = id.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.into()
    }
}

pub async fn search(State(engine): State<QueryEngine>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let s = match parse_search(&p) {
        Ok(s) => s,
        Err(msg) => return fail(StatusCode::BAD_REQUEST, msg),
    };
    let res = match engine.query(&s.candidates_sql()).await {
        Ok(r) => r,
        Err(e) => return query_failed(e),
    };
    let ids = string_column(&res, 0);
    let traces = match fetch_traces(&engine, &ids).await {
        Ok(t) => t,
        Err(e) => return query_failed(e),
    };
    // Which spans of those traces match (any spanset).
    let matched: BTreeSet<(String, String)> = if ids.is_empty() {
        BTreeSet::new()
    } else {
        let list: Vec<String> = ids.iter().map(|i| quote(i)).collect();
        let sql = format!(
            "SELECT trace_id, span_id FROM spans WHERE trace_id IN ({}) AND {}",
            list.join(", "),
            s.span_cond
        );
        match engine.query(&sql).await {
            Ok(r) => string_column(&r, 0)
                .into_iter()
                .zip(string_column(&r, 1))
                .collect(),
            Err(e) => return query_failed(e),
        }
    };
    let mut out = Vec::new();
    for id in &ids {
        let Some(spans) = traces.get(id) else {
            continue;
        };
        let start = spans.iter().map(|r| r.start_ns).min().unwrap_or(0);
        let end = spans.iter().map(|r| r.end_ns).max().unwrap_or(start);
        let root = spans
            .iter()
            .find(|r| r.parent_span_id.is_none())
            .or_else(|| spans.first());
        let hits: Vec<&SpanRecord> = spans
            .iter()
            .filter(|r| matched.contains(&(id.clone(), r.span_id.clone())))
            .collect();
        let listed: Vec<Value> = hits
            .iter()
            .take(s.spss)
            .map(|r| {
                json!({
                    "spanID": r.span_id,
                    "name": r.span_name,
                    "startTimeUnixNano": r.start_ns.to_string(),
                    "durationNanos": (r.end_ns - r.start_ns).to_string(),
                    "attributes": mentioned_attrs(r, &s.mentioned),
                })
            })
            .collect();
        let spanset = json!({ "spans": listed, "matched": hits.len() });
        out.push(json!({
            "traceID": tempo_trace_id(id),
            "rootServiceName": root.map_or("<root span not yet received>", |r| r.service_name.as_str()),
            "rootTraceName": root.map_or("", |r| r.span_name.as_str()),
            "startTimeUnixNano": start.to_string(),
            "durationMs": (end - start) / 1_000_000,
            "spanSet": spanset.clone(),
            "spanSets": [spanset],
        }));
    }
    let inspected = out.len();
    Json(json!({
        "traces": out,
        "metrics": { "inspectedTraces": inspected, "completedJobs": 1, "totalJobs": 1 },
    }))
    .into_response()
}

const INTRINSICS: [&str; 5] = ["duration", "kind", "name", "status", "statusMessage"];

async fn keys(engine: &QueryEngine, column: &str, range: &str) -> Result<Vec<String>, Response> {
    let sql = format!(
        "SELECT DISTINCT k FROM (SELECT unnest(map_keys({column})) AS k FROM spans WHERE {range}) ORDER BY k"
    );
    let res = engine.query(&sql).await.map_err(query_failed)?;
    Ok(string_column(&res, 0))
}

/// Tag names per scope: (scope, names) for the scopes asked (`None` = all).
async fn scoped_tags(
    engine: &QueryEngine,
    p: &Params,
) -> Result<Vec<(&'static str, Vec<String>)>, Response> {
    let (start, end) = window(p).map_err(|m| fail(StatusCode::BAD_REQUEST, m))?;
    let range = range_sql(start, end);
    let scope = p.one("scope").filter(|s| !s.is_empty() && *s != "all");
    let mut out = Vec::new();
    match scope {
        None | Some("span") | Some("resource") | Some("intrinsic") => {}
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("invalid scope {other:?}: expected span, resource, intrinsic or all"),
            ))
        }
    }
    if scope.is_none_or(|s| s == "span") {
        out.push(("span", keys(engine, "span_attributes", &range).await?));
    }
    if scope.is_none_or(|s| s == "resource") {
        out.push((
            "resource",
            keys(engine, "resource_attributes", &range).await?,
        ));
    }
    if scope.is_none_or(|s| s == "intrinsic") {
        out.push((
            "intrinsic",
            INTRINSICS.iter().map(|s| s.to_string()).collect(),
        ));
    }
    Ok(out)
}

pub async fn tags_v1(State(engine): State<QueryEngine>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    match scoped_tags(&engine, &p).await {
        Ok(scopes) => {
            let names: BTreeSet<String> = scopes.into_iter().flat_map(|(_, t)| t).collect();
            Json(json!({ "tagNames": names })).into_response()
        }
        Err(r) => r,
    }
}

pub async fn tags_v2(State(engine): State<QueryEngine>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    match scoped_tags(&engine, &p).await {
        Ok(scopes) => {
            let scopes: Vec<Value> = scopes
                .into_iter()
                .map(|(name, tags)| json!({ "name": name, "tags": tags }))
                .collect();
            Json(json!({ "scopes": scopes })).into_response()
        }
        Err(r) => r,
    }
}

/// A tag's value expressions, and its attribute key: (`Some(true)` span, `Some(false)`
/// resource, `None` either; key).
type ValueSource = (Vec<String>, Option<(Option<bool>, String)>);

/// The SQL expressions holding a tag's values, and the tag's attribute key (none for
/// intrinsics). `scoped` tags use TraceQL names (`resource.x`, `span.x`, `.x`, `name`).
fn value_exprs(tag: &str, scoped: bool) -> Result<ValueSource, String> {
    let attr = |k: &str, span: Option<bool>| {
        let q = quote(k);
        let mut exprs = Vec::new();
        if span != Some(false) {
            exprs.push(format!("span_attributes[{q}]"));
        }
        if span != Some(true) {
            exprs.push(if k == "service.name" {
                "service_name".to_string()
            } else {
                format!("resource_attributes[{q}]")
            });
        }
        (exprs, Some((span, k.to_string())))
    };
    if !scoped {
        return Ok(match tag {
            "service.name" => (vec!["service_name".into()], None),
            _ => attr(tag, None),
        });
    }
    Ok(match traceql_field(tag)? {
        Field::Span(k) => attr(&k, Some(true)),
        Field::Resource(k) => attr(&k, Some(false)),
        Field::Any(k) => attr(&k, None),
        Field::Name => (vec!["span_name".into()], None),
        Field::StatusMessage => (vec!["status_message".into()], None),
        Field::Status => (vec!["lower(substr(status_code, 13))".into()], None),
        Field::Kind => (vec!["lower(substr(span_kind, 11))".into()], None),
        Field::Duration => return Err("duration has no list of values".into()),
    })
}

fn traceql_field(tag: &str) -> Result<Field, String> {
    // Reuse the TraceQL parser on `{ <tag> = "" }` to read the field name.
    match traceql::parse(&format!("{{ {tag} = \"\" }}")) {
        Ok(Query::Spanset(Some(traceql::Cond::Cmp(f, _, _)))) => Ok(f),
        Ok(_) => Err(format!("invalid tag {tag:?}")),
        Err(e) => Err(format!("invalid tag {tag:?}: {e}")),
    }
}

async fn distinct_values(
    engine: &QueryEngine,
    exprs: &[String],
    filter: &str,
) -> Result<Vec<String>, Response> {
    let mut all = BTreeSet::new();
    for e in exprs {
        let sql = format!(
            "SELECT DISTINCT {e} AS v FROM spans WHERE {filter} AND {e} IS NOT NULL LIMIT 1000"
        );
        let res = engine.query(&sql).await.map_err(query_failed)?;
        all.extend(string_column(&res, 0));
    }
    Ok(all.into_iter().collect())
}

/// The span filter of a tag-values request (its time window and TraceQL `q`), or the
/// message of a 400.
fn filter_for(p: &Params) -> Result<String, String> {
    let (start, end) = window(p)?;
    let mut filter = range_sql(start, end);
    if let Some(q) = p.one("q").filter(|q| !q.trim().is_empty()) {
        let cond = traceql::parse(q)
            .and_then(|query| traceql::any_span_sql(&query))
            .map_err(|e| format!("invalid TraceQL query: {e}"))?;
        filter = format!("{filter} AND {cond}");
    }
    Ok(filter)
}

/// A tag-values request's span filter and value source, or the message of a 400.
fn value_request(
    query: Option<&str>,
    tag: &str,
    scoped: bool,
) -> Result<(String, ValueSource), String> {
    let p = Params::parse(query);
    Ok((filter_for(&p)?, value_exprs(tag, scoped)?))
}

pub async fn values_v1(
    State(engine): State<QueryEngine>,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let (filter, (exprs, _)) = match value_request(q.as_deref(), &tag, false) {
        Ok(r) => r,
        Err(m) => return fail(StatusCode::BAD_REQUEST, m),
    };
    match distinct_values(&engine, &exprs, &filter).await {
        Ok(values) => Json(json!({ "tagValues": values })).into_response(),
        Err(r) => r,
    }
}

/// Tempo's value type name for a stored attribute value.
fn type_name(v: &Typed) -> &'static str {
    match v {
        Typed::Int(_) => "int",
        Typed::Double(_) => "float",
        Typed::Bool(_) => "bool",
        _ => "string",
    }
}

/// The type of attribute `key` (span or resource, per `span`), read from one stored span
/// that has it: every value of a key is assumed to share the type its first span gave it.
async fn key_type(
    engine: &QueryEngine,
    span: Option<bool>,
    key: &str,
    filter: &str,
) -> Result<&'static str, Response> {
    let q = quote(key);
    let mut types = BTreeMap::new();
    for (is_span, column) in [(true, "span_attributes"), (false, "resource_attributes")] {
        if span.is_some_and(|s| s != is_span) {
            continue;
        }
        let sql =
            format!("SELECT * FROM spans WHERE {filter} AND {column}[{q}] IS NOT NULL LIMIT 1");
        let res = engine.query_typed(&sql).await.map_err(query_failed)?;
        for b in &res.batches {
            let recs = osprey_model::from_arrow::records_from_batch(b)
                .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            for r in recs {
                let attrs = if is_span { &r.attributes } else { &r.resource };
                if let Some(a) = attrs.iter().find(|a| a.key == key) {
                    types.insert(is_span, type_name(&a.value));
                }
            }
        }
    }
    Ok(types.values().next().copied().unwrap_or("string"))
}

pub async fn values_v2(
    State(engine): State<QueryEngine>,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let (filter, (exprs, key)) = match value_request(q.as_deref(), &tag, true) {
        Ok(r) => r,
        Err(m) => return fail(StatusCode::BAD_REQUEST, m),
    };
    let values = match distinct_values(&engine, &exprs, &filter).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ty = match (&key, values.is_empty()) {
        (Some((span, k)), false) if k != "service.name" => {
            match key_type(&engine, *span, k, &filter).await {
                Ok(t) => t,
                Err(r) => return r,
            }
        }
        _ if matches!(tag.as_str(), "status" | "kind") => "keyword",
        _ => "string",
    };
    let out: Vec<Value> = values
        .iter()
        .map(|v| json!({ "type": ty, "value": v }))
        .collect();
    Json(json!({ "tagValues": out })).into_response()
}
