// Service details (`/services/{service}`, optionally `?operation=`): latency and throughput over
// time, top operations, slowest traces, upstream callers and downstream dependencies, from the
// per-minute rollups (`span_stats`, `slow_spans`, `call_edges`): whole minutes, charts in
// buckets of at least 1 min.
import {
  query, lit, minuteWhere, minuteStart, bucketMs, tsMs, SERVER_KINDS, h, a, link, card,
  fmtRate, fmtPct, fmtMs, fmtNum, fmtDate, sortableTable, emptyState,
} from './lib.js';
import { lineChart } from './charts.js';

/** The statements of the page, all on the rollup tables (whole minutes): the cards and the
 * series (one row without a bucket, then one per bucket of at least a minute), the operations,
 * the slowest spans (of the same whole minutes: `slow_spans` keeps the longest 15 of each
 * minute, so a start-time cut inside the first minute could miss some) and the callers and
 * callees. */
export function serviceSql(range, svc, op) {
  const mw = minuteWhere(range);
  const s1 = lit(svc);
  const base = `service_name = ${s1} and ${mw}`;
  // The spans the charts and cards describe: the operation's spans, or the service's requests.
  const sel = op ? `${base} and span_name = ${lit(op)}` : `${base} and ${SERVER_KINDS}`;
  const step = Math.max(60000, bucketMs(range, 60));
  const bucket = `date_bin(interval '${step} milliseconds', minute, to_timestamp_millis(${minuteStart(range)}))`;
  const edgeAgg = `sum(calls) as calls, sum(errors) as errors, sum(sum_ms) / sum(calls) as avg_ms,
      hist_quantile(hist, 0.99) as p99`;
  const opOf = (side) => (op ? ` and ${side}_span_name = ${lit(op)}` : '');
  return {
    step,
    stats: `select ${bucket} as t, sum(calls) as n, sum(errors) as errors,
      hist_quantile(hist, 0.5) as p50, hist_quantile(hist, 0.95) as p95, hist_quantile(hist, 0.99) as p99
      from span_stats where ${sel} group by grouping sets ((), (${bucket})) order by 1 nulls first`,
    ops: `select span_name, min(span_kind) as kind, sum(calls) as calls, sum(errors) as errors,
      hist_quantile(hist, 0.99) as p99, sum(sum_ms) as total_ms
      from span_stats where ${base} group by span_name`,
    slow: `select trace_id, span_id, span_name, duration_ms, start_time, status_code from slow_spans
      where ${sel} order by duration_ms desc limit 15`,
    // Callers: calls into this service (or operation); callees: calls out of it.
    edges: `select 'up' as side, caller_service as service, ${edgeAgg}
      from call_edges where callee_service = ${s1}${opOf('callee')} and ${mw} group by 2
    union all
    select 'down' as side, callee_service as service, ${edgeAgg}
      from call_edges where caller_service = ${s1}${opOf('caller')} and ${mw} group by 2`,
  };
}

