// Drives the Osprey web UI in headless Chromium (playwright-core) against a running
// `osprey up`: every page loads without console errors, the overview shows the numbers the
// SQL API gives, and the click-through flows work. Screenshots go to $OSPREY_UI_SCREENSHOTS.
//
// Env: OSPREY_URL (http://127.0.0.1:PORT), OSPREY_UI_START / OSPREY_UI_END (epoch ms),
// OSPREY_UI_EXPECTED (JSON file written by tests/e2e/test_ui.py), CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const base = process.env.OSPREY_URL;
const start = process.env.OSPREY_UI_START;
const end = process.env.OSPREY_UI_END;
const expected = JSON.parse(readFileSync(process.env.OSPREY_UI_EXPECTED, 'utf8'));
const shots = process.env.OSPREY_UI_SCREENSHOTS || join(here, 'screenshots');
const TIMEOUT = 90_000;
mkdirSync(shots, { recursive: true });

const failures = [];
const check = (cond, msg) => { if (!cond) failures.push(msg); };
const range = `start=${start}&end=${end}`;
const secs = (Number(end) - Number(start)) / 1000;
const close = (a, b, rel = 1e-9) => Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));

const profile = mkdtempSync(join(tmpdir(), 'osprey-ui-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 900 },
});
ctx.setDefaultTimeout(TIMEOUT);
const page = ctx.pages()[0] || await ctx.newPage();
let where = 'start';
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${where}: ${m.text()}`); });
page.on('pageerror', (e) => consoleErrors.push(`${where}: uncaught ${e.message}`));

/** Waits until the view has rendered its data (or failed); fails the run on an error state. */
async function ready(name) {
  await page.waitForSelector('main#view[data-state="ready"], main#view[data-state="error"]', { timeout: TIMEOUT });
  const state = await page.getAttribute('main#view', 'data-state');
  if (state !== 'ready') {
    const text = await page.textContent('main#view');
    throw new Error(`${name}: view ended in state ${state}: ${text.slice(0, 500)}`);
  }
}

async function visit(name, path) {
  where = name;
  await page.goto(base + path, { waitUntil: 'load' });
  await ready(name);
}

async function shot(name) { await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true }); }

async function clickNav(name, selector, urlRe) {
  where = name;
  await page.locator(selector).first().click();
  await page.waitForURL(urlRe, { timeout: TIMEOUT });
  await ready(name);
}

async function num(selector) {
  const v = await page.getAttribute(selector, 'data-value');
  return v == null ? null : Number(v);
}

try {
  // Overview: numbers as the SQL API gives them.
  await visit('overview', `/?${range}`);
  await page.waitForSelector('tr[data-service]');
  const svcs = Object.keys(expected.services);
  const shown = await page.$$eval('tr[data-service]', (rows) => rows.map((r) => r.dataset.service));
  check(JSON.stringify([...shown].sort()) === JSON.stringify([...svcs].sort()),
    `overview services ${JSON.stringify(shown)} != ${JSON.stringify(svcs)}`);
  for (const [svc, e] of Object.entries(expected.services)) {
    const sel = (col) => `tr[data-service="${svc}"] td[data-col="${col}"]`;
    const req = await num(sel('requests'));
    const errs = await num(sel('errors'));
    const rate = await num(sel('rate'));
    const er = await num(sel('error_rate'));
    check(req === e.requests, `${svc}: requests ${req} != ${e.requests}`);
    check(errs === e.errors, `${svc}: errors ${errs} != ${e.errors}`);
    check(close(rate, e.requests / secs), `${svc}: rate ${rate} != ${e.requests / secs}`);
    check(close(er, e.requests ? e.errors / e.requests : 0), `${svc}: error rate ${er} != ${e.errors}/${e.requests}`);
  }
  // p99 from the rollup histograms (±2 %) against the exact percentile_cont over the raw spans.
  let p99Checked = 0;
  for (const [svc, e] of Object.entries(expected.services)) {
    if (!e.requests) continue;
    const p99 = await num(`tr[data-service="${svc}"] td[data-col="p99"]`);
    check(p99 != null && Math.abs(p99 - e.p99) <= 0.05 * e.p99, `${svc}: p99 ${p99} not within 5 % of ${e.p99}`);
    p99Checked += 1;
  }
  check(p99Checked > 0, 'no service with requests to compare p99');
  check(await num('[data-stat="requests"]') === expected.total_requests, 'overview total requests');
  check(await num('[data-stat="spans"]') === expected.total_spans, 'overview total spans');
  check(close(await num('[data-stat="error_rate"]'), expected.total_errors / expected.total_requests), 'overview error rate');
  await shot('overview');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot('overview-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // Sorting by a column keeps the rows and puts the largest first.
  await page.locator('th button.sort', { hasText: 'Requests' }).first().click();
  await page.waitForURL(/sort=requests/);
  await ready('overview sorted');
  const first = await page.$eval('tbody tr[data-service]', (r) => r.dataset.service);
  check(first === expected.busiest, `sorted by requests: first row ${first}, want ${expected.busiest}`);

  // overview -> service -> operation -> trace -> span details
  const svc = expected.busiest;
  await clickNav('service', `tr[data-service="${svc}"] a`, new RegExp(`/services/${svc}\\?`));
  await page.waitForSelector('tr[data-operation]');
  check(await num('[data-stat="requests"]') === expected.services[svc].requests, `${svc} page: requests`);
  // Callers and callees (from the call_edges rollup) as the raw parent/child join counts them.
  for (const side of ['callers', 'callees']) {
    const got = await page.$$eval(`table[data-table="${side}"] tr[data-service]`,
      (rs) => Object.fromEntries(rs.map((r) => [r.dataset.service, Number(r.dataset.calls)])));
    const norm = (o) => JSON.stringify(Object.entries(o).sort());
    check(norm(got) === norm(expected[side]), `${svc} page: ${side} ${norm(got)}, want ${norm(expected[side])}`);
  }
  const slowFirst = await page.$eval('table[data-table="slowest"] tbody tr', (r) => r.dataset.trace);
  check(slowFirst === expected.slowest_trace, `${svc} page: slowest request in ${slowFirst}, want ${expected.slowest_trace}`);
  await shot('service');
  await clickNav('operation', 'tr[data-operation] a', /operation=/);
  await page.waitForSelector('table[data-table="slowest"] a');
  await shot('operation');
  await clickNav('trace', 'table[data-table="slowest"] a', /\/trace\/[0-9a-f]{32}/);
  await page.waitForSelector('.wf [data-row]');
  await page.waitForSelector('.wf [data-details]'); // the span linked from the table is open
  const picks = page.locator('.wf button.pick[aria-expanded="false"]');
  const n = await picks.count();
  check(n >= 1, 'trace view shows more than the selected span');
  const last = picks.nth(n - 1);
  const spanId = await last.getAttribute('data-span');
  await last.click();
  const det = page.locator(`[data-details="${spanId}"]`);
  await det.waitFor();
  const text = await det.textContent();
  for (const k of ['Attributes', 'Resource', 'Events', 'Links', 'status']) check(text.includes(k), `span details lack ${k}`);
  check(page.url().includes(`span=${spanId}`), 'selected span in the URL');
  await shot('trace');
  // Collapse the root: only it remains visible.
  await page.locator('.wf button.tog:not([disabled])').first().click();
  check(await page.locator('.wf [data-row]').count() === 1, 'collapsing the root hides its descendants');

  // search -> trace
  await visit('search', `/search?${range}`);
  await page.selectOption('#f-service', svc);
  await page.waitForURL(new RegExp(`service=${svc}`));
  await ready('search service');
  await page.click('#f-submit');
  await page.waitForURL(/go=1/);
  await ready('search results');
  await page.waitForSelector('[data-results] [data-trace] a');
  const results = await page.locator('[data-results] > li').count();
  const dots = await page.locator('#results svg circle').count();
  check(results > 0 && dots === results, `search: ${results} results, ${dots} dots`);
  // The newest 20 traces, as plain SQL over the whole range ranks them (the page searches
  // the newest minutes first).
  const found = await page.$$eval('[data-results] > li', (ls) => ls.map((l) => l.dataset.trace));
  check(JSON.stringify(found) === JSON.stringify(expected.search_ids), `search: ${found.join(',')}, want ${expected.search_ids.join(',')}`);
  await shot('search');
  await clickNav('search trace', '[data-results] [data-trace] a', /\/trace\/[0-9a-f]{32}/);
  await page.waitForSelector('.wf [data-row]');
  const traceSvcs = await page.$$eval('.wf button.pick', (bs) => bs.map((b) => b.title.split(':')[0]));
  check(traceSvcs.includes(svc), `trace from search has no span of ${svc}`);

  // Service map: a node per service, a table row per dependency.
  await visit('map', `/map?${range}`);
  await page.waitForSelector('.map .node');
  const nodes = await page.locator('.map .node').count();
  check(nodes === svcs.length, `map: ${nodes} nodes, want ${svcs.length}`);
  const edgeRows = await page.locator('table[data-table="edges"] tbody tr').count();
  check(edgeRows === expected.edges, `map: ${edgeRows} dependencies, want ${expected.edges}`);
  await shot('map');

  // Trace by URL.
  await visit('trace by id', `/trace/${expected.trace_id}?${range}`);
  const rows = await page.locator('.wf [data-row]').count();
  check(rows === expected.trace_spans, `trace ${expected.trace_id}: ${rows} rows, want ${expected.trace_spans}`);

  // SQL console: an example with a time column draws a chart; the table has the rows.
  const q = encodeURIComponent("select date_bin(interval '1 minute', start_time) as time, count(*) as n from spans where $__timeFilter(start_time) group by 1 order by 1");
  await visit('sql', `/sql?${range}&q=${q}`);
  await page.waitForSelector('table[data-table="sql"] tbody tr');
  await page.waitForSelector('[data-chart] svg path');
  const total = await page.$$eval('table[data-table="sql"] tbody tr td:nth-child(2)', (tds) => tds.reduce((s, td) => s + Number(td.textContent), 0));
  check(total === expected.total_spans, `sql: per-minute counts sum to ${total}, want ${expected.total_spans}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#sql-csv')]);
  const csvPath = join(profile, 'q.csv');
  await download.saveAs(csvPath);
  const csv = readFileSync(csvPath, 'utf8').trim().split(/\r?\n/);
  check(csv[0] === 'time,n', `csv header ${csv[0]}`);
  await shot('sql');
  await page.selectOption('#sql-examples', '0');
  await page.waitForURL(/q=/);
  await ready('sql example');
  await page.waitForSelector('table[data-table="sql"] tbody tr');

  // Unknown page paths render the not-found view without errors.
  await visit('empty range', `/?start=1000&end=2000`);
  await page.waitForSelector('[data-empty]');
  check((await page.textContent('[data-empty]')).includes('osprey loadgen'), 'empty state names osprey loadgen');
  await shot('empty');
} catch (e) {
  failures.push(`${where}: ${e.stack || e}`);
  try { await shot(`failure-${where.replace(/\W+/g, '-')}`); } catch { /* best effort */ }
}

for (const e of consoleErrors) failures.push(`console error: ${e}`);
await ctx.close();
rmSync(profile, { recursive: true, force: true });
if (failures.length) {
  console.error(`UI test failed:\n- ${failures.join('\n- ')}`);
  process.exit(1);
}
console.log(`UI test passed; screenshots in ${shots}`);
