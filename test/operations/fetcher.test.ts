import { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { type FetchedJob, startFetcher } from '../../src/operations/fetcher.ts';
import type { JobData } from '../../src/operations/queues.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

/**
 * The runner's fetcher (src/operations/fetcher.ts) against a real pg-boss: one fetch fills all free
 * slots, never more jobs run than slots, the fair-share slots take only priority 0, finished jobs
 * are completed and failed ones failed, a job cancelled in pg-boss aborts its handler's signal
 * through the heartbeat, a slot frees when its handler ends, and jobs are fetched ahead only while
 * they take slots briefly, and given back at stop.
 */

const SCHEMA = 'fetcher_test';
let db: TestDatabase;
let boss: PgBoss;
const log = createLogger({ level: 'silent' });

beforeAll(async () => {
  db = await createTestDatabase();
  boss = new PgBoss({ connectionString: db.url, schema: SCHEMA, useListenNotify: true, supervise: false });
  boss.on('error', () => undefined);
  await boss.start();
});

afterAll(async () => {
  await boss?.stop({ graceful: false });
  await db?.drop();
});

const until = async (check: () => Promise<boolean> | boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

const states = async (queue: string) =>
  Object.fromEntries(
    (
      await db.query<{ state: string; n: number }>(
        `SELECT state, count(*)::int AS n FROM ${SCHEMA}.job WHERE name = $1 GROUP BY state`,
        [queue],
      )
    ).map((row) => [row.state, row.n]),
  );

/**
 * Calls `record` with the arguments of each call of `boss[method]` before it runs; returns the
 * function that puts the method back.
 */
const spy = <M extends 'fetch' | 'complete'>(method: M, record: (...args: unknown[]) => void) => {
  const original = boss[method];
  const call = original.bind(boss) as (...args: unknown[]) => unknown;
  boss[method] = ((...args: unknown[]) => {
    record(...args);
    return call(...args);
  }) as PgBoss[M];
  return () => {
    boss[method] = original;
  };
};

const start = (
  queue: string,
  slots: number,
  fairSlots: number,
  run: (fetched: FetchedJob) => Promise<unknown>,
) => startFetcher({ boss, queue, slots, fairSlots, pollSeconds: 0.5, run, log });

describe('fetcher', () => {
  it('runs at most one job per slot, fetches the free slots in one fetch, and completes every job', async () => {
    const queue = 'fetch-many';
    await boss.createQueue(queue);
    await boss.insert(
      queue,
      Array.from({ length: 20 }, (_, i) => ({ data: { operationId: String(i) } })),
    );
    let active = 0;
    let most = 0;
    const ran: string[] = [];
    const fetches: number[] = [];
    const restore = spy('fetch', (name, options) => {
      if (name === queue) fetches.push((options as { batchSize?: number }).batchSize ?? 1);
    });
    const fetcher = start(queue, 4, 0, async ({ job }) => {
      active += 1;
      most = Math.max(most, active);
      await new Promise((resolve) => setTimeout(resolve, 10));
      ran.push((job.data as JobData).operationId);
      active -= 1;
    });
    try {
      await until(() => ran.length === 20);
      await fetcher.stop();
      await fetcher.settled();
    } finally {
      restore();
    }
    expect(most).toBeLessThanOrEqual(4);
    expect(fetches[0]).toBe(4);
    // Far fewer fetches than jobs: slots freed together share one.
    expect(fetches.length).toBeLessThan(20);
    expect(await states(queue)).toEqual({ completed: 20 });
  });

  it('frees a slot when its handler ends, while at most as many outcomes as slots are still written', async () => {
    const queue = 'fetch-handler-ended';
    await boss.createQueue(queue);
    await boss.insert(
      queue,
      [1, 2, 3].map((i) => ({ data: { operationId: String(i) } })),
    );
    const ran: string[] = [];
    const writes: (() => void)[] = [];
    let ended = 0;
    const fetcher = start(queue, 1, 0, async ({ job, handlerEnded }) => {
      ran.push((job.data as JobData).operationId);
      handlerEnded();
      // The outcome's write, held open by the test.
      await new Promise<void>((resolve) => writes.push(resolve));
      ended += 1;
    });
    // The first handler ended: the second job runs while the first outcome is being written.
    await until(() => ran.length === 2);
    // One outcome already in flight for the one slot: the second run keeps its slot until it ends.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(ran).toHaveLength(2);
    for (const write of writes.splice(0)) write();
    await until(() => ran.length === 3);
    await until(() => writes.length === 1);
    writes.shift()?.();
    await until(() => ended === 3);
    await fetcher.stop();
    await fetcher.settled();
    expect(await states(queue)).toEqual({ completed: 3 });
  });

  it('fetches ahead only while jobs take slots briefly, never runs more than slots, and gives back at stop what it fetched ahead', async () => {
    const queue = 'fetch-ahead';
    await boss.createQueue(queue);
    await boss.insert(
      queue,
      Array.from({ length: 20 }, (_, i) => ({ data: { operationId: String(i) } })),
    );
    const fetches: number[] = [];
    const restore = spy('fetch', (name, options) => {
      if (name === queue) fetches.push((options as { batchSize?: number }).batchSize ?? 1);
    });
    let active = 0;
    let most = 0;
    const ran: string[] = [];
    const blocked: (() => void)[] = [];
    // The first four jobs end at once (slots are taken briefly); the next ones wait for the test.
    const fetcher = start(queue, 2, 0, async ({ job }) => {
      active += 1;
      most = Math.max(most, active);
      ran.push((job.data as JobData).operationId);
      if (ran.length > 4) await new Promise<void>((resolve) => blocked.push(resolve));
      active -= 1;
    });
    try {
      await until(() => blocked.length === 2);
      // Two jobs running, two more fetched ahead (a fetch of the two slots and two ahead).
      await until(async () => (await states(queue)).active === 4);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(ran).toHaveLength(6);
      expect(fetches[0]).toBe(2);
      expect(Math.max(...fetches)).toBe(4);
      await fetcher.stop();
      // The two fetched ahead are back for any worker; the two running stay held.
      expect(await states(queue)).toEqual({ completed: 4, active: 2, created: 14 });
      for (const resolve of blocked.splice(0)) resolve();
      await until(() => active === 0);
      await fetcher.settled();
    } finally {
      restore();
    }
    expect(most).toBeLessThanOrEqual(2);
    expect(ran).toHaveLength(6);
    expect(await states(queue)).toEqual({ completed: 6, created: 14 });
  });

  it('fails the job of a run that rejects', async () => {
    const queue = 'fetch-fail';
    // As opsgraph's queues: pg-boss never retries (src/operations/queues.ts).
    await boss.createQueue(queue, { retryLimit: 0 });
    await boss.send(queue, { operationId: 'x' });
    let ran = false;
    const fetcher = start(queue, 1, 0, async () => {
      ran = true;
      throw new Error('not recorded');
    });
    await until(() => ran);
    await fetcher.stop();
    await fetcher.settled();
    expect(await states(queue)).toEqual({ failed: 1 });
  });

  it('leaves the job to a run that says it completed the job itself (with its operation)', async () => {
    const queue = 'fetch-self-completed';
    await boss.createQueue(queue);
    await boss.send(queue, { operationId: 'x' });
    const completes: string[] = [];
    const restore = spy('complete', (name) => completes.push(name as string));
    let ran = false;
    const fetcher = start(queue, 1, 0, async () => {
      ran = true;
      return true;
    });
    try {
      await until(() => ran);
      await fetcher.stop();
      await fetcher.settled();
    } finally {
      restore();
    }
    expect(completes).toEqual([]);
    // Still active here: in opsgraph the run's grouped completion statement completed it.
    expect(await states(queue)).toEqual({ active: 1 });
  });

  it('gives the fair-share slots only jobs of priority 0', async () => {
    const queue = 'fetch-fair';
    await boss.createQueue(queue);
    await boss.insert(queue, [
      { data: { operationId: 'low-1' }, priority: -3 },
      { data: { operationId: 'low-2' }, priority: -3 },
      { data: { operationId: 'first' }, priority: 0 },
    ]);
    const release: (() => void)[] = [];
    const ran: string[] = [];
    const fetcher = start(queue, 1, 1, async ({ job }) => {
      ran.push((job.data as JobData).operationId);
      await new Promise<void>((resolve) => release.push(resolve));
    });
    // The general slot takes the highest priority (the first operation); the fair slot has no
    // other priority-0 job, so the priority -3 ones wait for the general slot.
    await until(() => ran.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(ran).toEqual(['first']);
    release.shift()?.();
    await until(() => ran.length === 2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(ran).toEqual(['first', 'low-1']);
    for (const done of release.splice(0)) done();
    await until(() => ran.length === 3);
    for (const done of release.splice(0)) done();
    await fetcher.stop();
    await fetcher.settled();
    expect(await states(queue)).toEqual({ completed: 3 });
  });

  it("aborts a running job's signal when the job is cancelled in pg-boss (heartbeat)", async () => {
    const queue = 'fetch-cancel';
    await boss.createQueue(queue, { heartbeatSeconds: 10 });
    const id = (await boss.send(queue, { operationId: 'c' })) as string;
    let aborted: (() => void) | undefined;
    const abortedSeen = new Promise<void>((resolve) => {
      aborted = resolve;
    });
    let started = false;
    const fetcher = start(queue, 1, 0, async ({ signal }) => {
      started = true;
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      aborted?.();
    });
    await until(() => started);
    await boss.cancel(queue, id);
    // The first heartbeat runs half a heartbeat (5 s) after the job was taken.
    await Promise.race([
      abortedSeen,
      new Promise((_, reject) => setTimeout(() => reject(new Error('signal not aborted')), 8000)),
    ]);
    await fetcher.stop();
    await fetcher.settled();
    expect(await states(queue)).toEqual({ cancelled: 1 });
  }, 15_000);
});