export async function render(el, ctx) {
  const { range, q } = ctx;
  const svc = ctx.params.service;
  const op = q.get('operation');
  const secs = (range.end - range.start) / 1000;
  const sql = serviceSql(range, svc, op);
  const step = sql.step;
  const [stats, ops, slow, edges] = await Promise.all([
    query(sql.stats), query(sql.ops), query(sql.slow), query(sql.edges),
  ]);
  const totals = stats.filter((r) => r.t == null);
  const series = stats.filter((r) => r.t != null);
  const up = edges.filter((r) => r.side === 'up');
  const down = edges.filter((r) => r.side === 'down');
  if (!ctx.alive()) return;
  const t = totals[0] || { n: 0 };
  const head = [
    h('div', { class: 'crumbs' }, a(link('/', q), 'Services'), ' / ',
      op ? a(link(`/services/${encodeURIComponent(svc)}`, q), svc) : svc, op ? ` / ${op}` : ''),
    h('h1', {}, op ? `${svc} · ${op}` : svc, ' ',
      h('span', { class: 'muted', style: 'font-size:13px;font-weight:normal' }, range.label)),
    h('div', { class: 'toolbar' },
      a(link('/search', q, { service: svc, operation: op }), 'Search traces of this ' + (op ? 'operation' : 'service')),
      ' · ', a(link('/map', q, { focus: svc }), 'Show on service map')),
  ];
  if (!ops.length) {
    el.replaceChildren(...head, emptyState(`No spans of ${svc} in this time range.`));
    return;
  }
  const what = op ? 'Calls' : 'Requests';
  const cards = h('div', { class: 'cards' },
    card(what, fmtNum(t.n), { 'data-stat': 'requests', 'data-value': t.n }),
    card('Rate', fmtRate(t.n / secs), { 'data-stat': 'rate', 'data-value': t.n / secs }),
    card('Error rate', fmtPct(t.n ? t.errors / t.n : 0), { 'data-stat': 'error_rate', 'data-value': t.n ? t.errors / t.n : 0 }),
    card('p50', fmtMs(t.p50)), card('p95', fmtMs(t.p95)), card('p99', fmtMs(t.p99)));
  const pts = (k, f = (v) => v) => series.map((r) => [tsMs(r.t), f(r[k])]);
  const charts = h('div', { class: 'grid2' },
    h('section', { class: 'panel' }, h('h2', {}, 'Latency'),
      lineChart([{ name: 'p50', points: pts('p50') }, { name: 'p95', points: pts('p95') }, { name: 'p99', points: pts('p99') }],
        { x0: range.start, x1: range.end, yFmt: fmtMs, title: 'latency percentiles over time' })),
    h('section', { class: 'panel' }, h('h2', {}, `Throughput and errors (per second, ${step / 1000}s buckets)`),
      lineChart([{ name: `${what.toLowerCase()}/s`, points: pts('n', (v) => v / (step / 1000)) },
        { name: 'errors/s', points: pts('errors', (v) => v / (step / 1000)), color: 'var(--err)' }],
      { x0: range.start, x1: range.end, yFmt: (v) => fmtRate(v), title: 'throughput and errors over time' })));

  const totalMs = ops.reduce((s1, r) => s1 + (r.total_ms || 0), 0) || 1;
  const opRows = ops.map((r) => ({ ...r, rate: r.calls / secs, error_rate: r.calls ? r.errors / r.calls : 0, share: r.total_ms / totalMs }));
  const sort = q.get('sort') || 'share';
  const dir = q.get('dir') || 'desc';
  const opTable = sortableTable([
    { key: 'span_name', label: 'Operation', render: (r) => a(link(`/services/${encodeURIComponent(svc)}`, q, { operation: r.span_name }), r.span_name) },
    { key: 'kind', label: 'Kind', render: (r) => String(r.kind || '').replace('SPAN_KIND_', '').toLowerCase() },
    { key: 'calls', label: 'Calls', num: true, render: (r) => fmtNum(r.calls) },
    { key: 'rate', label: 'Rate', num: true, render: (r) => fmtRate(r.rate) },
    { key: 'error_rate', label: 'Errors', num: true, render: (r) => h('span', { class: r.error_rate > 0.05 ? 'badge-err' : null }, fmtPct(r.error_rate)) },
    { key: 'p99', label: 'p99', num: true, render: (r) => fmtMs(r.p99) },
    { key: 'share', label: 'Share of time', num: true, render: (r) => h('div', { style: 'display:flex;gap:6px;align-items:center;justify-content:flex-end' },
      fmtPct(r.share), h('div', { class: 'bar', style: 'width:80px' }, h('span', { style: `width:${(r.share * 100).toFixed(1)}%` }))) },
  ], opRows, {
    sort, dir, onSort: (k, d) => ctx.setParams({ sort: k, dir: d }, { replace: true }),
    rowAttrs: (r) => ({ 'data-operation': r.span_name, class: r.span_name === op ? 'sel' : null, style: r.span_name === op ? 'background:var(--sel)' : null }),
  });
  const slowTable = slow.length ? h('table', { 'data-table': 'slowest' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Trace'), h('th', {}, 'Operation'), h('th', {}, 'Start'), h('th', { class: 'num' }, 'Duration'))),
    h('tbody', {}, slow.map((r) => h('tr', { 'data-trace': r.trace_id },
      h('td', { class: 'mono' }, a(link(`/trace/${r.trace_id}`, q, { span: r.span_id }), r.trace_id.slice(0, 16) + '…')),
      h('td', {}, r.span_name, r.status_code === 'STATUS_CODE_ERROR' ? h('span', { class: 'badge-err' }, ' error') : ''),
      h('td', {}, fmtDate(tsMs(r.start_time))),
      h('td', { class: 'num' }, fmtMs(r.duration_ms)))))) : h('p', { class: 'muted' }, 'No spans.');
  const depTable = (rows, label) => rows.length ? h('table', { 'data-table': label === 'Caller' ? 'callers' : 'callees' },
    h('thead', {}, h('tr', {}, h('th', {}, label), h('th', { class: 'num' }, 'Calls'), h('th', { class: 'num' }, 'Rate'),
      h('th', { class: 'num' }, 'Errors'), h('th', { class: 'num' }, 'Avg'), h('th', { class: 'num' }, 'p99'))),
    h('tbody', {}, rows.sort((x, y) => y.calls - x.calls).map((r) => h('tr', { 'data-service': r.service, 'data-calls': r.calls },
      h('td', {}, a(link(`/services/${encodeURIComponent(r.service)}`, q), r.service)),
      h('td', { class: 'num' }, fmtNum(r.calls)), h('td', { class: 'num' }, fmtRate(r.calls / secs)),
      h('td', { class: 'num' }, fmtPct(r.calls ? r.errors / r.calls : 0)),
      h('td', { class: 'num' }, fmtMs(r.avg_ms)), h('td', { class: 'num' }, fmtMs(r.p99)))))) : h('p', { class: 'muted' }, 'None in this range.');
  el.replaceChildren(...head, cards, charts,
    h('section', { class: 'panel', style: 'margin-top:16px' }, h('h2', {}, 'Top operations'),
      h('p', { class: 'muted', style: 'margin-top:0' }, 'All spans of the service by name; share of time is the operation’s part of the summed span durations.'),
      h('div', { class: 'scroll' }, opTable)),
    h('div', { class: 'grid2' },
      h('section', { class: 'panel' }, h('h2', {}, 'Upstream callers'), h('p', { class: 'muted', style: 'margin-top:0' }, 'Services whose client or producer spans call this service’s server or consumer spans; latency of the called spans.'), depTable(up, 'Caller')),
      h('section', { class: 'panel' }, h('h2', {}, 'Downstream dependencies'), h('p', { class: 'muted', style: 'margin-top:0' }, 'Services whose server or consumer spans this service’s client or producer spans call.'), depTable(down, 'Callee'))),
    h('section', { class: 'panel', style: 'margin-top:16px' }, h('h2', {}, op ? 'Slowest calls' : 'Slowest requests'), slowTable));
}
