// Shared helpers of the Osprey UI: the SQL API client, time ranges, formatting, DOM building.

/** Runs SQL through POST /api/sql; resolves to {columns, rows}, rejects with the server's error. */
export async function sql(query) {
  const r = await fetch('/api/sql', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql: query }),
  });
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  if (!r.ok) throw new Error((body && body.error) || `HTTP ${r.status}`);
  if (!body || !Array.isArray(body.columns)) throw new Error('unexpected answer from /api/sql');
  return body;
}

/** The rows of a SQL answer as objects keyed by column name. */
export function objects(res) {
  return res.rows.map((row) => Object.fromEntries(res.columns.map((c, i) => [c, row[i]])));
}

/** Runs SQL and returns row objects. */
export async function query(q) { return objects(await sql(q)); }

/** A SQL string literal. */
export function lit(s) { return `'${String(s).replaceAll("'", "''")}'`; }

/** `col` within the range: start inclusive, end exclusive. */
export function timeWhere(range, col = 'start_time') {
  return `${col} >= to_timestamp_millis(${Math.floor(range.start)}) and ${col} < to_timestamp_millis(${Math.floor(range.end)})`;
}

/** The start of the minute holding the range start (epoch ms). */
export function minuteStart(range) { return Math.floor(range.start / 60000) * 60000; }

/** The `span_stats` minutes overlapping the range: whole minutes, so a range that does not
 * start and end on a minute boundary covers the whole first and last minutes. */
export function minuteWhere(range) {
  return `minute >= to_timestamp_millis(${minuteStart(range)}) and minute < to_timestamp_millis(${Math.floor(range.end)})`;
}

export const SERVER_KINDS = "span_kind in ('SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER')";
export const IS_ERROR = "status_code = 'STATUS_CODE_ERROR'";
/** The spans that call another service (`alias.` prefixes the column in a join). */
export const CALLER_KINDS = (alias) => `${alias}.span_kind in ('SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER')`;
/** The spans that serve a call from another service. */
export const CALLEE_KINDS = (alias) => `${alias}.span_kind in ('SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER')`;

const UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000 };

/** "15m" -> 900000 ms; null when not a duration. */
export function parseDuration(s) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/.exec(String(s || ''));
  if (!m) return null;
  return Number(m[1]) * UNITS[m[2] || 'ms'];
}

/** A URL time value: epoch milliseconds or an ISO 8601 date. */
export function parseTimeParam(v) {
  if (v == null || v === '') return null;
  if (/^\d+$/.test(v)) return Number(v);
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

/** The time range in the URL: {start, end, label, fixed}; `?start=&end=` wins over `?range=`. */
export function rangeFromQuery(q, now = Date.now()) {
  const start = parseTimeParam(q.get('start'));
  const end = parseTimeParam(q.get('end'));
  if (start != null && end != null && end > start) {
    return { start, end, fixed: true, label: `${fmtDate(start)} – ${fmtDate(end)}` };
  }
  const rng = q.get('range') || '1h';
  const dur = parseDuration(rng) || 3600000;
  return { start: now - dur, end: now, fixed: false, label: `last ${rng}`, range: rng };
}

/** The time keys of the URL (start/end or range, refresh), to carry into links. */
export function timeParams(q) {
  const out = new URLSearchParams();
  for (const k of ['start', 'end', 'range', 'refresh']) if (q.get(k)) out.set(k, q.get(k));
  return out;
}

/** A link to `path` keeping the time range of the current URL, with extra parameters. */
export function link(path, q, extra = {}) {
  const p = timeParams(q);
  for (const [k, v] of Object.entries(extra)) {
    if (v == null || v === '') p.delete(k); else p.set(k, v);
  }
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

/** A bucket width giving about `n` buckets over the range, rounded to a readable step. */
export function bucketMs(range, n = 60) {
  const steps = [1e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5];
  const want = (range.end - range.start) / n;
  return steps.find((s) => s >= want) || steps[steps.length - 1];
}

/** SQL bucketing `start_time` into `ms`-wide buckets aligned on the range start. */
export function bucketExpr(range, ms, col = 'start_time') {
  return `date_bin(interval '${ms} milliseconds', ${col}, to_timestamp_millis(${Math.floor(range.start)}))`;
}

/** Parses an API timestamp ("2026-01-02T03:04:05.123456789Z", UTC when no zone) to fractional ms. */
export function tsMs(s) {
  if (s == null) return null;
  if (typeof s === 'number') return s;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/.exec(s);
  if (!m) { const t = Date.parse(s); return Number.isNaN(t) ? null : t; }
  const base = Date.parse(m[1] + (m[3] || 'Z'));
  const frac = m[2] ? Number(`0.${m[2]}`) * 1000 : 0;
  return base + frac;
}

export function fmtDate(ms) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtTime(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A duration in ms, readable: 850µs, 12.3ms, 1.24s. */
export function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return '–';
  if (ms === 0) return '0';
  if (ms < 1) return `${(ms * 1000).toFixed(ms < 0.01 ? 1 : 0)}µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)}ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)}s`;
  return `${(ms / 60000).toFixed(1)}min`;
}

export function fmtNum(n) {
  if (n == null || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: 2 });
}

/** A rate per second. */
export function fmtRate(r) {
  if (r == null || Number.isNaN(r)) return '–';
  if (r === 0) return '0/s';
  if (r < 0.01) return `${(r * 60).toFixed(2)}/min`;
  return `${r < 10 ? r.toFixed(2) : r.toFixed(1)}/s`;
}

export function fmtPct(f) {
  if (f == null || Number.isNaN(f)) return '–';
  return `${(f * 100).toFixed(f > 0 && f < 0.001 ? 3 : 2)}%`;
}

/** Builds an element: h('a', {href: '/x', class: 'y', onclick: fn}, 'text', child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An SVG element with attributes. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** The pixel width for a chart spanning the whole view (so its text is not scaled up). */
export function fullWidth() {
  const v = document.getElementById('view');
  return Math.max(640, Math.min(1500, (v ? v.clientWidth : 1000) - 60));
}

/** A link handled by the client-side router. */
export function a(href, ...children) { return h('a', { href, 'data-nav': true }, ...children); }

/** Distinct colours per service name, stable across pages. */
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1',
  '#ff9da7', '#9c755f', '#8cd17d', '#499894', '#d37295', '#86bcb6', '#f1ce63', '#a0cbe8', '#fabfd2'];
