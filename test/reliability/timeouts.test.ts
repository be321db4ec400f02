import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type App, BUILT_IN_TYPES } from '../../src/app.ts';
import { defineOperationType } from '../../src/operations/registry.ts';
import { startTestApp } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { type EventRow, eventsOf, startOperation, waitForTerminal } from '../support/operations.ts';

const input = z.strictObject({ ms: z.int().min(0).max(60_000) });
// Whole seconds for the hard limit: see the last test for a fractional one.
const small = { softTimeoutSeconds: 0.5, hardTimeoutSeconds: 2 };

/** Handler runs that reached their natural end although their attempt had timed out (by operation). */
const lateFinishes = new Map<string, number>();

/** Waits `ms`, stopping (throwing) when its signal aborts. */
const softType = defineOperationType({
  name: 'test.soft-timeout',
  description: 'Waits, and stops when asked to.',
  input,
  policy: small,
  run: async ({ ms }, ctx) => {
    await sleep(ms, undefined, { signal: ctx.signal });
    return { waited: ms };
  },
});

/** Waits `ms` whatever its signal says, reporting progress at the end. */
const stubbornType = defineOperationType({
  name: 'test.ignores-signal',
  description: 'Waits, ignoring its signal.',
  input,
  policy: small,
  run: async ({ ms }, ctx) => {
    await sleep(ms);
    ctx.progress({ current: 1, total: 1, message: 'late progress' });
    lateFinishes.set(ctx.operationId, Date.now());
    return { waited: ms, late: true };
  },
});

/** Attempt 1 runs into its soft timeout; attempt 2 finishes at once. */
const retriedType = defineOperationType({
  name: 'test.soft-timeout-retried',
  description: 'Times out once, then succeeds.',
  input,
  policy: { ...small, retryLimit: 1, retryDelaySeconds: 1 },
  run: async ({ ms }, ctx) => {
    if (ctx.attempt === 1) await sleep(ms, undefined, { signal: ctx.signal });
    return { attempt: ctx.attempt };
  },
});

let db: TestDatabase;
let app: App & { url: string };
let token: string;

