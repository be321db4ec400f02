import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { gql, subscribeWs, tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { CancelOperation, GetOperation, OperationUpdated, StartOperation } from '../support/documents.ts';
import { REDIS_URL } from '../support/services.ts';

/** A (api) and B (worker) share one database and one Redis channel prefix; only B runs jobs. */
let db: TestDatabase;
let api: ServerProcess | undefined;
let worker: ServerProcess | undefined;
let token: string;
const workerId = `worker-b-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  db = await createTestDatabase();
  const shared = { DATABASE_URL: db.url, REDIS_URL, OPSGRAPH_CHANNEL_PREFIX: uniquePrefix() };
  [api, worker] = await Promise.all([
    spawnServer({ ...shared, OPSGRAPH_ROLE: 'api' }),
    spawnServer({ ...shared, OPSGRAPH_ROLE: 'worker', OPSGRAPH_INSTANCE_ID: workerId }),
  ]);
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await Promise.all([api?.stop(), worker?.stop()]);
  await db?.drop();
});

async function start(input: Record<string, unknown>) {
  const response = await gql(
    api!.url,
    StartOperation,
    { input: { type: 'diagnostics.sleep', input } },
    token,
  );
  const result = response.data?.startOperation;
  if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
  return result.operation;
}

/** The database id inside an Operation's global ID ("Operation:<uuid>" in base64). */
const uuidOf = (id: string) => Buffer.from(id, 'base64').toString().split(':')[1]!;

/** A pino line: `time` in epoch ms, `msg` the message. */
interface LogLine {
  time: number;
  msg: string;
  operationId?: string;
  reason?: string;
}

/** The first JSON log line of `server` that matches, polling until `timeoutMs`. */
async function waitForLog(
  server: ServerProcess,
  match: (line: LogLine) => boolean,
  timeoutMs: number,
): Promise<LogLine | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const raw of server.logs) {
      if (!raw.startsWith('{')) continue;
      const line = JSON.parse(raw) as LogLine;
      if (match(line)) return line;
    }
    if (Date.now() > deadline) return undefined;
    await sleep(20);
  }
}

describe('an api process and a worker process sharing PostgreSQL and Redis', () => {
  it('a subscriber on A receives every event of an operation that a worker on B runs', async () => {
    const steps = 8;
    // 300 ms before the first step: the subscription's snapshot must come before it on a loaded
    // machine (at 150 ms a busy run once read it after the first PROGRESS event).
    const operation = await start({ steps, stepMs: 300 });
    const sub = subscribeWs(api!.url, OperationUpdated, { id: operation.id }, token);
    try {
      // While it runs, the row names B as the worker holding it (A, role api, runs no jobs).
      await sub.waitUntil((m) => m.operationUpdated.event?.kind === 'PROGRESS');
      const [row] = await db.query<{ workerId: string | null }>(
        'SELECT "workerId" FROM "Operation" WHERE id = $1',
        [uuidOf(operation.id)],
      );
      expect(row?.workerId).toBe(workerId);
      await sub.done;
    } finally {
      sub.close();
    }
    expect(sub.errors).toEqual([]);
    const updates = sub.messages.map((m) => m.operationUpdated);
    const snapshot = updates[0]!;
    expect(snapshot.event).toBeNull();
    for (let i = 1; i < updates.length; i += 1) {
      expect(updates[i]!.sequence).toBe(updates[i - 1]!.sequence + 1);
      expect(updates[i]!.event!.sequence).toBe(updates[i]!.sequence);
    }
    expect(updates.at(-1)!.event?.kind).toBe('COMPLETED');
    expect(updates.at(-1)!.operation.result).toMatchObject({ steps });

    const { data } = await gql(api!.url, GetOperation, { id: operation.id }, token);
    const stored = data!.operation!.events.edges.map((edge) => edge.node);
    expect(stored.map((e) => e.kind)).toContain('STARTED');
    // stepMs (300) exceeds the progress interval (100 ms): every step is persisted.
    const storedSteps = stored.filter((e) => e.kind === 'PROGRESS').map((e) => e.progress.current);
    expect(storedSteps).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    // What the subscriber saw after its snapshot is exactly what was stored after it.
    const seen = updates.slice(1).map(({ event }) => ({
      sequence: event!.sequence,
      kind: event!.kind,
      status: event!.status,
      message: event!.message,
      progress: { current: event!.progress.current, total: event!.progress.total },
    }));
    expect(seen).toEqual(stored.filter((e) => e.sequence > snapshot.sequence));
    expect(seen.length).toBeGreaterThanOrEqual(steps + 1);
  });

  it('cancelling through A an operation running on B fires its AbortSignal on B and ends CANCELLED, with no progress after the CANCELLED event', async () => {
    const operation = await start({ steps: 100, stepMs: 100 });
    const uuid = uuidOf(operation.id);
    const sub = subscribeWs(api!.url, OperationUpdated, { id: operation.id }, token);
    try {
      await sub.waitUntil((m) => m.operationUpdated.event?.kind === 'PROGRESS');
      const sentAt = Date.now();
      const { data } = await gql(api!.url, CancelOperation, { id: operation.id, reason: 'stop it' }, token);
      expect(data?.cancelOperation.__typename).toBe('CancelOperationSuccess');
      if (data?.cancelOperation.__typename !== 'CancelOperationSuccess') return;
      expect(data.cancelOperation.operation.status).toBe('CANCELLED');

      await sub.done;
      expect(sub.errors).toEqual([]);
      expect(sub.messages.at(-1)!.operationUpdated.event?.kind).toBe('CANCELLED');

      const aborted = await waitForLog(
        worker!,
        (line) => line.msg === 'handler signal aborted' && line.operationId === uuid,
        2000,
      );
      expect(aborted, `B's logs:\n${worker!.logs.join('\n')}`).toBeDefined();
      const delayMs = aborted!.time - sentAt;
      console.log(`cancel via A → AbortSignal fired on B: ${delayMs} ms (reason ${aborted!.reason})`);
      expect(delayMs).toBeGreaterThanOrEqual(0);
      expect(delayMs).toBeLessThan(2000);
      // The cancel reached B over the bus, not through pg-boss's slower backstop.
      expect(aborted!.reason).toBe('cancelled');
    } finally {
      sub.close();
    }

    await sleep(500);
    const { data } = await gql(api!.url, GetOperation, { id: operation.id }, token);
    const events = data!.operation!.events.edges.map((edge) => edge.node);
    expect(events.at(-1)?.kind).toBe('CANCELLED');
    expect(events.filter((e) => e.kind === 'CANCELLED')).toHaveLength(1);
    expect(data!.operation!.status).toBe('CANCELLED');
    expect(data!.operation!.progress.current).toBeLessThan(100);
  });
});
