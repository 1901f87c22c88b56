// SQL console (`/sql?q=`): runs SQL over `spans`, the rollup tables (`span_stats`, `call_edges`,
// `slow_spans`) and the `ps_trace` views, shows a table, a
// time-series chart when the result has a time column, and offers a CSV download.
// Macros: $__timeFilter(col) (the picked range), $__timeFrom, $__timeTo, $__interval.
import { sql, h, timeWhere, bucketMs, tsMs, fmtNum, fullWidth } from './lib.js';
import { lineChart } from './charts.js';

export const EXAMPLES = [
  ['Requests, errors and p99 per service (per-minute rollups)', `select service_name, sum(calls) as requests,
  sum(errors) as errors,
  hist_quantile(hist, 0.99) as p99_ms
from span_stats
where $__timeFilter(minute) and span_kind = 'SPAN_KIND_SERVER'
group by service_name order by requests desc`],
  ['Calls between services (per-minute rollups)', `select caller_service, callee_service, sum(calls) as calls,
  sum(errors) as errors, sum(sum_ms) / sum(calls) as avg_ms, hist_quantile(hist, 0.99) as p99_ms
from call_edges
where $__timeFilter(minute)
group by 1, 2 order by calls desc`],
  ['Requests, errors and p99 per service (raw spans)', `select service_name, count(*) as requests,
  sum(case when status_code = 'STATUS_CODE_ERROR' then 1 else 0 end) as errors,
  approx_percentile_cont(duration_ms, 0.99) as p99_ms
from spans
where $__timeFilter(start_time) and span_kind = 'SPAN_KIND_SERVER'
group by service_name order by requests desc`],
  ['Requests per minute by service (chart)', `select date_bin(interval '1 minute', start_time) as time,
  service_name, count(*) as requests
from spans
where $__timeFilter(start_time) and span_kind = 'SPAN_KIND_SERVER'
group by 1, 2 order by 1`],
  ['Latency percentiles over time (chart)', `select date_bin($__interval, start_time) as time,
  approx_percentile_cont(duration_ms, 0.5) as p50,
  approx_percentile_cont(duration_ms, 0.95) as p95,
  approx_percentile_cont(duration_ms, 0.99) as p99
from spans
where $__timeFilter(start_time) and span_kind = 'SPAN_KIND_SERVER'
group by 1 order by 1`],
  ['Slowest spans with an HTTP route', `select trace_id, service_name, span_name,
  span_attributes['http.route'] as route, duration_ms
from spans
where $__timeFilter(start_time) and span_attributes['http.route'] is not null
order by duration_ms desc limit 20`],
  ['Errors by status message', `select service_name, span_name, status_message, count(*) as n
from spans
where $__timeFilter(start_time) and status_code = 'STATUS_CODE_ERROR'
group by 1, 2, 3 order by n desc limit 50`],
  ['Promscale: service dependencies (ps_trace.span)', `select p.service_name as parent, c.service_name as child, count(*) as calls
from ps_trace.span c join ps_trace.span p
  on c.trace_id = p.trace_id and c.parent_span_id = p.span_id
where c.service_name <> p.service_name and $__timeFilter(c.start_time)
group by 1, 2 order by calls desc`],
  ['Promscale: tag filter (ps_trace.span)', `select span_name, count(*) as n
from ps_trace.span
where $__timeFilter(start_time) and span_tags -> 'http.request.method' = '"GET"'
group by span_name order by n desc`],
  ['Promscale: exception events (ps_trace.event)', `select service_name, span_name, event_name,
  event_tags -> 'exception.type' as type, count(*) as n
from ps_trace.event
where $__timeFilter(time)
group by 1, 2, 3, 4 order by n desc limit 20`],
];

/** Replaces the time macros with SQL for the range. */
export function expand(text, range) {
  const step = bucketMs(range, 100);
  return text
    .replace(/\$__timeFilter\(\s*([^)]+?)\s*\)/g, (_, col) => `(${timeWhere(range, col)})`)
    .replaceAll('$__timeFrom', `to_timestamp_millis(${Math.floor(range.start)})`)
    .replaceAll('$__timeTo', `to_timestamp_millis(${Math.floor(range.end)})`)
    .replaceAll('$__interval', `interval '${step} milliseconds'`);
}

function csvCell(v) {
  if (v == null) return '';
  const t = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(t) ? `"${t.replaceAll('"', '""')}"` : t;
}

