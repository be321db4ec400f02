import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** Debian's Chromium (`.ci/run` installs it); never a browser Playwright downloads. */
export const CHROMIUM = process.env.OPSGRAPH_CHROMIUM ?? '/usr/bin/chromium';

/** Where the browser tests write their screenshots (committed; the README shows them). */
export const SCREENSHOTS = join(import.meta.dirname, '..', '..', 'docs', 'screenshots');

/**
 * Starts headless Chromium with the flags that keep it quiet on a closed network (no background
 * networking, component updates or sync) and a fresh profile (Playwright's temporary one).
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Requests the page tried to send anywhere but this machine (all aborted). */
export interface Outside {
  urls: string[];
}

/**
 * Aborts every request from the context to anything but loopback (`data:` and `blob:` URLs never
 * reach the network) and records what was attempted.
 */
export async function blockOutside(context: BrowserContext): Promise<Outside> {
  const outside: Outside = { urls: [] };
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if ((url.protocol === 'http:' || url.protocol === 'https:') && LOCAL_HOSTS.has(url.hostname)) {
      return route.continue();
    }
    outside.urls.push(url.href);
    return route.abort('blockedbyclient');
  });
  return outside;
}

/** Writes `docs/screenshots/<name>.png`. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}
