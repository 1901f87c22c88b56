//! The SQL each page of the web UI sends to `POST /api/sql`, page by page: one list that
//! mirrors crates/osprey-ui/assets/*.js (each builder names the JS it follows). When the UI's
//! queries change, change them here too.

/// What a page's statements depend on: the range (epoch ms, as the browser's `range`) and
/// the service, operation and trace the user clicked through to.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub start: f64,
    pub end: f64,
    pub service: String,
    pub operation: String,
    pub trace_id: String,
}

/// The pages timed, in report order.
pub const PAGES: [&str; 7] = [
    "overview",
    "service",
    "operation",
    "map",
    "search",
    "trace",
    "sql",
];

// --- SQL helpers, mirroring crates/osprey-ui/assets/lib.js ---------------------------------

pub const SERVER_KINDS: &str = "span_kind in ('SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER')";
const IS_ERROR: &str = "status_code = 'STATUS_CODE_ERROR'";

pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn time_where(start: f64, end: f64, col: &str) -> String {
    format!(
        "{col} >= to_timestamp_millis({}) and {col} < to_timestamp_millis({})",
        start.floor(),
        end.floor()
    )
}

/// lib.js minuteStart(): the start of the minute holding the range start.
fn minute_start(c: &Ctx) -> f64 {
    (c.start / 60000.0).floor() * 60000.0
}

/// lib.js minuteWhere(): the `span_stats` minutes overlapping the range.
pub fn minute_where(c: &Ctx) -> String {
    format!(
        "minute >= to_timestamp_millis({}) and minute < to_timestamp_millis({})",
        minute_start(c),
        c.end.floor()
    )
}

fn bucket_ms(c: &Ctx, n: f64) -> f64 {
    const STEPS: [f64; 16] = [
        1e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5,
    ];
    let want = (c.end - c.start) / n;
    STEPS.iter().copied().find(|s| *s >= want).unwrap_or(864e5)
}

// --- The pages' statements -----------------------------------------------------------------

/// The statements a page sends at once when it loads. Search sends more afterwards, built
/// from the answers: see [`search_ids_sql`] and [`search_rows_sql`].
pub fn statements(page: &str, c: &Ctx) -> Vec<String> {
    match page {
        // overview.js: statsSql(range) and trendSql(range, max(1 min, bucketMs(range, 30))).
        "overview" => {
            let step = bucket_ms(c, 30.0).max(60000.0);
            let mw = minute_where(c);
            let hist = format!("case when {SERVER_KINDS} then hist end");
            vec![
                format!(
                    "select service_name,
    sum(calls) as spans,
    sum(case when {SERVER_KINDS} then calls else 0 end) as requests,
    sum(case when {SERVER_KINDS} then errors else 0 end) as errors,
    hist_quantile({hist}, 0.5) as p50,
    hist_quantile({hist}, 0.95) as p95,
    hist_quantile({hist}, 0.99) as p99
  from span_stats where {mw}
  group by service_name"
                ),
                format!(
                    "select service_name,
    date_bin(interval '{step} milliseconds', minute, to_timestamp_millis({})) as t,
    sum(case when {SERVER_KINDS} then calls else 0 end) as requests,
    sum(case when {SERVER_KINDS} then errors else 0 end) as errors
  from span_stats where {mw} group by 1, 2",
                    minute_start(c)
                ),
            ]
        }
        // service.js, without and with `?operation=`.
        "service" => service_sql(c, None),
        "operation" => service_sql(c, Some(&c.operation)),
        // map.js: nodesSql(range) and edgesSql(range).
        "map" => vec![
            format!(
                "select service_name, sum(case when {SERVER_KINDS} then calls else 0 end) as requests,
      sum(case when {SERVER_KINDS} then errors else 0 end) as errors
      from span_stats where {} group by 1",
                minute_where(c)
            ),
            edges_sql(c),
        ],
        // search.js render(): the service list and that service's operations (`?service=`).
        "search" => {
            let mw = minute_where(c);
            vec![
                format!("select distinct service_name from span_stats where {mw} order by 1"),
                format!(
                    "select distinct span_name from span_stats where {mw} and service_name = {} order by 1",
                    lit(&c.service)
                ),
            ]
        }
        // trace.js.
        "trace" => vec![format!(
            "select span_id, parent_span_id, service_name, span_name, span_kind, start_time, end_time,
      duration_ms, status_code, status_message, trace_state, span_attributes, resource_attributes,
      scope_name, scope_version, events, links, flags
    from spans where trace_id = {} order by start_time",
            lit(&c.trace_id)
        )],
        // sql.js: the first example, with $__timeFilter expanded.
        "sql" => vec![format!(
            "select service_name, sum(calls) as requests,
  sum(errors) as errors,
  hist_quantile(hist, 0.99) as p99_ms
from span_stats
where ({}) and span_kind = 'SPAN_KIND_SERVER'
group by service_name order by requests desc",
            time_where(c.start, c.end, "minute")
        )],
        _ => Vec::new(),
    }
}