export function colorFor(name) {
  let hsh = 0;
  for (const ch of String(name)) hsh = (hsh * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hsh % PALETTE.length];
}
export const SERIES = ['#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#9c755f'];

/** The box shown when there is no data in the range: how to send some. */
export function emptyState(what = 'No spans in this time range.') {
  const host = location.hostname || 'localhost';
  return h('div', { class: 'panel empty', 'data-empty': true },
    h('h2', {}, what),
    h('p', { class: 'muted' }, 'Send traces with any OpenTelemetry SDK or collector to this Osprey, then widen the time range if needed:'),
    h('pre', { class: 'mono' },
      `OTLP gRPC   ${host}:4317   (also :9202)\n` +
      `OTLP HTTP   http://${host}:4318/v1/traces\n\n` +
      `# or generate demo traffic:\nosprey loadgen --duration 60s\n\n` +
      `# SDK settings:\nOTEL_EXPORTER_OTLP_ENDPOINT=http://${host}:4318\nOTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`));
}

export function errorBox(e) {
  return h('div', { class: 'error-box', role: 'alert' }, `Query failed: ${e && e.message ? e.message : e}`);
}

/** A summary card. */
export function card(k, v, attrs = {}) {
  return h('div', { class: 'card', ...attrs }, h('div', { class: 'v' }, v), h('div', { class: 'k' }, k));
}

/** A table whose column headers sort it; `cols`: [{key, label, num, render(row), value(row)}]. */
export function sortableTable(cols, rows, { sort, dir = 'desc', onSort, rowAttrs } = {}) {
  const col = cols.find((c) => c.key === sort);
  const sorted = [...rows];
  if (col) {
    const val = col.value || ((r) => r[col.key]);
    sorted.sort((x, y) => {
      const a1 = val(x), b1 = val(y);
      const c = typeof a1 === 'number' && typeof b1 === 'number' ? a1 - b1 : String(a1).localeCompare(String(b1));
      return dir === 'asc' ? c : -c;
    });
  }
  const head = h('tr', {}, cols.map((c) => {
    const active = c.key === sort;
    const aria = active ? (dir === 'asc' ? 'ascending' : 'descending') : null;
    const label = c.sortable === false ? c.label : h('button', {
      class: 'sort', type: 'button',
      onclick: () => onSort && onSort(c.key, active && dir === 'desc' ? 'asc' : 'desc'),
    }, c.label, active ? (dir === 'asc' ? ' ▲' : ' ▼') : '');
    return h('th', { class: c.num ? 'num' : null, 'aria-sort': aria, scope: 'col' }, label);
  }));
  const body = sorted.map((r) => h('tr', rowAttrs ? rowAttrs(r) : {}, cols.map((c) => {
    const v = c.value ? c.value(r) : r[c.key];
    return h('td', { class: c.num ? 'num' : null, 'data-col': c.key, 'data-value': typeof v === 'number' ? v : null },
      c.render ? c.render(r) : v);
  })));
  return h('table', {}, h('thead', {}, head), h('tbody', {}, body));
}
