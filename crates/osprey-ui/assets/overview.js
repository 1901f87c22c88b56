// Services overview (`/`): per service request rate, error rate, p50/p95/p99 and trends, from
// the per-minute rollups (`span_stats`): whole minutes, charts in buckets of at least 1 min.
import {
  query, minuteWhere, minuteStart, bucketMs, tsMs, SERVER_KINDS, h, a, link, card,
  fmtRate, fmtPct, fmtMs, fmtNum, sortableTable, emptyState, colorFor,
} from './lib.js';
import { sparkline } from './charts.js';

/** Requests are the SERVER and CONSUMER spans of a service; latency is their duration. */
export function statsSql(range) {
  const hist = `case when ${SERVER_KINDS} then hist end`;
  return `select service_name,
    sum(calls) as spans,
    sum(case when ${SERVER_KINDS} then calls else 0 end) as requests,
    sum(case when ${SERVER_KINDS} then errors else 0 end) as errors,
    hist_quantile(${hist}, 0.5) as p50,
    hist_quantile(${hist}, 0.95) as p95,
    hist_quantile(${hist}, 0.99) as p99
  from span_stats where ${minuteWhere(range)}
  group by service_name`;
}

/** The trend buckets: whole minutes from the minute of the range start. */
export function trendSql(range, step) {
  return `select service_name,
    date_bin(interval '${step} milliseconds', minute, to_timestamp_millis(${minuteStart(range)})) as t,
    sum(case when ${SERVER_KINDS} then calls else 0 end) as requests,
    sum(case when ${SERVER_KINDS} then errors else 0 end) as errors
  from span_stats where ${minuteWhere(range)} group by 1, 2`;
}

export async function render(el, ctx) {
  const { range, q } = ctx;
  const step = Math.max(60000, bucketMs(range, 30));
  const origin = minuteStart(range);
  const [stats, buckets] = await Promise.all([query(statsSql(range)), query(trendSql(range, step))]);
  if (!ctx.alive()) return;
  const secs = (range.end - range.start) / 1000;
  const nb = Math.max(1, Math.ceil((range.end - origin) / step));
  const trend = new Map();
  for (const b of buckets) {
    const i = Math.floor((tsMs(b.t) - origin) / step);
    if (i < 0 || i >= nb) continue;
    if (!trend.has(b.service_name)) trend.set(b.service_name, { req: new Array(nb).fill(0), err: new Array(nb).fill(0) });
    const t = trend.get(b.service_name);
    t.req[i] += b.requests;
    t.err[i] += b.errors;
  }
  const rows = stats.map((r) => ({
    ...r, rate: r.requests / secs, error_rate: r.requests ? r.errors / r.requests : 0,
  }));
  const total = rows.reduce((acc, r) => ({ req: acc.req + r.requests, err: acc.err + r.errors, spans: acc.spans + r.spans }),
    { req: 0, err: 0, spans: 0 });

  const sort = q.get('sort') || 'rate';
  const dir = q.get('dir') || (sort === 'service_name' ? 'asc' : 'desc');
  const cols = [
    { key: 'service_name', label: 'Service', render: (r) => h('span', {},
      h('span', { class: 'dot', style: `background:${colorFor(r.service_name)}` }),
      a(link(`/services/${encodeURIComponent(r.service_name)}`, q), r.service_name)) },
    { key: 'requests', label: 'Requests', num: true, render: (r) => fmtNum(r.requests) },
    { key: 'rate', label: 'Rate', num: true, render: (r) => fmtRate(r.rate) },
    { key: 'errors', label: 'Errors', num: true, render: (r) => fmtNum(r.errors) },
    { key: 'error_rate', label: 'Error rate', num: true,
      render: (r) => h('span', { class: r.error_rate > 0.05 ? 'badge-err' : null }, fmtPct(r.error_rate)) },
    { key: 'p50', label: 'p50', num: true, render: (r) => fmtMs(r.p50) },
    { key: 'p95', label: 'p95', num: true, render: (r) => fmtMs(r.p95) },
    { key: 'p99', label: 'p99', num: true, render: (r) => fmtMs(r.p99) },
    { key: 'trend', label: 'Requests trend', sortable: false, value: () => '',
      render: (r) => sparkline((trend.get(r.service_name) || { req: [] }).req, { label: `requests of ${r.service_name}` }) },
    { key: 'etrend', label: 'Errors trend', sortable: false, value: () => '',
      render: (r) => sparkline((trend.get(r.service_name) || { err: [] }).err, { color: 'var(--err)', label: `errors of ${r.service_name}` }) },
  ];
  const out = [h('h1', {}, 'Services ', h('span', { class: 'muted', style: 'font-size:13px;font-weight:normal' }, range.label))];
  if (!rows.length) {
    out.push(emptyState());
  } else {
    out.push(h('div', { class: 'cards' },
      card('Services', fmtNum(rows.length), { 'data-stat': 'services', 'data-value': rows.length }),
      card('Requests', fmtNum(total.req), { 'data-stat': 'requests', 'data-value': total.req }),
      card('Request rate', fmtRate(total.req / secs), { 'data-stat': 'rate', 'data-value': total.req / secs }),
      card('Error rate', fmtPct(total.req ? total.err / total.req : 0),
        { 'data-stat': 'error_rate', 'data-value': total.req ? total.err / total.req : 0 }),
      card('Spans', fmtNum(total.spans), { 'data-stat': 'spans', 'data-value': total.spans })));
    out.push(h('div', { class: 'panel scroll' },
      h('p', { class: 'muted', style: 'margin-top:0' }, 'Requests are SERVER and CONSUMER spans; latency percentiles are over their durations (±2 %). Counted by whole minutes: the first and last minute of the range count in full.'),
      sortableTable(cols, rows, {
        sort, dir,
        onSort: (k, d) => ctx.setParams({ sort: k, dir: d }, { replace: true }),
        rowAttrs: (r) => ({ 'data-service': r.service_name }),
      })));
  }
  el.replaceChildren(...out);
}
