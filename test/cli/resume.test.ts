import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { startTestApp, uniquePrefix } from '../support/app.ts';
import { spawnCli } from '../support/cli.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { freePort } from '../support/outages.ts';

let db: TestDatabase;
const apps: App[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  for (const app of apps.reverse()) await app.close();
  await db?.drop();
});

/** Polls the database until the operation (a global id) is COMPLETED. */
async function untilCompleted(id: string, timeoutMs = 30_000) {
  const uuid = Buffer.from(id, 'base64').toString().split(':')[1];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await db.query<{ status: string }>('SELECT status FROM "Operation" WHERE id = $1', [uuid]);
    if (row?.status === 'COMPLETED') return;
    if (Date.now() > deadline) throw new Error(`operation ${uuid} is ${row?.status}, not COMPLETED`);
    await sleep(50);
  }
}

describe('opsgraph watch across a server restart', () => {
  it('resumes after the last sequence it saw when its API server shuts down, and still exits 0', async () => {
    const channelPrefix = uniquePrefix();
    const port = await freePort();
    // The operation runs on a worker-only process; the CLI talks to an API-only one that restarts.
    apps.push(await startTestApp(db.url, { role: 'worker', channelPrefix }));
    const first = await startTestApp(db.url, { role: 'api', port, channelPrefix });
    const token = await tokenFor(db.url, 'cli-resume');
    const cli = spawnCli(['start', 'diagnostics.sleep', '-i', '{"steps":30,"stepMs":100}', '--watch'], {
      OPSGRAPH_URL: `http://127.0.0.1:${port}/graphql`,
      OPSGRAPH_TOKEN: token,
    });
    const id = /^started (\S+)/.exec(await cli.waitForStderr(/^started /))![1]!;
    await cli.waitForStderr(/^PROCESSING \d+% [1-9]\d*\/30 /);
    await first.close();
    // While no API server answers, the operation finishes: the CLI must replay the steps it missed.
    await untilCompleted(id);
    apps.push(await startTestApp(db.url, { role: 'api', port, channelPrefix }));

    const result = await cli.exited;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/^stream ended \(.*\); resuming after sequence \d+$/m);
    // Every step once, in order, across the restart.
    const steps = [...result.stderr.matchAll(/^PROCESSING \d+% (\d+)\/30 /gm)].map((match) =>
      Number(match[1]),
    );
    expect(steps).toEqual([...new Set(steps)].sort((a, b) => a - b));
    expect(steps.at(-1)).toBe(30);
    expect(result.stdout).toMatch(/^COMPLETED \{"steps":30,/);
  });
});