/// map.js edgesSql(): calls between services from the `call_edges` rollup.
fn edges_sql(c: &Ctx) -> String {
    format!(
        "select caller_service as caller, callee_service as callee, sum(calls) as calls,
      sum(errors) as errors, sum(sum_ms) / sum(calls) as avg_ms, hist_quantile(hist, 0.99) as p99
      from call_edges where {} group by 1, 2",
        minute_where(c)
    )
}

/// service.js serviceSql(): cards and series, operations, slowest, callers and callees, all
/// from the rollup tables.
fn service_sql(c: &Ctx, op: Option<&str>) -> Vec<String> {
    let mw = minute_where(c);
    let svc = lit(&c.service);
    let base = format!("service_name = {svc} and {mw}");
    let sel = match op {
        Some(o) => format!("{base} and span_name = {}", lit(o)),
        None => format!("{base} and {SERVER_KINDS}"),
    };
    let step = bucket_ms(c, 60.0).max(60000.0);
    let bucket = format!(
        "date_bin(interval '{step} milliseconds', minute, to_timestamp_millis({}))",
        minute_start(c)
    );
    let agg = "sum(calls) as calls, sum(errors) as errors, sum(sum_ms) / sum(calls) as avg_ms,
      hist_quantile(hist, 0.99) as p99";
    let op_of = |side: &str| {
        op.map(|o| format!(" and {side}_span_name = {}", lit(o)))
            .unwrap_or_default()
    };
    vec![
        format!(
            "select {bucket} as t, sum(calls) as n, sum(errors) as errors,
      hist_quantile(hist, 0.5) as p50, hist_quantile(hist, 0.95) as p95, hist_quantile(hist, 0.99) as p99
      from span_stats where {sel} group by grouping sets ((), ({bucket})) order by 1 nulls first"
        ),
        format!(
            "select span_name, min(span_kind) as kind, sum(calls) as calls, sum(errors) as errors,
      hist_quantile(hist, 0.99) as p99, sum(sum_ms) as total_ms
      from span_stats where {base} group by span_name"
        ),
        format!(
            "select trace_id, span_id, span_name, duration_ms, start_time, status_code from slow_spans
      where {sel} order by duration_ms desc limit 15"
        ),
        format!(
            "select 'up' as side, caller_service as service, {agg}
      from call_edges where callee_service = {svc}{} and {mw} group by 2
    union all
    select 'down' as side, callee_service as service, {agg}
      from call_edges where caller_service = {svc}{} and {mw} group by 2",
            op_of("callee"),
            op_of("caller")
        ),
    ]
}

/// search.js RECENT_WINDOWS_MS: the newest minute, then ten, before the whole range.
pub const RECENT_WINDOWS_MS: [f64; 2] = [60000.0, 600000.0];

