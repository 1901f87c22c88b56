// Service map (`/map`): the call graph between services from the `call_edges` rollup, laid out
// in layers (callers left of callees); nodes sized by request rate, edges by calls.
import {
  query, minuteWhere, SERVER_KINDS, h, s, a, link, fmtRate, fmtPct, fmtMs, fmtNum, emptyState,
} from './lib.js';
import { showTip, hideTip } from './charts.js';

/** Ranks nodes by longest path from the roots, ignoring the edges that close cycles. */
export function layers(names, edges) {
  const out = new Map(names.map((n) => [n, []]));
  const indeg = new Map(names.map((n) => [n, 0]));
  for (const e of edges) { out.get(e.from).push(e.to); indeg.set(e.to, indeg.get(e.to) + 1); }
  // Depth-first search from the roots (then from whatever is left) marks back edges.
  const state = new Map();
  const back = new Set();
  const order = [...names].sort((x, y) => indeg.get(x) - indeg.get(y) || x.localeCompare(y));
  for (const root of order) {
    if (state.has(root)) continue;
    const stack = [[root, 0]];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [n, i] = top;
      const next = out.get(n)[i];
      if (next === undefined) { state.set(n, 2); stack.pop(); continue; }
      top[1] += 1;
      if (state.get(next) === 1) back.add(`${n}\u0000${next}`);
      else if (!state.has(next)) { state.set(next, 1); stack.push([next, 0]); }
    }
  }
  const dag = edges.filter((e) => !back.has(`${e.from}\u0000${e.to}`) && e.from !== e.to);
  const rank = new Map(names.map((n) => [n, 0]));
  const deg = new Map(names.map((n) => [n, 0]));
  for (const e of dag) deg.set(e.to, deg.get(e.to) + 1);
  const queue = names.filter((n) => deg.get(n) === 0);
  while (queue.length) {
    const n = queue.shift();
    for (const e of dag) {
      if (e.from !== n) continue;
      rank.set(e.to, Math.max(rank.get(e.to), rank.get(n) + 1));
      deg.set(e.to, deg.get(e.to) - 1);
      if (deg.get(e.to) === 0) queue.push(e.to);
    }
  }
  const cols = [];
  for (const n of names) {
    const r = rank.get(n);
    (cols[r] = cols[r] || []).push(n);
  }
  // Order each layer by the mean position of its callers, to cut crossings.
  const pos = new Map();
  cols.forEach((c, ci) => {
    if (ci > 0) {
      const bary = (n) => {
        const ps = edges.filter((e) => e.to === n && pos.has(e.from)).map((e) => pos.get(e.from));
        return ps.length ? ps.reduce((x, y) => x + y, 0) / ps.length : Infinity;
      };
      c.sort((x, y) => bary(x) - bary(y) || x.localeCompare(y));
    } else c.sort();
    c.forEach((n, i) => pos.set(n, (i + 0.5) / c.length));
  });
  return cols.filter(Boolean);
}

/** The calls between services, from the per-minute rollup `call_edges`: a client or producer
 * span (the caller's) whose child is a server or consumer span of another service (the
 * callee's); latency is the child's, and a call counts in the minute its child started. */
export function edgesSql(range) {
  return `select caller_service as caller, callee_service as callee, sum(calls) as calls,
      sum(errors) as errors, sum(sum_ms) / sum(calls) as avg_ms, hist_quantile(hist, 0.99) as p99
      from call_edges where ${minuteWhere(range)} group by 1, 2`;
}

/** Per service requests and errors (SERVER and CONSUMER spans), from the per-minute rollups. */
export function nodesSql(range) {
  return `select service_name, sum(case when ${SERVER_KINDS} then calls else 0 end) as requests,
      sum(case when ${SERVER_KINDS} then errors else 0 end) as errors
      from span_stats where ${minuteWhere(range)} group by 1`;
}

