import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { runToExit, startTestApp, TEST_JWT_SECRET } from '../support/app.ts';
import { runCli } from '../support/cli.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { freePort } from '../support/outages.ts';

// The CLI runs as a real process (node bin/opsgraph.mjs, or npx) against a real server.
let db: TestDatabase;
let app: App & { url: string };
let env: Record<string, string>;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  app = await startTestApp(db.url);
  env = { OPSGRAPH_URL: app.url, OPSGRAPH_TOKEN: await tokenFor(db.url, 'cli-alice') };
  dir = await mkdtemp(join(tmpdir(), 'opsgraph-cli-'));
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

const SLEEP = JSON.stringify({ steps: 5, stepMs: 200 });
/** A stack trace line: expected failures must never print one. */
const STACK = /^\s+at /m;

describe('start --watch', () => {
  it('shows progress through `npx opsgraph` and exits 0 when the operation completes', async () => {
    const result = await runToExit(
      'npx',
      ['opsgraph', 'start', 'diagnostics.sleep', '--input', SLEEP, '--watch'],
      { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      120_000,
    );
    expect(result.code, result.stderr).toBe(0);
    const progress = result.stderr.split('\n').filter((line) => /^PROCESSING \d+% \d\/5 step/.test(line));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(result.stderr).toMatch(/^PROCESSING 100% 5\/5 step 5 of 5$/m);
    expect(result.stdout).toMatch(/^COMPLETED \{"steps":5,/);
  });

  it('prints each progress step once, in order', async () => {
    const result = await runCli(['start', 'diagnostics.sleep', '-i', SLEEP, '-w'], env);
    expect(result.code, result.stderr).toBe(0);
    const steps = [...result.stderr.matchAll(/^PROCESSING \d+% (\d)\/5 /gm)].map((match) => Number(match[1]));
    expect(steps).toEqual([...new Set(steps)].sort());
    expect(steps.at(-1)).toBe(5);
  });

  it('exits 1 with the error when the operation fails', async () => {
    const input = JSON.stringify({ steps: 3, stepMs: 50, failAtStep: 2 });
    const result = await runCli(['start', 'diagnostics.sleep', '--input', input, '--watch'], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^FAILED: REQUESTED_FAILURE: failed at step 2/m);
    expect(result.stdout).toBe('');
    expect(result.stderr).not.toMatch(STACK);
  });

  it('prints the final operation as JSON with --json', async () => {
    const input = JSON.stringify({ steps: 1, stepMs: 0 });
    const result = await runCli(['start', 'diagnostics.sleep', '-i', input, '-w', '--json'], env);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'COMPLETED', result: { steps: 1 } });
  });
});

describe('start, watch and cancel', () => {
  it('starts without watching (prints the id), cancels, and watch then exits 1 with CANCELLED', async () => {
    const started = await runCli(['start', 'diagnostics.sleep', '-i', '{"steps":100,"stepMs":100}'], env);
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    expect(id).toMatch(/^[A-Za-z0-9+/=]+$/);

    const cancelled = await runCli(['cancel', id, '--reason', 'from the CLI test'], env);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout.trim()).toBe(`${id} CANCELLED`);

    const watched = await runCli(['watch', id], env);
    expect(watched.code).toBe(1);
    expect(watched.stderr).toMatch(/^CANCELLED: CANCELLED/m);

    const again = await runCli(['cancel', id], env);
    expect(again.code).toBe(3);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/^opsgraph: IllegalTransitionError: /);
  });

  it('watch follows an operation already running to its end', async () => {
    const started = await runCli(['start', 'diagnostics.sleep', '-i', '{"steps":10,"stepMs":300}'], env);
    const watched = await runCli(['watch', started.stdout.trim()], env);
    expect(watched.code, watched.stderr).toBe(0);
    // The last line is the completion (or the last step, when the watch saw it arrive).
    expect(watched.stderr).toMatch(/^(PROCESSING|COMPLETED) 100% 10\/10 step 10 of 10$/m);
    expect(watched.stdout).toMatch(/^COMPLETED \{"steps":10,/);
  });

  it('refuses an operation it may not see with NotFoundError, as one line', async () => {
    const started = await runCli(['start', 'diagnostics.sleep', '-i', '{"steps":0,"stepMs":0}'], env);
    const bob = { ...env, OPSGRAPH_TOKEN: await tokenFor(db.url, 'cli-bob') };
    const result = await runCli(['cancel', started.stdout.trim()], bob);
    expect(result.code).toBe(3);
    expect(result.stderr.trim()).toMatch(/^opsgraph: NotFoundError: [^\n]+$/);
    const watched = await runCli(['watch', started.stdout.trim()], bob);
    expect(watched.code).toBe(3);
    expect(watched.stderr).toMatch(/NotFoundError/);
  });
});

