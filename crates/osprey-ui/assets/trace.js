// Trace view (`/trace/{traceID}`, `?span=` selects a span): waterfall with a collapsible span
// tree, the critical path highlighted, and span details (attributes, resource, events, links,
// status). Spans come from SQL over `spans`; the Jaeger JSON of the trace is linked.
import { query, lit, tsMs, h, a, link, fmtMs, fmtDate, colorFor } from './lib.js';

/** Builds the span tree: nodes {span, children, depth}; spans whose parent is absent are roots. */
export function buildTree(spans) {
  const byId = new Map(spans.map((sp) => [sp.span_id, { span: sp, children: [] }]));
  const roots = [];
  for (const n of byId.values()) {
    const p = n.span.parent_span_id && byId.get(n.span.parent_span_id);
    if (p && p !== n) p.children.push(n); else roots.push(n);
  }
  const byStart = (x, y) => x.span.s - y.span.s;
  for (const n of byId.values()) n.children.sort(byStart);
  roots.sort(byStart);
  return { roots, byId };
}

/** The span ids on the critical path: from the longest root, the chain of last-finishing children. */
export function criticalPath(roots) {
  const on = new Set();
  const visit = (n, limit) => {
    on.add(n.span.span_id);
    let cursor = Math.min(n.span.e, limit);
    const kids = [...n.children].sort((x, y) => y.span.e - x.span.e);
    for (const c of kids) {
      if (c.span.s < cursor) {
        visit(c, cursor);
        cursor = c.span.s;
      }
    }
  };
  const root = [...roots].sort((x, y) => (y.span.e - y.span.s) - (x.span.e - x.span.s))[0];
  if (root) visit(root, Infinity);
  return on;
}

const kv = (obj) => {
  const entries = Object.entries(obj || {}).sort(([x], [y]) => x.localeCompare(y));
  if (!entries.length) return h('p', { class: 'muted' }, 'none');
  return h('table', { class: 'kv' }, h('tbody', {}, entries.map(([k, v]) =>
    h('tr', {}, h('td', {}, k), h('td', {}, typeof v === 'string' ? v : JSON.stringify(v))))));
};

