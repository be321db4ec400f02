import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runToExit, type ServerProcess, spawnServer, uniquePrefix } from './support/app.ts';
import { gql, tokenFor } from './support/client.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { StartOperation } from './support/documents.ts';
import { REDIS_URL } from './support/services.ts';

let db: TestDatabase;
let token: string;

beforeAll(async () => {
  db = await createTestDatabase();
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await db?.drop();
});

/** Runs `src/main.ts` to its exit with only the given environment (plus PATH), collecting output. */
const runMain = (env: Record<string, string>, timeoutMs = 20_000) =>
  runToExit(
    process.execPath,
    ['--import', 'tsx', 'src/main.ts'],
    { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    timeoutMs,
  );

interface OperationRow {
  status: string;
  error: { code: string; message: string } | null;
  progressCurrent: number;
  result: { steps: number } | null;
}

async function row(id: string): Promise<OperationRow> {
  const uuid = Buffer.from(id, 'base64').toString().split(':')[1];
  const rows = await db.query<OperationRow>(
    'SELECT status, error, "progressCurrent", result FROM "Operation" WHERE id = $1',
    [uuid],
  );
  if (!rows[0]) throw new Error(`operation ${uuid} not found`);
  return rows[0];
}

/** Polls the database until the operation reaches `status` (or fails after `timeoutMs`). */
async function waitForStatus(id: string, status: string, timeoutMs = 15_000): Promise<OperationRow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await row(id);
    if (current.status === status) return current;
    if (Date.now() > deadline) throw new Error(`still ${current.status}, not ${status}`);
    await sleep(25);
  }
}

/** One process with role all, a diagnostics.sleep running per input, then SIGTERM; returns what happened. */
async function sigtermWhileRunning(graceMs: number, ...inputs: Record<string, unknown>[]) {
  let server: ServerProcess | undefined;
  try {
    server = await spawnServer({
      DATABASE_URL: db.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      OPSGRAPH_ROLE: 'all',
      OPSGRAPH_SHUTDOWN_GRACE_MS: String(graceMs),
    });
    const ids: string[] = [];
    for (const input of inputs) {
      const response = await gql(
        server.url,
        StartOperation,
        { input: { type: 'diagnostics.sleep', input } },
        token,
      );
      const started = response.data?.startOperation;
      if (started?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
      ids.push(started.operation.id);
    }
    for (const id of ids) await waitForStatus(id, 'PROCESSING');
    const signalledAt = Date.now();
    const code = await Promise.race([
      server.stop('SIGTERM'),
      sleep(graceMs + 15_000).then(() => 'no exit' as const),
    ]);
    return { ids, id: ids[0]!, code, exitMs: Date.now() - signalledAt, logs: server.logs };
  } finally {
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      await server.stop('SIGKILL');
    }
  }
}

describe('the opsgraph process', () => {
  it('a bad configuration value stops the process with one clear line and a non-zero exit', async () => {
    const cases: { variable: string; env: Record<string, string> }[] = [
      { variable: 'PORT', env: { PORT: 'notaport' } },
      { variable: 'OPSGRAPH_ROLE', env: { OPSGRAPH_ROLE: 'bogus' } },
    ];
    for (const { variable, env } of cases) {
      const { code, stdout, stderr } = await runMain({
        DATABASE_URL: db.url,
        JWT_SECRET: 'opsgraph-test-secret-0123456789',
        ...env,
      });
      expect(code, stderr).not.toBe(0);
      expect(code).not.toBeNull();
      expect(stdout).not.toContain('opsgraph ready');
      const lines = stderr.split('\n').filter((line) => line !== '');
      expect(lines, stderr).toHaveLength(1);
      expect(stderr.endsWith('\n')).toBe(true);
      expect(lines[0]).toContain(variable);
      expect(lines[0]).toMatch(/^opsgraph: invalid configuration: /);
      expect(stderr).not.toContain('    at ');
    }
  });

  it('SIGTERM lets a running operation finish within the grace period and exits 0', async () => {
    // 10 × 100 ms: about 1 s of work left when SIGTERM arrives, well inside the 10 s grace.
    const { id, code, exitMs, logs } = await sigtermWhileRunning(10_000, { steps: 10, stepMs: 100 });
    console.log(`SIGTERM → exit with an operation finishing inside the grace period: ${exitMs} ms`);
    expect(code, logs.join('\n')).toBe(0);
    const after = await row(id);
    expect(after.status).toBe('COMPLETED');
    expect(after.result).toMatchObject({ steps: 10 });
    expect(after.progressCurrent).toBe(10);
    expect(exitMs).toBeLessThan(10_000);
    expect(logs.some((line) => line.includes('"msg":"draining"'))).toBe(true);
  });

  it('SIGTERM past the grace period aborts the handler, releases the operation for another worker and exits 0', async () => {
    // 100 × 100 ms would take 10 s; the grace period is 300 ms.
    const { id, code, exitMs, logs } = await sigtermWhileRunning(300, { steps: 100, stepMs: 100 });
    const after = await row(id);
    console.log(
      `SIGTERM → exit past a 300 ms grace period: ${exitMs} ms; operation ended ${after.status} ` +
        `${JSON.stringify(after.error)} at step ${after.progressCurrent}`,
    );
    expect(code, logs.join('\n')).toBe(0);
    expect(exitMs).toBeGreaterThanOrEqual(300);
    expect(exitMs).toBeLessThan(8_000);
    // Released: PENDING again with a fresh job, the attempt not used up.
    expect(after.status).toBe('PENDING');
    expect(after.progressCurrent).toBeLessThan(100);
    const uuid = Buffer.from(id, 'base64').toString().split(':')[1];
    const [released] = await db.query<{ kind: string; data: { error: { code: string } } }>(
      'SELECT kind, data FROM "OperationEvent" WHERE "operationId" = $1 ORDER BY sequence DESC LIMIT 1',
      [uuid],
    );
    expect(released?.kind).toBe('RELEASED');
    expect(released?.data.error.code).toBe('WORKER_SHUTDOWN');
    const [job] = await db.query<{ state: string }>(
      'SELECT j.state FROM pgboss.job j JOIN "Operation" o ON o."jobId" = j.id WHERE o.id = $1',
      [uuid],
    );
    expect(job?.state).toBe('created');
    const aborted = logs
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; operationId?: string; reason?: string })
      .find((line) => line.msg === 'handler signal aborted' && line.operationId === uuid);
    expect(aborted?.reason).toBe('shutdown');
  });

  it('an operation failing during the drain does not cut the grace period short for the others', async () => {
    // One fails at step 8 (~0.8 s in), the other needs ~2 s: both end inside the 10 s grace period.
    const { ids, code, logs } = await sigtermWhileRunning(
      10_000,
      { steps: 10, stepMs: 100, failAtStep: 8 },
      { steps: 20, stepMs: 100 },
    );
    expect(code, logs.join('\n')).toBe(0);
    const [failing, finishing] = await Promise.all(ids.map(row));
    expect(failing!.error?.code).toBe('REQUESTED_FAILURE');
    expect(finishing!.status, JSON.stringify(finishing)).toBe('COMPLETED');
    expect(
      // pino's levels: 50 is error, 60 fatal.
      logs.filter((line) => /"level":(50|60)\b/.test(line)),
      'error log lines',
    ).toEqual([]);
  });
});
