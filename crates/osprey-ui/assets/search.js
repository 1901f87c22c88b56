// Trace search (`/search`): filters in the URL (service, operation, tags, minDuration,
// maxDuration, limit, sort); results as a duration scatter plot and a list.
import {
  query, lit, timeWhere, minuteWhere, tsMs, parseDuration, IS_ERROR, h, a, link, fmtMs, fmtDate, emptyState, colorFor, fullWidth,
} from './lib.js';
import { scatter } from './charts.js';

/** Parses `k=v k2="v w"` into [[k, v], ...]; throws on a malformed pair. */
export function parseTags(s) {
  const out = [];
  const re = /\s*([^\s=]+)=(?:"([^"]*)"|(\S*))/gy;
  const rest = String(s || '').trim();
  let pos = 0;
  while (pos < rest.length) {
    re.lastIndex = pos;
    const m = re.exec(rest);
    if (!m) throw new Error(`cannot read the attribute filter near “${rest.slice(pos).trim()}”: write key=value pairs separated by spaces`);
    out.push([m[1], m[2] ?? m[3]]);
    pos = re.lastIndex;
  }
  return out;
}

function filters(q, range) {
  const w = [timeWhere(range)];
  if (q.get('service')) w.push(`service_name = ${lit(q.get('service'))}`);
  if (q.get('operation')) w.push(`span_name = ${lit(q.get('operation'))}`);
  for (const [k, v] of parseTags(q.get('tags'))) {
    w.push(`(span_attributes[${lit(k)}] = ${lit(v)} or resource_attributes[${lit(k)}] = ${lit(v)})`);
  }
  const min = parseDuration(q.get('minDuration')), max = parseDuration(q.get('maxDuration'));
  if (min != null) w.push(`duration_ms >= ${min}`);
  if (max != null) w.push(`duration_ms <= ${max}`);
  return w.join(' and ');
}

export async function render(el, ctx) {
  const { range, q } = ctx;
  // The pick lists come from the per-minute rollups (whole minutes of the range).
  const mw = minuteWhere(range);
  const [services, ops] = await Promise.all([
    query(`select distinct service_name from span_stats where ${mw} order by 1`),
    q.get('service') ? query(`select distinct span_name from span_stats where ${mw} and service_name = ${lit(q.get('service'))} order by 1`) : [],
  ]);
  if (!ctx.alive()) return;
  const field = (label, input) => h('label', {}, label, input);
  const svcSel = h('select', { name: 'service', id: 'f-service' }, h('option', { value: '' }, 'Any service'),
    services.map((r) => h('option', { value: r.service_name, selected: r.service_name === q.get('service') }, r.service_name)));
  const opSel = h('select', { name: 'operation', id: 'f-operation' }, h('option', { value: '' }, 'Any operation'),
    ops.map((r) => h('option', { value: r.span_name, selected: r.span_name === q.get('operation') }, r.span_name)));
  svcSel.addEventListener('change', () => ctx.setParams({ service: svcSel.value, operation: null, go: null }, { replace: true }));
  const form = h('form', { class: 'panel search', id: 'search-form' },
    field('Service', svcSel), field('Operation', opSel),
    field('Attributes (key=value …)', h('input', { name: 'tags', value: q.get('tags') || '', placeholder: 'http.route=/api/cart', id: 'f-tags' })),
    field('Min duration', h('input', { name: 'minDuration', value: q.get('minDuration') || '', placeholder: 'e.g. 100ms, 1.5s', size: 8 })),
    field('Max duration', h('input', { name: 'maxDuration', value: q.get('maxDuration') || '', placeholder: 'e.g. 2s', size: 8 })),
    field('Limit', h('select', { name: 'limit' }, ['20', '50', '100', '500'].map((n) => h('option', { value: n, selected: (q.get('limit') || '20') === n }, n)))),
    field('Sort', h('select', { name: 'sort' }, [['recent', 'Most recent'], ['slowest', 'Slowest'], ['errors', 'Most errors']].map(([v, t]) => h('option', { value: v, selected: (q.get('sort') || 'recent') === v }, t)))),
    h('button', { type: 'submit', class: 'primary', id: 'f-submit' }, 'Find traces'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const upd = { go: '1' };
    for (const k of ['service', 'operation', 'tags', 'minDuration', 'maxDuration', 'limit', 'sort']) upd[k] = String(fd.get(k) || '').trim() || null;
    ctx.setParams(upd);
  });
  const idInput = h('input', { name: 'traceID', placeholder: '32 hex digits', size: 34, class: 'mono', 'aria-label': 'Trace ID', pattern: '[0-9a-fA-F]{1,32}', required: true });
  const byId = h('form', { class: 'toolbar', id: 'trace-id-form' }, h('label', { class: 'muted' }, 'Open a trace by ID ', idInput),
    h('button', { type: 'submit' }, 'Open'));
  byId.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = idInput.value.trim().toLowerCase();
    if (v) ctx.nav(link(`/trace/${encodeURIComponent(v)}`, q));
  });
  const title = h('h1', {}, 'Trace search ', h('span', { class: 'muted', style: 'font-size:13px;font-weight:normal' }, range.label));
  if (!services.length) { el.replaceChildren(title, form, byId, emptyState()); return; }
  const results = h('div', { id: 'results' });
  el.replaceChildren(title, form, byId, results);
  await runSearch(results, ctx);
}

/** The x extent of the results, padded, so a few recent traces do not crowd one edge. */
function xSpan(traces) {
  const xs = traces.map((t) => t.start);
  const lo = Math.min(...xs), hi = Math.max(...xs);
  const pad = Math.max((hi - lo) * 0.04, 1000);
  return { x0: lo - pad, x1: hi + pad };
}