export async function render(el, ctx) {
  const { q } = ctx;
  let id = String(ctx.params.traceID || '').toLowerCase();
  if (/^[0-9a-f]{1,31}$/.test(id)) id = id.padStart(32, '0');
  if (!/^[0-9a-f]{32}$/.test(id)) {
    el.replaceChildren(h('h1', {}, 'Trace'), h('div', { class: 'error-box', role: 'alert' }, `“${ctx.params.traceID}” is not a trace id (32 hex digits).`));
    return;
  }
  const rows = await query(`select span_id, parent_span_id, service_name, span_name, span_kind, start_time, end_time,
      duration_ms, status_code, status_message, trace_state, span_attributes, resource_attributes,
      scope_name, scope_version, events, links, flags
    from spans where trace_id = ${lit(id)} order by start_time`);
  if (!ctx.alive()) return;
  const jsonLink = h('a', { href: `/api/traces/${id}`, target: '_blank', rel: 'noopener' }, 'Trace as JSON (Jaeger API)');
  if (!rows.length) {
    el.replaceChildren(h('h1', {}, 'Trace not found'), h('div', { class: 'panel empty', 'data-empty': true },
      h('p', {}, `No spans of trace `, h('span', { class: 'mono' }, id), ' are stored (yet).'),
      h('p', { class: 'muted' }, 'Spans are queryable a moment after they are received; retention drops old ones.'), jsonLink));
    return;
  }
  for (const r of rows) { r.s = tsMs(r.start_time); r.e = tsMs(r.end_time); }
  const t0 = Math.min(...rows.map((r) => r.s));
  const t1 = Math.max(...rows.map((r) => r.e));
  const total = Math.max(t1 - t0, 1e-6);
  const { roots, byId } = buildTree(rows);
  const crit = criticalPath(roots);
  const services = [...new Set(rows.map((r) => r.service_name))].sort();
  const errors = rows.filter((r) => r.status_code === 'STATUS_CODE_ERROR').length;
  const root = roots[0].span;
  const collapsed = new Set();
  let selected = q.get('span');
  let showCp = q.get('cp') !== '0';

  const wf = h('div', { class: `wf panel${showCp ? ' showcp' : ''}`, role: 'tree', 'aria-label': 'span tree' });
  const cpBox = h('input', { type: 'checkbox', id: 'cp-toggle', checked: showCp });
  cpBox.addEventListener('change', () => { showCp = cpBox.checked; wf.classList.toggle('showcp', showCp); });
  const setUrl = () => {
    const u = new URLSearchParams(location.search);
    if (selected) u.set('span', selected); else u.delete('span');
    history.replaceState(null, '', `${location.pathname}?${u}`);
  };

  const details = (sp) => h('div', { class: 'details', 'data-details': sp.span_id },
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', {}, `${sp.service_name}: ${sp.span_name}`), h('table', { class: 'kv' }, h('tbody', {},
        [['span id', sp.span_id], ['parent span id', sp.parent_span_id || '(root)'], ['kind', sp.span_kind],
          ['start', `${fmtDate(sp.s)} (+${fmtMs(sp.s - t0)})`], ['duration', fmtMs(sp.duration_ms)],
          ['status', sp.status_code + (sp.status_message ? `: ${sp.status_message}` : '')],
          ['scope', `${sp.scope_name || ''} ${sp.scope_version || ''}`.trim() || '–'],
          ['trace state', sp.trace_state || '–'], ['on critical path', crit.has(sp.span_id) ? 'yes' : 'no']]
          .map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: k === 'status' && sp.status_code === 'STATUS_CODE_ERROR' ? 'err' : null }, v)))))),
      h('div', {}, h('h2', {}, 'Attributes'), kv(sp.span_attributes))),
    h('div', { class: 'grid2', style: 'margin-top:12px' },
      h('div', {}, h('h2', {}, `Events (${(sp.events || []).length})`),
        (sp.events || []).length ? (sp.events || []).map((ev) => h('div', { style: 'margin-bottom:8px' },
          h('div', {}, h('strong', {}, ev.name), h('span', { class: 'muted' }, ` +${fmtMs(tsMs(ev.time) - sp.s)}`)), kv(ev.attributes)))
          : h('p', { class: 'muted' }, 'none'),
        h('h2', {}, `Links (${(sp.links || []).length})`),
        (sp.links || []).length ? (sp.links || []).map((l) => h('div', { style: 'margin-bottom:8px' },
          a(link(`/trace/${l.trace_id}`, q, { span: l.span_id }), `${l.trace_id} / ${l.span_id}`), kv(l.attributes)))
          : h('p', { class: 'muted' }, 'none')),
      h('div', {}, h('h2', {}, 'Resource'), kv(sp.resource_attributes))));

  const draw = () => {
    const ticks = h('div', { class: 'row', 'aria-hidden': 'true' }, h('div', { class: 'label muted' }, 'Service: operation'),
      h('div', { class: 'ticks' }, [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', { style: `left:${f * 100}%;${f === 1 ? 'transform:translateX(-100%)' : f === 0 ? 'transform:none' : ''}` }, fmtMs(total * f)))));
    const out = [ticks];
    const walk = (n, depth) => {
      const sp = n.span;
      const open = !collapsed.has(sp.span_id);
      const left = ((sp.s - t0) / total) * 100;
      const width = Math.max(((sp.e - sp.s) / total) * 100, 0.15);
      const isSel = selected === sp.span_id;
      const tog = h('button', {
        type: 'button', class: 'tog', disabled: !n.children.length, 'aria-label': open ? 'collapse' : 'expand',
        'aria-expanded': n.children.length ? String(open) : null,
        onclick: () => { if (open) collapsed.add(sp.span_id); else collapsed.delete(sp.span_id); draw(); },
      }, open ? '▾' : '▸');
      const pick = h('button', {
        type: 'button', class: 'pick', 'data-span': sp.span_id, 'aria-expanded': String(isSel),
        title: `${sp.service_name}: ${sp.span_name}`,
        onclick: () => { selected = isSel ? null : sp.span_id; setUrl(); draw(); },
      }, h('span', { class: sp.status_code === 'STATUS_CODE_ERROR' ? 'err' : null }, `${sp.service_name}: `), sp.span_name,
      n.children.length && !open ? h('span', { class: 'muted' }, ` (+${countDesc(n)})`) : '');
      out.push(h('div', { class: `row${isSel ? ' sel' : ''}${crit.has(sp.span_id) ? ' crit' : ''}`, role: 'treeitem', 'aria-level': depth + 1, 'data-row': sp.span_id },
        h('div', { class: 'label', style: `padding-left:${4 + depth * 14}px` }, tog,
          h('span', { class: 'dot', style: `background:${colorFor(sp.service_name)}` }), pick),
        h('div', { class: 'lane' },
          h('div', { class: `span-bar${sp.status_code === 'STATUS_CODE_ERROR' ? ' error' : ''}`, style: `left:${left}%;width:${width}%;background:${colorFor(sp.service_name)}` }),
          h('span', { class: 'dur', style: left + width > 80 ? `right:${100 - left + 0.5}%` : `left:${left + width + 0.5}%` }, fmtMs(sp.duration_ms))),
        isSel ? details(sp) : null));
      if (open) for (const c of n.children) walk(c, depth + 1);
    };
    for (const r of roots) walk(r, 0);
    wf.replaceChildren(...out);
  };
  const countDesc = (n) => n.children.reduce((acc, c) => acc + 1 + countDesc(c), 0);
  draw();
  el.replaceChildren(
    h('div', { class: 'crumbs' }, a(link('/search', q), 'Traces'), ' / ', h('span', { class: 'mono' }, id)),
    h('h1', {}, `${root.service_name}: ${root.span_name}`),
    h('div', { class: 'cards' },
      h('div', { class: 'card' }, h('div', { class: 'v' }, fmtMs(total)), h('div', { class: 'k' }, 'Duration')),
      h('div', { class: 'card' }, h('div', { class: 'v' }, String(rows.length)), h('div', { class: 'k' }, 'Spans')),
      h('div', { class: 'card' }, h('div', { class: 'v' }, String(services.length)), h('div', { class: 'k' }, 'Services')),
      h('div', { class: 'card' }, h('div', { class: `v${errors ? ' err' : ''}` }, String(errors)), h('div', { class: 'k' }, 'Errors')),
      h('div', { class: 'card' }, h('div', { class: 'v', style: 'font-size:14px' }, fmtDate(t0)), h('div', { class: 'k' }, 'Start'))),
    h('div', { class: 'toolbar' },
      h('label', {}, cpBox, ' Highlight critical path'),
      h('button', { type: 'button', onclick: () => { collapsed.clear(); draw(); } }, 'Expand all'),
      h('button', { type: 'button', onclick: () => { for (const n of byId.values()) if (n.children.length) collapsed.add(n.span.span_id); draw(); } }, 'Collapse all'),
      jsonLink, roots.length > 1 ? h('span', { class: 'muted' }, `${roots.length} root spans (missing parents)`) : null),
    wf);
  if (selected) {
    const row = wf.querySelector(`[data-row="${CSS.escape(selected)}"]`);
    if (row) row.scrollIntoView({ block: 'center' });
  }
}