describe('ls', () => {
  it('lists operations filtered by status and type', async () => {
    const failing = JSON.stringify({ steps: 1, stepMs: 0, failAtStep: 1 });
    expect((await runCli(['start', 'diagnostics.sleep', '-i', failing, '-w'], env)).code).toBe(1);
    expect((await runCli(['start', 'diagnostics.echo', '-i', '{"value":1}', '-w'], env)).code).toBe(0);

    const failed = await runCli(['ls', '--status', 'failed', '--json'], env);
    expect(failed.code, failed.stderr).toBe(0);
    const operations = JSON.parse(failed.stdout).operations as { status: string; type: string }[];
    expect(operations.length).toBeGreaterThan(0);
    expect(new Set(operations.map((operation) => operation.status))).toEqual(new Set(['FAILED']));

    const echoes = await runCli(['ls', '--type', 'diagnostics.echo', '--status', 'completed,failed'], env);
    expect(echoes.code, echoes.stderr).toBe(0);
    const [header, ...rows] = echoes.stdout.trim().split('\n');
    expect(header).toMatch(/^ID\s+TYPE\s+STATUS\s+PROGRESS\s+CREATED/);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row).toMatch(/ diagnostics\.echo +COMPLETED /);
  });

  it('pages with --first and --after', async () => {
    const first = await runCli(['ls', '-n', '1'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim().split('\n')).toHaveLength(2);
    const cursor = /--after (\S+)/.exec(first.stderr)?.[1];
    expect(cursor).toBeDefined();
    const next = await runCli(['ls', '-n', '1', '--after', cursor!, '--json'], env);
    const [shown] = JSON.parse(next.stdout).operations as { id: string }[];
    expect(first.stdout).not.toContain(shown!.id);
  });

  it('rejects an unknown status as a usage error (exit 2)', async () => {
    const result = await runCli(['ls', '--status', 'done'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/statuses are PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED/);
    expect(result.stderr).toMatch(/Usage: opsgraph ls/);
  });
});

describe('batch', () => {
  it('starts a batch from a file and follows it item by item', async () => {
    const file = join(dir, 'chain.json');
    await writeFile(
      file,
      JSON.stringify({
        items: [
          { id: 'first', type: 'diagnostics.echo', input: { value: 'a', sleepMs: 100 } },
          {
            id: 'second',
            type: 'diagnostics.echo',
            input: { value: '$ref:first.value' },
            dependsOn: ['first'],
          },
          { id: 'third', type: 'diagnostics.echo', input: { value: 3 } },
        ],
      }),
    );
    const result = await runCli(['batch', file, '--watch'], env);
    expect(result.code, result.stderr).toBe(0);
    for (const item of ['first', 'second', 'third']) {
      expect(result.stderr).toMatch(new RegExp(`^item ${item}: COMPLETED$`, 'm'));
      expect(result.stdout).toMatch(new RegExp(`^${item}\\tCOMPLETED$`, 'm'));
    }
    expect(result.stderr).toMatch(/^PROCESSING 100% 3\/3 3 of 3 items finished$/m);
    expect(result.stdout).toMatch(/^COMPLETED \(3 completed\)$/m);
  });

  it('exits 1 when an item fails, naming the failure and the skipped items', async () => {
    const file = join(dir, 'failing.json');
    await writeFile(
      file,
      JSON.stringify([
        { id: 'boom', type: 'diagnostics.echo', input: { failWith: 'no luck' } },
        { id: 'after', type: 'diagnostics.echo', input: {}, dependsOn: ['boom'] },
      ]),
    );
    const result = await runCli(['batch', file, '-w'], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^boom\tFAILED REQUESTED_FAILURE: no luck$/m);
    expect(result.stdout).toMatch(/^after\tSKIPPED /m);
    expect(result.stderr).not.toMatch(STACK);
  });

  it('reports validation problems with their paths, and an unreadable file as a usage error', async () => {
    const file = join(dir, 'cycle.json');
    await writeFile(
      file,
      JSON.stringify([
        { id: 'a', type: 'diagnostics.echo', input: {}, dependsOn: ['b'] },
        { id: 'b', type: 'diagnostics.echo', input: {}, dependsOn: ['a'] },
      ]),
    );
    const invalid = await runCli(['batch', file], env);
    expect(invalid.code).toBe(3);
    expect(invalid.stderr.trim()).toMatch(
      /^opsgraph: ValidationError: items\.\d\.dependsOn: dependency cycle .*a → b → a$/,
    );

    const missing = await runCli(['batch', join(dir, 'missing.json')], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe(`opsgraph: cannot read ${join(dir, 'missing.json')}: ENOENT`);
  });
});

describe('token', () => {
  it('prints a token that the server accepts', async () => {
    const made = await runCli(['token', 'cli-carol'], { DATABASE_URL: db.url, JWT_SECRET: TEST_JWT_SECRET });
    expect(made.code, made.stderr).toBe(0);
    const token = made.stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    const listed = await runCli(['ls', '--json'], { OPSGRAPH_URL: app.url, OPSGRAPH_TOKEN: token });
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).operations).toEqual([]);
  });

  it('passes the script’s refusal through with its exit code', async () => {
    const local = { DATABASE_URL: db.url, JWT_SECRET: TEST_JWT_SECRET };
    expect((await runCli(['token', 'cli-dave'], local)).code).toBe(0);
    const promoted = await runCli(['token', 'cli-dave', '--admin'], local);
    expect(promoted.code).toBe(2);
    expect(promoted.stderr).toMatch(/exists and is not an admin/);
  });
});

