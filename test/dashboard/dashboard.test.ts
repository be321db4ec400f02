import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBatchOk } from '../support/batches.ts';
import { collectionFolders, createCollection, settle, startOk, writeFiles } from '../support/collections.ts';
import { useServer } from '../support/fixtures.ts';
import { blockOutside, launchChromium, type Outside, screenshot } from './browser.ts';

const DIST = join(import.meta.dirname, '..', '..', 'dashboard', 'dist');
const folders = collectionFolders();
const fx = useServer({
  sourcesRoot: folders.sourcesRoot,
  storageDir: folders.storageDir,
  dashboardDir: DIST,
});
let browser: Browser;
let context: BrowserContext;
let page: Page;
let outside: Outside;

beforeAll(async () => {
  // CI builds it (`npm run build:dashboard`); a lone `npx vitest run` of this file builds it here.
  if (!existsSync(join(DIST, 'index.html'))) {
    const built = spawnSync('npm', ['run', '-s', 'build:dashboard'], { stdio: 'inherit' });
    if (built.status !== 0) throw new Error('npm run build:dashboard failed');
  }
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  outside = await blockOutside(context);
  page = await context.newPage();
});
afterAll(async () => {
  await browser?.close();
});

const base = () => new URL('/ui/', fx.app.url).href;
const row = (id: string) => page.locator(`tbody tr[data-id="${id}"]`);
const rowIds = () => page.locator('tbody tr[data-id]').evaluateAll((rows) => rows.map((r) => r.dataset.id));

