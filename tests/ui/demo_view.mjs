// The demo's traces as a user sees them in the web UI (tests/e2e/test_demo.py): the overview
// lists every demo service, and the trace view of one demo trace shows all its spans.
//
// Env: OSPREY_URL, OSPREY_DEMO_SERVICES (comma-separated), OSPREY_DEMO_TRACE (trace id),
// OSPREY_DEMO_SPANS (its span count), OSPREY_UI_SCREENSHOTS, CHROMIUM.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.OSPREY_URL;
const services = process.env.OSPREY_DEMO_SERVICES.split(',');
const traceId = process.env.OSPREY_DEMO_TRACE;
const spanCount = Number(process.env.OSPREY_DEMO_SPANS);
const shots = process.env.OSPREY_UI_SCREENSHOTS;
mkdirSync(shots, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), 'osprey-demo-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 900 },
});
ctx.setDefaultTimeout(90_000);
const page = ctx.pages()[0] || await ctx.newPage();
const failures = [];
page.on('pageerror', (e) => failures.push(`uncaught ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') failures.push(`console: ${m.text()}`); });

async function visit(path) {
  await page.goto(base + path, { waitUntil: 'load' });
  await page.waitForSelector('main#view[data-state="ready"], main#view[data-state="error"]');
  const state = await page.getAttribute('main#view', 'data-state');
  if (state !== 'ready') throw new Error(`${path}: view ended in state ${state}`);
}

try {
  await visit('/?range=1h');
  await page.waitForSelector('tr[data-service]');
  const shown = await page.$$eval('tr[data-service]', (rows) => rows.map((r) => r.dataset.service));
  for (const s of services) if (!shown.includes(s)) failures.push(`overview lacks ${s} (shows ${shown})`);
  await page.screenshot({ path: join(shots, 'demo-overview.png'), fullPage: true });

  await visit(`/trace/${traceId}?range=1h`);
  await page.waitForSelector('.wf [data-row]');
  const rows = await page.locator('.wf [data-row]').count();
  if (rows !== spanCount) failures.push(`trace view shows ${rows} spans, the trace has ${spanCount}`);
  const text = await page.textContent('.wf');
  for (const s of services) if (!text.includes(s)) failures.push(`trace view lacks service ${s}`);
  await page.screenshot({ path: join(shots, 'demo-trace.png'), fullPage: true });
} catch (e) {
  failures.push(String(e));
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
if (failures.length) {
  console.error(failures.join('\n'));
  process.exit(1);
}
console.log('demo view ok');
