// Hand-written SVG charts: time-series lines, sparklines and scatter plots.
import { s, h, fmtTime, fmtDate, SERIES } from './lib.js';

const tip = () => document.getElementById('tooltip');

export function showTip(ev, text) {
  const t = tip();
  if (!t) return;
  t.textContent = text;
  t.hidden = false;
  const x = Math.min(ev.clientX + 14, window.innerWidth - t.offsetWidth - 8);
  const y = Math.min(ev.clientY + 14, window.innerHeight - t.offsetHeight - 8);
  t.style.left = `${x}px`;
  t.style.top = `${y}px`;
}
export function hideTip() { const t = tip(); if (t) t.hidden = true; }

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function timeTicks(x0, x1, n) {
  const steps = [1e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 18e5, 36e5, 108e5, 216e5, 432e5, 864e5];
  const step = steps.find((st) => (x1 - x0) / st <= n) || 864e5;
  const out = [];
  for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) out.push(t);
  return out;
}

/**
 * A time-series line chart. series: [{name, points: [[ms, y], ...], color}];
 * opts: {x0, x1, yFmt, height, title}.
 */
export function lineChart(series, { x0, x1, yFmt = String, height = 200, title = '', width = 640 } = {}) {
  const W = width, H = height, L = 56, R = 12, T = 10, B = 24;
  const ys = series.flatMap((se) => se.points.map((p) => p[1])).filter((v) => v != null && Number.isFinite(v));
  const yMax = niceMax(Math.max(0, ...ys));
  const X = (t) => L + ((t - x0) / Math.max(1, x1 - x0)) * (W - L - R);
  const Y = (v) => T + (1 - v / yMax) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, class: 'chart', width: '100%' });
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    svg.append(s('line', { class: 'gridline', x1: L, x2: W - R, y1: Y(v), y2: Y(v) }),
      s('text', { x: L - 6, y: Y(v) + 4, 'text-anchor': 'end' }, yFmt(v)));
  }
  for (const t of timeTicks(x0, x1, 6)) {
    svg.append(s('text', { x: X(t), y: H - 6, 'text-anchor': 'middle' }, fmtTime(t)));
  }
  svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  series.forEach((se, i) => {
    const color = se.color || SERIES[i % SERIES.length];
    const pts = se.points.filter((p) => p[1] != null && Number.isFinite(p[1])).sort((a, b) => a[0] - b[0]);
    if (pts.length === 1) {
      svg.append(s('circle', { cx: X(pts[0][0]), cy: Y(pts[0][1]), r: 3, fill: color }));
    } else if (pts.length > 1) {
      const d = pts.map((p, j) => `${j ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
      svg.append(s('path', { d, fill: 'none', stroke: color, 'stroke-width': 1.8 }));
    }
  });
  const cursor = s('line', { class: 'axis', x1: 0, x2: 0, y1: T, y2: H - B, visibility: 'hidden' });
  svg.append(cursor);
  const xs = [...new Set(series.flatMap((se) => se.points.map((p) => p[0])))].sort((a, b) => a - b);
  svg.addEventListener('mousemove', (ev) => {
    if (!xs.length) return;
    const box = svg.getBoundingClientRect();
    const t = x0 + (((ev.clientX - box.left) / box.width) * W - L) / (W - L - R) * (x1 - x0);
    let best = xs[0];
    for (const x of xs) if (Math.abs(x - t) < Math.abs(best - t)) best = x;
    cursor.setAttribute('x1', X(best)); cursor.setAttribute('x2', X(best));
    cursor.setAttribute('visibility', 'visible');
    const lines = series.map((se) => {
      const p = se.points.find((q) => q[0] === best);
      return `${se.name}: ${p && p[1] != null ? yFmt(p[1]) : '–'}`;
    });
    showTip(ev, [fmtDate(best), ...lines].join('\n'));
  });
  svg.addEventListener('mouseleave', () => { cursor.setAttribute('visibility', 'hidden'); hideTip(); });
  const legend = h('div', { class: 'legend' }, series.map((se, i) =>
    h('span', {}, h('i', { style: `background:${se.color || SERIES[i % SERIES.length]}` }), se.name)));
  return h('figure', { style: 'margin:0' }, svg, legend);
}

/** A small trend line (no axes); values: numbers in time order. */
export function sparkline(values, { width = 110, height = 26, color = SERIES[0], label = '' } = {}) {
  const max = Math.max(0, ...values.filter(Number.isFinite));
  const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label });
  if (values.length > 1) {
    const X = (i) => (i / (values.length - 1)) * (width - 2) + 1;
    const Y = (v) => height - 2 - (max > 0 ? (v / max) * (height - 4) : 0);
    const d = values.map((v, i) => `${i ? 'L' : 'M'}${X(i).toFixed(1)},${Y(v || 0).toFixed(1)}`).join('');
    svg.append(s('path', { d: `${d}L${X(values.length - 1)},${height}L1,${height}Z`, fill: color, opacity: 0.15 }),
      s('path', { d, fill: 'none', stroke: color, 'stroke-width': 1.4 }));
  }
  return svg;
}

/**
 * A scatter plot of points {x: ms, y: value, href, label, error}; opts {x0, x1, yFmt, onPick}.
 */
export function scatter(points, { x0, x1, yFmt = String, height = 220, title = '', onPick, width = 640 } = {}) {
  const W = width, H = height, L = 56, R = 12, T = 10, B = 24;
  const yMax = niceMax(Math.max(0, ...points.map((p) => p.y)));
  const X = (t) => L + ((t - x0) / Math.max(1, x1 - x0)) * (W - L - R);
  const Y = (v) => T + (1 - v / yMax) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, width: '100%' });
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    svg.append(s('line', { class: 'gridline', x1: L, x2: W - R, y1: Y(v), y2: Y(v) }),
      s('text', { x: L - 6, y: Y(v) + 4, 'text-anchor': 'end' }, yFmt(v)));
  }
  for (const t of timeTicks(x0, x1, 6)) svg.append(s('text', { x: X(t), y: H - 6, 'text-anchor': 'middle' }, fmtTime(t)));
  for (const p of points) {
    const c = s('circle', {
      cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: 4.5,
      fill: p.error ? 'var(--err)' : 'var(--accent)', 'fill-opacity': 0.6, stroke: p.error ? 'var(--err)' : 'var(--accent)',
    });
    const node = p.href ? s('a', { href: p.href, 'data-nav': '', 'aria-label': p.label }, c) : c;
    node.addEventListener('mousemove', (ev) => showTip(ev, p.label));
    node.addEventListener('mouseleave', hideTip);
    if (onPick) node.addEventListener('click', hideTip);
    svg.append(node);
  }
  return svg;
}