/** A GET sent with the path exactly as written (fetch would resolve `%2e%2e` first). */
function rawStatus(path: string): Promise<number> {
  const { hostname, port } = new URL(fx.app.url);
  return new Promise((resolve, reject) => {
    get({ hostname, port, path }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on('error', reject);
  });
}

/** Every value the progress bar shows until it reads 100 (polled; the values in between vary). */
async function progressUntilFull(bar: ReturnType<Page['locator']>): Promise<number[]> {
  const seen: number[] = [];
  await expect
    .poll(
      async () => {
        const value = Number(
          await bar.getAttribute('aria-valuenow', { timeout: 1000 }).catch(() => Number.NaN),
        );
        if (!Number.isNaN(value) && seen.at(-1) !== value) seen.push(value);
        return value;
      },
      { timeout: 30_000, interval: 50 },
    )
    .toBe(100);
  return seen;
}

describe('dashboard', () => {
  it('serves the app at /ui (and / redirects there) with hashed assets cached for a year', async () => {
    const root = await fetch(new URL('/', fx.app.url), { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/ui/');
    const index = await fetch(base());
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(new URL(script as string, fx.app.url));
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    // A client-side route gets the app; a missing asset and escapes do not.
    expect((await fetch(new URL('/ui/operations/abc', fx.app.url))).status).toBe(200);
    expect((await fetch(new URL('/ui/assets/missing.js', fx.app.url))).status).toBe(404);
    for (const path of [
      '/ui/../package.json',
      '/ui/%2e%2e/package.json',
      '/ui/..%2fpackage.json',
      '/ui/assets/..%2f..%2f..%2fpackage.json',
      '/ui/..%5cpackage.json',
      '/ui/.env',
      '/ui/%00',
      '/ui/%E0%A4%A',
    ]) {
      expect({ path, status: await rawStatus(path) }).toEqual({ path, status: 400 });
    }
  });

  it('signs in with a pasted token, starts an operation and shows its progress live until 100 %', async () => {
    await page.goto(base());
    await page.locator('#token').fill(fx.tokens.alice);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Operations' }).waitFor();
    const before = new Set(await rowIds());

    await page.locator('input[name="start-input"]').fill('{"steps": 12, "stepMs": 250}');
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    let id = '';
    await expect
      .poll(
        async () => {
          id = (await rowIds()).find((candidate) => candidate && !before.has(candidate)) ?? '';
          return id;
        },
        { timeout: 15_000 },
      )
      .not.toBe('');
    const seen = await progressUntilFull(row(id).getByRole('progressbar'));
    expect(seen.some((value) => value > 0 && value < 100)).toBe(true);
    await expect.poll(() => row(id).locator('.badge').innerText(), { timeout: 10_000 }).toBe('COMPLETED');
  });

  it('the operation page (useOperation) shows progress, timeline and result live', async () => {
    const op = await startOk(fx.app.url, fx.tokens.alice, 'diagnostics.sleep', { steps: 12, stepMs: 250 });
    await page.goto(`${base()}operations/${encodeURIComponent(op.id)}`);
    const seen = await progressUntilFull(page.locator('.detail').getByRole('progressbar'));
    expect(seen.some((value) => value > 0 && value < 100)).toBe(true);
    await expect
      .poll(() => page.locator('.page-head .badge').innerText(), { timeout: 10_000 })
      .toBe('COMPLETED');
    await expect.poll(() => page.locator('.timeline li').count()).toBeGreaterThanOrEqual(14);
    await expect.poll(() => page.locator('.json').first().innerText()).toContain('"elapsedMs"');
    await expect.poll(() => page.locator('.json').nth(1).innerText()).toContain('"steps": 12');
    await screenshot(page, 'operation');
  });

  it('cancels a running operation from the table and shows CANCELLED', async () => {
    const op = await startOk(fx.app.url, fx.tokens.alice, 'diagnostics.sleep', { steps: 200, stepMs: 200 });
    await page.goto(base());
    await expect.poll(() => row(op.id).locator('.badge').innerText(), { timeout: 15_000 }).toBe('PROCESSING');
    await screenshot(page, 'operations');
    await row(op.id).getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => row(op.id).locator('.badge').innerText(), { timeout: 15_000 }).toBe('CANCELLED');
    // Retry starts a new operation of the same type and opens it.
    await row(op.id).getByRole('button', { name: 'Retry' }).click();
    await expect.poll(() => page.url(), { timeout: 15_000 }).toMatch(/\/ui\/operations\/.+/);
    expect(decodeURIComponent(page.url().split('/operations/')[1] ?? '')).not.toBe(op.id);
    await page.getByRole('heading', { name: 'diagnostics.sleep' }).waitFor();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect
      .poll(() => page.locator('.page-head .badge').innerText(), { timeout: 15_000 })
      .toBe('CANCELLED');
  });

  it('draws a batch whose items change colour as they run, with the root cause on a skipped item', async () => {
    const { id } = await startBatchOk(fx.app.url, fx.tokens.alice, {
      atomic: false,
      continueOnError: true,
      items: [
        { id: 'extract', type: 'diagnostics.echo', input: { value: 1, sleepMs: 3000 } },
        {
          id: 'transform',
          type: 'diagnostics.echo',
          input: { value: 2, sleepMs: 800 },
          dependsOn: ['extract'],
        },
        { id: 'load', type: 'diagnostics.echo', input: { value: 3 }, dependsOn: ['transform'] },
        { id: 'fetch', type: 'diagnostics.echo', input: { failWith: 'source offline', sleepMs: 1200 } },
        { id: 'merge', type: 'diagnostics.echo', input: {}, dependsOn: ['fetch', 'transform'] },
      ],
    });
    await page.goto(`${base()}batches/${encodeURIComponent(id)}`);
    const node = (item: string) => page.locator(`g[data-item="${item}"]`);
    const fills = new Set<string>();
    const statuses = new Set<string>();
    await expect
      .poll(
        async () => {
          const status = await node('extract')
            .getAttribute('data-status', { timeout: 1000 })
            .catch(() => null);
          if (status) statuses.add(status);
          fills.add(
            await node('extract')
              .locator('rect')
              .evaluate((el) => getComputedStyle(el).fill)
              .catch(() => ''),
          );
          return status;
        },
        { timeout: 20_000, interval: 50 },
      )
      .toBe('COMPLETED');
    await expect.poll(() => node('load').getAttribute('data-status'), { timeout: 20_000 }).toBe('COMPLETED');
    await expect.poll(() => node('merge').getAttribute('data-status'), { timeout: 20_000 }).toBe('SKIPPED');
    await expect.poll(() => node('merge').locator('.node-sub').textContent()).toBe('root cause: fetch');
    expect(await node('fetch').getAttribute('data-status')).toBe('FAILED');
    // Watched live: the item was drawn running, then completed, in two colours.
    expect([...statuses]).toEqual(expect.arrayContaining(['RUNNING', 'COMPLETED']));
    fills.delete('');
    expect(fills.size).toBeGreaterThanOrEqual(2);
    await expect
      .poll(() => page.locator('.page-head .live').innerText(), { timeout: 10_000 })
      .toBe('Finished');
    await screenshot(page, 'batch');
  });

  it('lists collections with document counts and searches one', async () => {
    writeFiles(join(folders.sourcesRoot, 'guide'), {
      'lighthouse.md': '# Lighthouse\n\nThe lighthouse keeper trims the lamp every evening.',
      'harbour.md': '# Harbour\n\nBoats wait in the harbour for the tide.',
      'garden.md': '# Garden\n\nTomatoes need sun and water.',
    });
    const collectionId = await createCollection(fx.app.url, fx.tokens.alice, { name: 'coast-guide' });
    const indexed = await startOk(fx.app.url, fx.tokens.alice, 'collection.index', {
      collectionId,
      source: { kind: 'folder', path: 'guide' },
    });
    expect((await settle(fx.app.url, fx.tokens.alice, indexed.id)).status).toBe('COMPLETED');

    await page.goto(`${base()}collections`);
    const entry = page.locator('tr[data-collection="coast-guide"]');
    await expect.poll(() => entry.locator('.documents').innerText(), { timeout: 15_000 }).toBe('3');
    await page.locator('select[name="collection"]').selectOption(collectionId);
    await page.locator('input[name="q"]').fill('lighthouse');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('.hit').count(), { timeout: 15_000 }).toBe(1);
    expect(await page.locator('.hit mark').first().innerText()).toMatch(/lighthouse/i);
    await screenshot(page, 'collections');
  });

  it('is usable at phone width (390 px): no horizontal scrolling, actions reachable', async () => {
    await startOk(fx.app.url, fx.tokens.alice, 'diagnostics.sleep', { steps: 100, stepMs: 200 });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(base());
    await page.locator('tbody tr[data-status="PROCESSING"]').first().waitFor({ timeout: 15_000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    const cancel = page
      .locator('tbody tr[data-status="PROCESSING"]')
      .first()
      .getByRole('button', { name: 'Cancel' });
    const box = await cancel.boundingBox();
    expect(box && box.x + box.width <= 390).toBe(true);
    await screenshot(page, 'operations-phone');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('sent nothing outside this machine', () => {
    expect(outside.urls).toEqual([]);
  });
});