export async function render(el, ctx) {
  const { range, q } = ctx;
  const secs = (range.end - range.start) / 1000;
  const [nodes, edges] = await Promise.all([
    query(nodesSql(range)),
    query(edgesSql(range)),
  ]);
  if (!ctx.alive()) return;
  const title = h('h1', {}, 'Service map ', h('span', { class: 'muted', style: 'font-size:13px;font-weight:normal' }, range.label));
  if (!nodes.length) { el.replaceChildren(title, emptyState()); return; }
  const names = [...new Set([...nodes.map((n) => n.service_name), ...edges.flatMap((e) => [e.caller, e.callee])])];
  const info = new Map(nodes.map((n) => [n.service_name, n]));
  const es = edges.map((e) => ({ ...e, from: e.caller, to: e.callee }));
  const cols = layers(names, es);
  const colW = 220, rowH = 64, padX = 90, padY = 40;
  const tallest = Math.max(...cols.map((c) => c.length));
  const W = padX * 2 + (cols.length - 1) * colW + 40;
  const H = padY * 2 + (tallest - 1) * rowH + 30;
  const at = new Map();
  cols.forEach((c, ci) => c.forEach((n, i) => {
    const off = ((tallest - c.length) * rowH) / 2;
    at.set(n, { x: padX + ci * colW, y: padY + off + i * rowH });
  }));
  const maxRate = Math.max(1e-9, ...nodes.map((n) => n.requests / secs));
  const radius = (n) => 8 + 16 * Math.sqrt(((info.get(n) || { requests: 0 }).requests / secs) / maxRate);
  const maxCalls = Math.max(1, ...es.map((e) => e.calls));
  const focus = q.get('focus');
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'service dependency graph', width: W, height: H, style: 'display:block;margin:0 auto' },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
      s('path', { d: 'M0,0L10,5L0,10z', fill: 'var(--muted)' }))));
  const edgeEls = [];
  for (const e of es) {
    const p = at.get(e.from), c = at.get(e.to);
    const r1 = radius(e.from), r2 = radius(e.to);
    const fwd = c.x > p.x;
    const x1 = p.x + (fwd ? r1 : 0), y1 = p.y + (fwd ? 0 : -r1);
    const x2 = c.x - (fwd ? r2 + 2 : 0), y2 = c.y + (fwd ? 0 : -r2 - 2);
    const mx = (x1 + x2) / 2;
    const d = fwd ? `M${x1},${y1}C${mx},${y1} ${mx},${y2} ${x2},${y2}`
      : `M${x1},${y1}C${x1 + 60},${y1 - 70} ${x2 - 60},${y2 - 70} ${x2},${y2}`;
    const er = e.calls ? e.errors / e.calls : 0;
    const text = `${e.caller} → ${e.callee}\ncalls ${fmtNum(e.calls)} (${fmtRate(e.calls / secs)})\nerrors ${fmtPct(er)}\navg ${fmtMs(e.avg_ms)}  p99 ${fmtMs(e.p99)}`;
    const path = s('path', {
      d, class: `edge${er > 0.05 ? ' errs' : ''}${focus && (e.from === focus || e.to === focus) ? ' on' : ''}`,
      'stroke-width': (1 + 5 * Math.sqrt(e.calls / maxCalls)).toFixed(1), 'marker-end': 'url(#arrow)',
      'data-from': e.from, 'data-to': e.to,
      onmousemove: (ev) => showTip(ev, text), onmouseleave: hideTip,
    });
    edgeEls.push(path);
    svg.append(path);
  }
  for (const n of names) {
    const { x, y } = at.get(n);
    const st = info.get(n) || { requests: 0, errors: 0 };
    const er = st.requests ? st.errors / st.requests : 0;
    const text = `${n}\nrequests ${fmtNum(st.requests)} (${fmtRate(st.requests / secs)})\nerrors ${fmtPct(er)}`;
    const g = s('a', { href: link(`/services/${encodeURIComponent(n)}`, q), 'data-nav': '', class: `node${er > 0.05 ? ' errs' : ''}`, 'data-service': n, 'aria-label': text.replaceAll('\n', ', ') },
      s('circle', { cx: x, cy: y, r: radius(n) }),
      s('text', { x, y: y + radius(n) + 13, 'text-anchor': 'middle' }, n));
    const hl = (on) => {
      wrap.classList.toggle('focus', on || !!focus);
      for (const p of edgeEls) p.classList.toggle('on', on ? (p.dataset.from === n || p.dataset.to === n) : !!focus && (p.dataset.from === focus || p.dataset.to === focus));
    };
    g.addEventListener('mouseenter', () => hl(true));
    g.addEventListener('focus', () => hl(true));
    g.addEventListener('mousemove', (ev) => showTip(ev, text));
    g.addEventListener('mouseleave', () => { hl(false); hideTip(); });
    g.addEventListener('blur', () => hl(false));
    svg.append(g);
  }
  const wrap = h('div', { class: `panel map scroll${focus ? ' focus' : ''}`, style: 'max-height:none' }, svg);
  const table = h('table', { 'data-table': 'edges' },
    h('thead', {}, h('tr', {}, ['Caller', 'Callee'].map((t) => h('th', {}, t)),
      ['Calls', 'Rate', 'Errors', 'Avg', 'p99'].map((t) => h('th', { class: 'num' }, t)))),
    h('tbody', {}, [...es].sort((x, y) => y.calls - x.calls).map((e) => h('tr', {},
      h('td', {}, a(link(`/services/${encodeURIComponent(e.caller)}`, q), e.caller)),
      h('td', {}, a(link(`/services/${encodeURIComponent(e.callee)}`, q), e.callee)),
      h('td', { class: 'num' }, fmtNum(e.calls)), h('td', { class: 'num' }, fmtRate(e.calls / secs)),
      h('td', { class: 'num' }, fmtPct(e.calls ? e.errors / e.calls : 0)),
      h('td', { class: 'num' }, fmtMs(e.avg_ms)), h('td', { class: 'num' }, fmtMs(e.p99))))));
  el.replaceChildren(title,
    h('p', { class: 'muted' }, `${names.length} services, ${es.length} dependencies. Edges are client or producer spans calling server or consumer spans of another service. Node size: request rate; edge width: calls; red: error rate above 5%. Hover for numbers, click a service for details.`),
    wrap, h('section', { class: 'panel scroll' }, h('h2', {}, 'Dependencies'), table));
}
