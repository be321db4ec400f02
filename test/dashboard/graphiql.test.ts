import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql } from '../support/client.ts';
import { StartOperation } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { blockOutside, launchChromium, screenshot } from './browser.ts';

const fx = useServer();
let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

/** Replaces the query editor's text (insertText: no auto-closed brackets) and runs it. */
async function run(page: Page, query: string): Promise<void> {
  await page.locator('.graphiql-query-editor .monaco-editor').first().click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(query);
  await page.locator('.graphiql-execute-button').click();
}

/** The response pane's text with Monaco's non-breaking spaces and line breaks as plain spaces. */
const responseText = async (page: Page) =>
  (await page.locator('.graphiql-response').innerText()).replace(/\s+/g, ' ');

describe('GraphiQL', () => {
  it('works offline: loads with every non-local request blocked, runs a query and streams a subscription', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const outside = await blockOutside(context);
    // GraphiQL reads its editors from localStorage on first load: the token goes in the Headers tab.
    await context.addInitScript(
      (headers) => {
        localStorage.setItem('graphiql:headers', headers);
        localStorage.setItem('graphiql:query', '{ viewer { name } }');
      },
      JSON.stringify({ Authorization: `Bearer ${fx.tokens.alice}` }),
    );
    const page = await context.newPage();
    try {
      await page.goto(fx.app.url);
      expect(await page.title()).toBe('opsgraph GraphiQL');
      // The page inlines ~9 MB of scripts: on a busy two-core runner it takes a few seconds.
      await page.locator('.graphiql-execute-button').waitFor({ timeout: 45_000 });

      await page.locator('.graphiql-execute-button').click();
      await expect.poll(() => responseText(page), { timeout: 20_000 }).toContain('"alice"');

      const started = await gql(
        fx.app.url,
        StartOperation,
        { input: { type: 'diagnostics.sleep', input: { steps: 30, stepMs: 200 } } },
        fx.tokens.alice,
      );
      const result = started.data?.startOperation;
      if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
      await run(
        page,
        `subscription { operationUpdated(id: "${result.operation.id}") { sequence operation { status progress { current total } } } }`,
      );
      const seen = new Set<string>();
      await expect
        .poll(
          async () => {
            const text = await responseText(page);
            for (const status of text.match(/PENDING|PROCESSING|COMPLETED|FAILED/g) ?? []) seen.add(status);
            return text;
          },
          { timeout: 30_000, interval: 100 },
        )
        .toMatch(/"status": "COMPLETED", "progress": \{ "current": 30, "total": 30/);
      // The stream was live: a message from before the end was on screen too.
      expect([...seen]).toContain('PROCESSING');
      await screenshot(page, 'graphiql');
      expect(outside.urls).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
