// The Osprey UI shell: client-side router, time range picker, auto-refresh.
// Every page route serves the same HTML; this module picks the view from the URL path.
import { rangeFromQuery, parseDuration, errorBox, h } from './lib.js';

const ROUTES = [
  { re: /^\/$/, tab: 'overview', mod: './overview.js', title: 'Services' },
  { re: /^\/services\/([^/]+)\/?$/, tab: 'overview', mod: './service.js', title: 'Service', keys: ['service'] },
  { re: /^\/map\/?$/, tab: 'map', mod: './map.js', title: 'Service map' },
  { re: /^\/search\/?$/, tab: 'search', mod: './search.js', title: 'Trace search' },
  { re: /^\/trace\/([^/]+)\/?$/, tab: 'search', mod: './trace.js', title: 'Trace', keys: ['traceID'] },
  { re: /^\/sql\/?$/, tab: 'sql', mod: './sql.js', title: 'SQL' },
];

const view = document.getElementById('view');
let generation = 0;
let refreshTimer = null;
let current = null; // {path, mod}

function match(path) {
  for (const r of ROUTES) {
    const m = r.re.exec(path);
    if (m) {
      const params = {};
      (r.keys || []).forEach((k, i) => { params[k] = decodeURIComponent(m[i + 1]); });
      return { ...r, params };
    }
  }
  return null;
}

/** Navigates to `url` inside the app (pushState unless replace). */
export function nav(url, { replace = false } = {}) {
  const u = new URL(url, location.href);
  if (u.origin !== location.origin) { location.href = url; return; }
  if (replace) history.replaceState(null, '', u.pathname + u.search + u.hash);
  else history.pushState(null, '', u.pathname + u.search + u.hash);
  render(false);
}

/** Sets URL query parameters (null deletes) and re-renders. */
export function setParams(updates, { replace = false } = {}) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(updates)) {
    if (v == null || v === '') q.delete(k); else q.set(k, v);
  }
  const s = q.toString();
  nav(location.pathname + (s ? `?${s}` : ''), { replace });
}

function syncTimebar(q) {
  const sel = document.getElementById('range-select');
  const custom = document.getElementById('custom-range');
  const r = rangeFromQuery(q);
  const toLocal = (ms) => {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 19);
  };
  if (r.fixed) {
    sel.value = 'custom';
    custom.hidden = false;
    document.getElementById('range-start').value = toLocal(r.start);
    document.getElementById('range-end').value = toLocal(r.end);
  } else {
    const known = [...sel.options].some((o) => o.value === r.range);
    if (!known) sel.append(h('option', { value: r.range }, `Last ${r.range}`));
    sel.value = r.range;
    custom.hidden = true;
  }
  document.getElementById('refresh-select').value = q.get('refresh') || '';
}

function setupTimebar() {
  const sel = document.getElementById('range-select');
  const custom = document.getElementById('custom-range');
  sel.addEventListener('change', () => {
    if (sel.value === 'custom') {
      custom.hidden = false;
      const r = rangeFromQuery(new URLSearchParams(location.search));
      setParams({ start: Math.floor(r.start), end: Math.ceil(r.end), range: null });
    } else {
      setParams({ range: sel.value, start: null, end: null });
    }
  });
  document.getElementById('timebar').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const st = Date.parse(document.getElementById('range-start').value);
    const en = Date.parse(document.getElementById('range-end').value);
    if (Number.isFinite(st) && Number.isFinite(en) && en > st) setParams({ start: st, end: en, range: null });
  });
  document.getElementById('refresh-select').addEventListener('change', (ev) => {
    setParams({ refresh: ev.target.value || null }, { replace: true });
  });
  document.getElementById('refresh-now').addEventListener('click', () => render(true));
}

function scheduleRefresh(q) {
  if (refreshTimer) clearInterval(refreshTimer);
  refreshTimer = null;
  const every = parseDuration(q.get('refresh'));
  if (every && every >= 1000) refreshTimer = setInterval(() => render(true), every);
}

async function render(isRefresh) {
  const gen = ++generation;
  const q = new URLSearchParams(location.search);
  const route = match(location.pathname);
  syncTimebar(q);
  scheduleRefresh(q);
  for (const a of document.querySelectorAll('.tabs a')) {
    if (route && a.dataset.tab === route.tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!route) {
    view.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/', 'data-nav': true }, 'Back to services')));
    view.dataset.state = 'ready';
    return;
  }
  document.title = `${route.title}${route.params.service ? `: ${route.params.service}` : ''} · Osprey`;
  const ctx = {
    params: route.params, q, range: rangeFromQuery(q), nav, setParams,
    alive: () => gen === generation, refresh: isRefresh,
  };
  view.dataset.state = 'loading';
  view.dataset.view = route.tab;
  try {
    const mod = await import(route.mod);
    if (!ctx.alive()) return;
    const same = current && current.path === location.pathname + location.search;
    if (isRefresh && same && mod.refresh) await mod.refresh(view, ctx);
    else await mod.render(view, ctx);
    current = { path: location.pathname + location.search };
    if (ctx.alive()) view.dataset.state = 'ready';
  } catch (e) {
    if (!ctx.alive()) return;
    view.append(errorBox(e));
    view.dataset.state = 'error';
  }
}

document.addEventListener('click', (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest && ev.target.closest('a[data-nav]');
  if (!a || a.getAttribute('target')) return;
  const href = a.getAttribute('href') || a.getAttribute('xlink:href');
  if (!href) return;
  ev.preventDefault();
  // Keep the time range when a nav link has none of its own (the top tabs).
  const u = new URL(href, location.href);
  if (!['start', 'end', 'range'].some((k) => u.searchParams.has(k))) {
    const cur = new URLSearchParams(location.search);
    for (const k of ['start', 'end', 'range', 'refresh']) if (cur.get(k)) u.searchParams.set(k, cur.get(k));
  }
  nav(u.pathname + u.search + u.hash);
  view.focus({ preventScroll: true });
  window.scrollTo(0, 0);
});
window.addEventListener('popstate', () => render(false));
setupTimebar();
render(false);