describe('errors', () => {
  it('bad flags exit 2 with a usage message', async () => {
    const result = await runCli(['start', 'diagnostics.sleep', '--bogus'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown option '--bogus'/);
    expect(result.stderr).toMatch(/Usage: opsgraph start \[options\] <type>/);
    expect((await runCli([], env)).code).toBe(2);
    expect((await runCli(['frobnicate'], env)).code).toBe(2);
  });

  it('input that is not JSON is a usage error; input the type refuses is a ValidationError', async () => {
    const notJson = await runCli(['start', 'diagnostics.sleep', '--input', '{steps:1}'], env);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/^opsgraph: --input is not valid JSON/);

    const invalid = await runCli(['start', 'diagnostics.sleep', '--input', '{"steps":-1,"stepMs":0}'], env);
    expect(invalid.code).toBe(3);
    expect(invalid.stderr.trim()).toMatch(/^opsgraph: ValidationError: [^\n]*input\.steps[^\n]*$/);

    const unknown = await runCli(['start', 'no.such.type'], env);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(
      /^opsgraph: UnknownOperationTypeError: .*known types: .*diagnostics\.sleep/,
    );
  });

  it('an unreachable server and a bad token exit 3 with one line', async () => {
    const url = `http://127.0.0.1:${await freePort()}/graphql`;
    const down = await runCli(['ls'], { ...env, OPSGRAPH_URL: url });
    expect(down.code).toBe(3);
    expect(down.stderr.trim()).toBe(`opsgraph: cannot reach ${url}: ECONNREFUSED`);

    const forged = await runCli(['ls', '--token', 'not-a-token'], env);
    expect(forged.code).toBe(3);
    expect(forged.stderr.trim().split('\n')).toHaveLength(1);
    expect(forged.stderr).not.toMatch(STACK);
  });

  it('--url and --token flags win over the environment', async () => {
    const result = await runCli(['--url', app.url, 'ls', '--token', env.OPSGRAPH_TOKEN!, '-n', '1'], {
      OPSGRAPH_URL: 'http://127.0.0.1:9/graphql',
      OPSGRAPH_TOKEN: 'stale',
    });
    expect(result.code, result.stderr).toBe(0);
  });
});
