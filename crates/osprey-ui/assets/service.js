// Service details (`/services/{service}`, optionally `?operation=`): latency and throughput over
// time, top operations, slowest traces, upstream callers and downstream dependencies.
import {
  query, lit, timeWhere, bucketMs, bucketExpr, tsMs, SERVER_KINDS, IS_ERROR, CALLER_KINDS, CALLEE_KINDS, h, a, link, card,
  fmtRate, fmtPct, fmtMs, fmtNum, fmtDate, sortableTable, emptyState,
} from './lib.js';
import { lineChart } from './charts.js';

export async function render(el, ctx) {
  const { range, q } = ctx;
  const svc = ctx.params.service;
  const op = q.get('operation');
  const tw = timeWhere(range);
  const base = `service_name = ${lit(svc)} and ${tw}`;
  // The spans the charts and cards describe: the operation's spans, or the service's requests.
  const sel = op ? `${base} and span_name = ${lit(op)}` : `${base} and ${SERVER_KINDS}`;
  const step = bucketMs(range, 60);
  const secs = (range.end - range.start) / 1000;
  const errCase = `sum(case when ${IS_ERROR} then 1 else 0 end)`;
  // Callers and callees: two joins in one statement, each with this service's (and
  // operation's) spans as its first, hashed side, so the hash tables stay small and the other
  // side's scan is filtered by them. Kinds as in edgesSql (map.js).
  const s1 = lit(svc);
  const mine = (al) => `${al}.service_name = ${s1}${op ? ` and ${al}.span_name = ${lit(op)}` : ''}`;
  const edgeAgg = `count(*) as calls, sum(case when c.status_code = 'STATUS_CODE_ERROR' then 1 else 0 end) as errors,
      avg(c.duration_ms) as avg_ms, approx_percentile_cont(c.duration_ms, 0.99) as p99`;
  const edgeWhere = `${CALLEE_KINDS('c')} and ${CALLER_KINDS('p')}
      and ${timeWhere(range, 'c.start_time')} and ${timeWhere(range, 'p.start_time')}`;
  const edgesSql = `select 'up' as side, p.service_name as service, ${edgeAgg}
    from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
    where ${mine('c')} and p.service_name <> ${s1} and ${edgeWhere} group by 1, 2
  union all
  select 'down' as side, c.service_name as service, ${edgeAgg}
    from spans p join spans c on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
    where ${mine('p')} and c.service_name <> ${s1} and ${edgeWhere} group by 1, 2`;
  // The cards (the row without a bucket) and the series (one row per bucket) in one scan.
  const bucket = bucketExpr(range, step);
  const [stats, ops, slow, edges] = await Promise.all([
    query(`select ${bucket} as t, count(*) as n, ${errCase} as errors,
      approx_percentile_cont(duration_ms, 0.5) as p50, approx_percentile_cont(duration_ms, 0.95) as p95,
      approx_percentile_cont(duration_ms, 0.99) as p99 from spans where ${sel}
      group by grouping sets ((), (${bucket})) order by 1 nulls first`),
    query(`select span_name, min(span_kind) as kind, count(*) as calls, ${errCase} as errors,
      approx_percentile_cont(duration_ms, 0.99) as p99, sum(duration_ms) as total_ms
      from spans where ${base} group by span_name`),
    query(`select trace_id, span_id, span_name, duration_ms, start_time, status_code from spans
      where ${sel} order by duration_ms desc limit 15`),
    query(edgesSql),
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
  const depTable = (rows, label) => rows.length ? h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, label), h('th', { class: 'num' }, 'Calls'), h('th', { class: 'num' }, 'Rate'),
      h('th', { class: 'num' }, 'Errors'), h('th', { class: 'num' }, 'Avg'), h('th', { class: 'num' }, 'p99'))),
    h('tbody', {}, rows.sort((x, y) => y.calls - x.calls).map((r) => h('tr', { 'data-service': r.service },
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