/// search.js runSearch() idsSql(): the matching trace ids in `[start, end)` (`?service=`,
/// default sort and limit).
pub fn search_ids_sql(c: &Ctx, start: f64, end: f64) -> String {
    format!(
        "select trace_id from spans where {} and service_name = {} group by trace_id order by min(start_time) desc limit {SEARCH_LIMIT}",
        time_where(start, end, "start_time"),
        lit(&c.service)
    )
}

/// The default search limit.
pub const SEARCH_LIMIT: usize = 20;

/// search.js runSearch() check: whether any of `ids` (found in the window from `ws`) also
/// matches earlier in the range.
pub fn search_check_sql(c: &Ctx, ws: f64, ids: &[String]) -> String {
    let list: Vec<String> = ids.iter().map(|i| lit(i)).collect();
    format!(
        "select trace_id from spans where {} and service_name = {}
        and trace_id in ({}) limit 1",
        time_where(c.start, ws, "start_time"),
        lit(&c.service),
        list.join(", ")
    )
}

/// search.js runSearch(), second request: the summaries of those traces.
pub fn search_rows_sql(c: &Ctx, ids: &[String]) -> String {
    let pad = 15.0 * 60000.0;
    let list: Vec<String> = ids.iter().map(|i| lit(i)).collect();
    format!(
        "select trace_id, min(start_time) as st, max(end_time) as et, count(*) as spans,
      sum(case when {IS_ERROR} then 1 else 0 end) as errors, array_agg(distinct service_name) as services,
      max(case when parent_span_id is null then service_name end) as root_service,
      max(case when parent_span_id is null then span_name end) as root_name
    from spans where trace_id in ({})
      and {}
    group by trace_id",
        list.join(", "),
        time_where(c.start - pad, c.end + pad, "start_time")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx {
            start: 1_700_000_000_000.0,
            end: 1_700_007_200_000.0,
            service: "o'hare".into(),
            operation: "GET /".into(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        }
    }

    #[test]
    fn every_page_sends_statements_with_quoted_names() {
        let c = ctx();
        for page in PAGES {
            let s = statements(page, &c);
            assert!(!s.is_empty(), "{page}");
            assert!(
                s.iter().all(|q| !q.contains("o'hare")),
                "{page}: unquoted name"
            );
        }
        assert_eq!(statements("service", &c).len(), 4);
        assert!(statements("operation", &c)[3].contains("callee_span_name = 'GET /'"));
        assert!(search_rows_sql(&c, &["a".into(), "b".into()]).contains("in ('a', 'b')"));
    }

    #[test]
    fn buckets_follow_lib_js() {
        // 2 h over 30 buckets wants 240 s: the next step is 300 s.
        assert_eq!(bucket_ms(&ctx(), 30.0), 3e5);
        assert_eq!(bucket_ms(&ctx(), 60.0), 12e4);
    }

    #[test]
    fn rollup_pages_use_whole_minutes() {
        let mut c = ctx();
        c.start += 12_345.0;
        let mw = minute_where(&c);
        assert!(mw.starts_with("minute >= to_timestamp_millis(1699999980000) and"));
        let overview = statements("overview", &c);
        assert!(overview.iter().all(|s| s.contains("from span_stats")));
        assert!(overview[1].contains("interval '300000 milliseconds'"));
        c.end = c.start + 900_000.0;
        // 15 min over 30 buckets wants 30 s: clamped to 1 min.
        assert!(statements("overview", &c)[1].contains("interval '60000 milliseconds'"));
        assert!(statements("map", &c)[0].contains("from span_stats"));
        assert!(statements("map", &c)[1].contains("from call_edges"));
        let service = statements("service", &c);
        assert!(service[0].contains("from span_stats") && service[1].contains("from span_stats"));
        assert!(service[2].contains("from slow_spans") && service[3].contains("from call_edges"));
        // 15 min over 60 buckets wants 15 s: clamped to 1 min.
        assert!(service[0].contains("interval '60000 milliseconds'"));
        assert!(statements("search", &c)
            .iter()
            .all(|s| s.contains("from span_stats")));
    }
}