export function toCsv(res) {
  return [res.columns, ...res.rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

const isTime = (v) => typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(v);

/** Chart series from a result with a time column: numeric columns, split by one text column if any. */
export function seriesOf(res) {
  const first = res.rows.find((r) => r.some((v) => v != null)) || [];
  const tcol = res.columns.findIndex((_, i) => isTime(first[i]));
  if (tcol < 0) return null;
  const nums = res.columns.map((_, i) => i).filter((i) => i !== tcol && res.rows.some((r) => typeof r[i] === 'number'));
  const texts = res.columns.map((_, i) => i).filter((i) => i !== tcol && !nums.includes(i) && typeof first[i] === 'string');
  if (!nums.length) return null;
  const split = texts.length === 1 ? texts[0] : -1;
  const series = new Map();
  for (const r of res.rows) {
    const t = tsMs(r[tcol]);
    if (t == null) continue;
    for (const i of nums) {
      const name = split >= 0 ? (nums.length > 1 ? `${r[split]} ${res.columns[i]}` : String(r[split])) : res.columns[i];
      if (!series.has(name)) series.set(name, []);
      series.get(name).push([t, r[i]]);
    }
  }
  return [...series.entries()].slice(0, 12).map(([name, points]) => ({ name, points }));
}

let state = null; // {text, res}

export async function render(el, ctx) {
  const { q } = ctx;
  const text = q.get('q') || EXAMPLES[0][1];
  const area = h('textarea', { class: 'sql', id: 'sql-text', spellcheck: 'false', 'aria-label': 'SQL query' }, text);
  const examples = h('select', { id: 'sql-examples', 'aria-label': 'Examples' }, h('option', { value: '' }, 'Examples…'),
    EXAMPLES.map(([name], i) => h('option', { value: String(i) }, name)));
  examples.addEventListener('change', () => {
    const ex = EXAMPLES[Number(examples.value)];
    if (ex) ctx.setParams({ q: ex[1] });
  });
  const run = () => ctx.setParams({ q: area.value });
  area.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(); } });
  const csvBtn = h('button', { type: 'button', id: 'sql-csv', disabled: true }, 'Download CSV');
  csvBtn.addEventListener('click', () => {
    if (!state || !state.res) return;
    const url = URL.createObjectURL(new Blob([toCsv(state.res)], { type: 'text/csv' }));
    const link = h('a', { href: url, download: 'osprey-query.csv' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  const out = h('div', { id: 'sql-out' });
  el.replaceChildren(h('h1', {}, 'SQL console'),
    h('p', { class: 'muted' }, 'DataFusion SQL over ', h('code', {}, 'spans'), ', its per-minute rollups ', h('code', {}, 'span_stats'), ', ',
      h('code', {}, 'call_edges'), ', ', h('code', {}, 'slow_spans'), ' and the Promscale views ', h('code', {}, 'ps_trace.span'), ', ',
      h('code', {}, 'ps_trace.event'), ', ', h('code', {}, 'ps_trace.link'), '. ', h('code', {}, '$__timeFilter(start_time)'), ' and ',
      h('code', {}, '$__interval'), ' follow the time range picker. Ctrl+Enter runs.'),
    area,
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', id: 'sql-run', onclick: run }, 'Run'), examples, csvBtn,
      h('span', { class: 'muted', id: 'sql-status' })),
    out);
  await execute(el, ctx, text);
}

export async function refresh(el, ctx) {
  const area = el.querySelector('#sql-text');
  await execute(el, ctx, area ? area.value : ctx.q.get('q') || '');
}

async function execute(el, ctx, text) {
  const out = el.querySelector('#sql-out');
  const status = el.querySelector('#sql-status');
  const csvBtn = el.querySelector('#sql-csv');
  const t = performance.now();
  let res;
  try {
    res = await sql(expand(text, ctx.range));
  } catch (e) {
    if (!ctx.alive()) return;
    state = null;
    csvBtn.disabled = true;
    status.textContent = '';
    out.replaceChildren(h('div', { class: 'error-box', role: 'alert' }, e.message));
    return;
  }
  if (!ctx.alive()) return;
  state = { text, res };
  csvBtn.disabled = false;
  status.textContent = `${fmtNum(res.rows.length)} rows in ${Math.round(performance.now() - t)} ms`;
  const series = seriesOf(res);
  const shown = res.rows.slice(0, 1000);
  const cell = (v) => (v == null ? h('span', { class: 'muted' }, 'null') : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const table = h('table', { 'data-table': 'sql' },
    h('thead', {}, h('tr', {}, res.columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, shown.map((r) => h('tr', {}, r.map((v) => h('td', { class: typeof v === 'number' ? 'num mono' : 'mono' }, cell(v)))))));
  let x0 = Infinity, x1 = -Infinity;
  for (const se of series || []) for (const [x] of se.points) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); }
  out.replaceChildren(
    series && series.length ? h('section', { class: 'panel', 'data-chart': true },
      lineChart(series, { x0, x1: x1 > x0 ? x1 : x0 + 1000, yFmt: (v) => fmtNum(v), title: 'query result over time', width: fullWidth(), height: 240 })) : '',
    h('section', { class: 'panel scroll-y' }, res.rows.length > shown.length ? h('p', { class: 'muted' }, `Showing the first ${shown.length} rows; the CSV has all.`) : '', table));
}