/** Recent windows tried before the whole range for the default sort (newest traces first). */
export const RECENT_WINDOWS_MS = [60000, 600000];

async function runSearch(out, ctx) {
  const { range, q } = ctx;
  try { filters(q, range); } catch (e) {
    out.replaceChildren(h('div', { class: 'error-box', role: 'alert' }, e.message));
    return;
  }
  const limit = Math.min(1000, Math.max(1, Number(q.get('limit')) || 20));
  const order = { slowest: 'max(duration_ms) desc', errors: `sum(case when ${IS_ERROR} then 1 else 0 end) desc, min(start_time) desc` }[q.get('sort')] || 'min(start_time) desc';
  const idsSql = (r) => `select trace_id from spans where ${filters(q, r)} group by trace_id order by ${order} limit ${limit}`;
  const inList = (ids) => ids.map((r) => lit(r.trace_id)).join(', ');
  // Whole traces may start a little before or end after the range: look 15 minutes around it.
  const pad = 15 * 60000;
  const rowsSql = (ids) => `select trace_id, min(start_time) as st, max(end_time) as et, count(*) as spans,
      sum(case when ${IS_ERROR} then 1 else 0 end) as errors, array_agg(distinct service_name) as services,
      max(case when parent_span_id is null then service_name end) as root_service,
      max(case when parent_span_id is null then span_name end) as root_name
    from spans where trace_id in (${inList(ids)})
      and ${timeWhere({ start: range.start - pad, end: range.end + pad })}
    group by trace_id`;
  // Newest first (the default): a trace ranks by its first matching span, so when the newest
  // minute (or ten) of the range already holds `limit` traces, those are the answer, unless
  // one of them also matches before that window (then it ranks lower than the window shows;
  // `check` finds that, and the whole range is searched instead). Scans a window, not the range.
  let ids = null;
  let check = null;
  if (!q.get('sort') || q.get('sort') === 'recent') {
    for (const w of RECENT_WINDOWS_MS) {
      if (w * 2 > range.end - range.start) break;
      const ws = range.end - w;
      const got = await query(idsSql({ start: ws, end: range.end }));
      if (!ctx.alive()) return;
      if (got.length < limit) continue;
      ids = got;
      check = `select trace_id from spans where ${filters(q, { start: range.start, end: ws })}
        and trace_id in (${inList(got)}) limit 1`;
      break;
    }
  }
  if (!ids) ids = await query(idsSql(range));
  if (!ctx.alive()) return;
  if (!ids.length) {
    out.replaceChildren(h('div', { class: 'panel empty', 'data-empty': true }, h('h2', {}, 'No traces match.'),
      h('p', { class: 'muted' }, 'Widen the time range or remove filters.')));
    return;
  }
  let [rows, early] = await Promise.all([query(rowsSql(ids)), check ? query(check) : []]);
  if (early.length) {
    if (!ctx.alive()) return;
    ids = await query(idsSql(range));
    rows = await query(rowsSql(ids));
  }
  if (!ctx.alive()) return;
  const byId = new Map(rows.map((r) => [r.trace_id, r]));
  const traces = ids.map((r) => byId.get(r.trace_id)).filter(Boolean).map((r) => {
    const st = tsMs(r.st), et = tsMs(r.et);
    return { ...r, start: st, duration: et - st };
  });
  const maxDur = Math.max(...traces.map((t) => t.duration), 1e-9);
  const href = (t) => link(`/trace/${t.trace_id}`, q);
  const name = (t) => t.root_name ? `${t.root_service}: ${t.root_name}` : `${(t.services || [])[0] || '?'}: (root span missing)`;
  const plot = scatter(traces.map((t) => ({
    x: t.start, y: t.duration, error: t.errors > 0, href: href(t),
    label: `${name(t)}\n${fmtMs(t.duration)}, ${t.spans} spans${t.errors ? `, ${t.errors} errors` : ''}\n${fmtDate(t.start)}`,
  })), { ...xSpan(traces), yFmt: fmtMs, title: 'trace durations over time', onPick: true, width: fullWidth() });
  const list = h('ol', { class: 'results', style: 'list-style:none;padding:0;margin:0', 'data-results': traces.length },
    traces.map((t) => h('li', { class: 'panel', 'data-trace': t.trace_id, style: 'margin-bottom:8px' },
      h('div', { style: 'display:flex;justify-content:space-between;gap:12px;flex-wrap:wrap' },
        h('strong', {}, a(href(t), name(t))),
        h('span', {}, fmtMs(t.duration))),
      h('div', { class: 'bar', style: 'margin:6px 0' }, h('span', { style: `width:${((t.duration / maxDur) * 100).toFixed(1)}%;${t.errors ? 'background:var(--err)' : ''}` })),
      h('div', { class: 'muted', style: 'display:flex;gap:12px;flex-wrap:wrap;align-items:center' },
        h('span', {}, `${t.spans} spans`),
        t.errors ? h('span', { class: 'badge-err' }, `${t.errors} errors`) : null,
        h('span', {}, fmtDate(t.start)),
        h('span', { class: 'mono' }, t.trace_id),
        h('span', {}, (t.services || []).sort().map((sv) => h('span', { class: 'chip', style: `border-color:${colorFor(sv)}` }, sv)))))));
  out.replaceChildren(h('section', { class: 'panel' }, h('h2', {}, `${traces.length} traces (duration over start time; red: with errors)`), plot), list);
}