beforeAll(async () => {
  db = await createTestDatabase();
  app = await startTestApp(db.url, {}, { types: [...BUILT_IN_TYPES, softType, stubbornType, retriedType] });
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

const start = (type: string, ms: number) => startOperation(app.url, token, type, { ms });
const one = (events: EventRow[], kind: string) => {
  const found = events.filter((event) => event.kind === kind);
  expect(found, `${kind} events in ${JSON.stringify(events.map((e) => e.kind))}`).toHaveLength(1);
  return found[0]!;
};
const at = (event: EventRow) => event.createdAt.getTime();

describe('timeouts per operation type', () => {
  it('a soft timeout aborts the signal, records SOFT_TIMEOUT, and a handler that stops ends FAILED with SOFT_TIMEOUT', async () => {
    // Ten at once: each must get its SOFT_TIMEOUT event, before its FAILED one.
    const ops = await Promise.all(Array.from({ length: 10 }, () => start('test.soft-timeout', 10_000)));
    const gaps: number[] = [];
    const missing: string[] = [];
    for (const { uuid } of ops) {
      const final = await waitForTerminal(db, uuid, 15_000);
      expect(final.status).toBe('FAILED');
      expect(final.error?.code).toBe('SOFT_TIMEOUT');
      expect(final.result).toBeNull();
      const events = await eventsOf(db, uuid);
      const started = one(events, 'STARTED');
      const failed = one(events, 'FAILED');
      expect(failed.data).toMatchObject({ attempt: 1, error: { code: 'SOFT_TIMEOUT' } });
      expect(events.map((e) => e.kind)).not.toContain('RETRY_SCHEDULED');
      expect(events.at(-1)!.kind).toBe('FAILED');
      const soft = events.find((e) => e.kind === 'SOFT_TIMEOUT');
      if (!soft) {
        missing.push(`${uuid}: ${events.map((e) => e.kind).join(' ')}`);
        continue;
      }
      expect(events.filter((e) => e.kind === 'SOFT_TIMEOUT')).toHaveLength(1);
      expect(soft.status).toBe('PROCESSING');
      expect(soft.sequence).toBeLessThan(failed.sequence);
      gaps.push(at(soft) - at(started));
    }
    console.log(
      `STARTED → SOFT_TIMEOUT (soft limit 500 ms): ${Math.min(...gaps)}–${Math.max(...gaps)} ms; ` +
        `${missing.length} of ${ops.length} FAILED without a SOFT_TIMEOUT event`,
    );
    expect(missing, 'operations whose SOFT_TIMEOUT event is missing').toEqual([]);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(450);
      expect(gap).toBeLessThan(1400);
    }
  });

  it('a handler that ignores its signal ends FAILED with HARD_TIMEOUT at the hard limit, and its late result never lands', async () => {
    // The handler would finish after 3.5 s; the hard limit is 2 s.
    const { uuid } = await start('test.ignores-signal', 3500);
    const final = await waitForTerminal(db, uuid, 15_000);
    expect(final.status).toBe('FAILED');
    expect(final.error?.code).toBe('HARD_TIMEOUT');
    let events = await eventsOf(db, uuid);
    const hardMs = at(one(events, 'FAILED')) - at(one(events, 'STARTED'));
    console.log(`STARTED → FAILED HARD_TIMEOUT (hard limit 2000 ms): ${hardMs} ms`);
    expect(hardMs).toBeGreaterThanOrEqual(1950);
    expect(hardMs).toBeLessThan(3000);
    expect(at(one(events, 'SOFT_TIMEOUT'))).toBeLessThan(at(one(events, 'FAILED')));

    // Wait past the handler's natural end (and its progress write), then check nothing changed.
    const deadline = Date.now() + 10_000;
    while (!lateFinishes.has(uuid) && Date.now() < deadline) await sleep(50);
    expect(lateFinishes.has(uuid), 'the handler never reached its natural end').toBe(true);
    await sleep(500);
    const after = await waitForTerminal(db, uuid, 1000);
    expect(after.status).toBe('FAILED');
    expect(after.error?.code).toBe('HARD_TIMEOUT');
    expect(after.result).toBeNull();
    events = await eventsOf(db, uuid);
    expect(events.at(-1)!.kind).toBe('FAILED');
    expect(events.map((e) => e.kind)).not.toContain('COMPLETED');
    expect(events.filter((e) => e.kind === 'PROGRESS')).toEqual([]);
    expect(lateFinishes.get(uuid)!).toBeGreaterThan(at(one(events, 'FAILED')));
  });

  it('a type whose policy allows a retry is retried after a soft timeout and completes on attempt 2', async () => {
    const { uuid } = await start('test.soft-timeout-retried', 10_000);
    // Bounded generously: the retry's start is measured in retries.test.ts.
    const final = await waitForTerminal(db, uuid, 60_000);
    expect(final.status).toBe('COMPLETED');
    expect(final.result).toEqual({ attempt: 2 });
    expect(final.attempt).toBe(2);
    const events = await eventsOf(db, uuid);
    const retry = one(events, 'RETRY_SCHEDULED');
    expect(retry.data).toMatchObject({ attempt: 1, error: { code: 'SOFT_TIMEOUT' } });
    expect(one(events, 'SOFT_TIMEOUT').sequence).toBeLessThan(retry.sequence);
    expect(events.filter((e) => e.kind === 'STARTED').map((e) => e.data)).toEqual([
      { attempt: 1 },
      { attempt: 2 },
    ]);
    expect(events.map((e) => e.kind)).not.toContain('FAILED');
    expect(events.at(-1)!.kind).toBe('COMPLETED');
    console.log(
      `soft timeout then retry: STARTED 1 → COMPLETED in ${at(events.at(-1)!) - at(events[1]!)} ms`,
    );
  }, 75_000);

  it('accepts a fractional hard timeout (1.5 s) and enforces it', async () => {
    const fractional = defineOperationType({
      ...stubbornType,
      name: 'test.fractional-hard-timeout',
      policy: { softTimeoutSeconds: 0.5, hardTimeoutSeconds: 1.5 },
    });
    // Registering the type creates its pg-boss queue; the app must start.
    const other = await startTestApp(db.url, {}, { types: [fractional] });
    try {
      const { uuid } = await startOperation(other.url, token, fractional.name, { ms: 3000 });
      const final = await waitForTerminal(db, uuid, 15_000);
      expect(final.error?.code).toBe('HARD_TIMEOUT');
      const events = await eventsOf(db, uuid);
      const hardMs = at(one(events, 'FAILED')) - at(one(events, 'STARTED'));
      console.log(`STARTED → FAILED HARD_TIMEOUT (hard limit 1500 ms): ${hardMs} ms`);
      expect(hardMs).toBeGreaterThanOrEqual(1450);
      expect(hardMs).toBeLessThan(2500);
    } finally {
      await other.close();
    }
  });
});
