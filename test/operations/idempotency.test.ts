import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import type { App } from '../../src/app.ts';
import { defineOperationType } from '../../src/operations/registry.ts';
import { diagnosticsSleep } from '../../src/operations/types/diagnostics-sleep.ts';
import { startTestApp } from '../support/app.ts';
import { gql } from '../support/client.ts';
import { StartOperation } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';

const server = useServer();

/** A fresh key per test, so tests never share one. */
const newKey = () => `key-${randomBytes(6).toString('hex')}`;

async function startResult(
  token: string,
  input: Record<string, unknown>,
  idempotencyKey: string,
  type = 'diagnostics.sleep',
  url = server.app.url,
) {
  const response = await gql(url, StartOperation, { input: { type, input, idempotencyKey } }, token);
  expect(response.errors).toBeUndefined();
  return response.data!.startOperation;
}

async function start(
  token: string,
  input: Record<string, unknown>,
  key: string,
  type?: string,
  url?: string,
) {
  const result = await startResult(token, input, key, type, url);
  if (result.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(result));
  return result;
}

/** Row counts, once no operation is pending or running (so workers are not adding events meanwhile). */
async function settledCounts() {
  await vi.waitFor(
    async () => {
      const [busy] = await server.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "Operation" WHERE status IN ('PENDING', 'PROCESSING')`,
      );
      expect(busy!.n).toBe(0);
    },
    { timeout: 15_000, interval: 50 },
  );
  const [row] = await server.db.query(
    `SELECT (SELECT count(*) FROM "Operation") AS operations, (SELECT count(*) FROM "OperationEvent") AS events,
            (SELECT count(*) FROM pgboss.job) AS jobs`,
  );
  return row;
}

async function operationsWithKey(keys: string[]) {
  return server.db.query<{
    id: string;
    idempotencyKey: string;
    owner: string;
    jobs: number;
    created: number;
  }>(
    `SELECT o.id, o."idempotencyKey", u.name AS owner,
            (SELECT count(*)::int FROM pgboss.job j WHERE j.id = o."jobId") AS jobs,
            (SELECT count(*)::int FROM "OperationEvent" e WHERE e."operationId" = o.id AND e.kind = 'CREATED') AS created
       FROM "Operation" o JOIN "User" u ON u.id = o."ownerId"
      WHERE o."idempotencyKey" = ANY($1)`,
    [keys],
  );
}

const quick = { steps: 1, stepMs: 1 };

describe('startOperation with an idempotencyKey', () => {
  it('returns the same operation with replayed true when the request is repeated', async () => {
    const key = newKey();
    const first = await start(server.tokens.alice, quick, key);
    expect(first.replayed).toBe(false);
    const before = await settledCounts();
    const again = await start(server.tokens.alice, quick, key);
    expect(again.replayed).toBe(true);
    expect(again.operation.id).toBe(first.operation.id);
    expect(again.operation.createdAt).toBe(first.operation.createdAt);
    expect(await settledCounts()).toEqual(before);
    expect(await operationsWithKey([key])).toHaveLength(1);
  });

  it('accepts a key of 255 characters and replays it', async () => {
    const key = newKey().padEnd(255, 'k');
    const first = await start(server.tokens.alice, quick, key);
    const again = await start(server.tokens.alice, quick, key);
    expect(again).toMatchObject({ replayed: true, operation: { id: first.operation.id } });
  });

  it('answers the same key with a different input with IdempotencyKeyConflictError and creates nothing', async () => {
    const key = newKey();
    const first = await start(server.tokens.alice, quick, key);
    const before = await settledCounts();
    const conflict = await startResult(server.tokens.alice, { ...quick, stepMs: 2 }, key);
    expect(conflict).toMatchObject({ __typename: 'IdempotencyKeyConflictError', key });
    expect(await settledCounts()).toEqual(before);
    // The original request still replays.
    const again = await start(server.tokens.alice, quick, key);
    expect(again).toMatchObject({ replayed: true, operation: { id: first.operation.id } });
  });

  it('treats an input with the same fields in another order as the same request', async () => {
    const key = newKey();
    const first = await start(server.tokens.alice, { steps: 1, stepMs: 1, failAtStep: 5 }, key);
    const reordered = await start(server.tokens.alice, { failAtStep: 5, stepMs: 1, steps: 1 }, key);
    expect(reordered).toMatchObject({ replayed: true, operation: { id: first.operation.id } });
    expect(await operationsWithKey([key])).toHaveLength(1);
  });

  it('keeps keys per user: the same key from another user creates a separate operation', async () => {
    const key = newKey();
    const alice = await start(server.tokens.alice, quick, key);
    const bob = await start(server.tokens.bob, quick, key);
    expect(bob.replayed).toBe(false);
    expect(bob.operation.id).not.toBe(alice.operation.id);
    expect(bob.operation.owner.name).toBe('bob');
    const rows = await operationsWithKey([key]);
    expect(rows.map((row) => row.owner).sort()).toEqual(['alice', 'bob']);
    // Each user's repeat replays their own operation.
    const bobAgain = await start(server.tokens.bob, quick, key);
    expect(bobAgain).toMatchObject({ replayed: true, operation: { id: bob.operation.id } });
  });

  it('creates exactly one operation per key when 40 requests share 4 keys concurrently', async () => {
    const keys = Array.from({ length: 4 }, newKey);
    const before = await settledCounts();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => start(server.tokens.alice, quick, keys[i % 4]!)),
    );
    for (let k = 0; k < keys.length; k += 1) {
      const forKey = results.filter((_, i) => i % 4 === k);
      expect(new Set(forKey.map((result) => result.operation.id)).size).toBe(1);
      expect(forKey.filter((result) => !result.replayed)).toHaveLength(1);
      expect(forKey[0]!.operation.input).toEqual(quick);
    }
    const rows = await operationsWithKey(keys);
    expect(rows.map((row) => row.idempotencyKey).sort()).toEqual([...keys].sort());
    expect(rows.every((row) => row.jobs === 1 && row.created === 1)).toBe(true);
    const ids = new Set(rows.map((row) => Buffer.from(`Operation:${row.id}`).toString('base64')));
    expect(new Set(results.map((result) => result.operation.id))).toEqual(ids);
    const after = await settledCounts();
    expect(Number(after!.operations) - Number(before!.operations)).toBe(4);
    expect(Number(after!.jobs) - Number(before!.jobs)).toBe(4);
  });

  it('200 concurrent startOperation calls sharing 20 idempotency keys create exactly 20 operations', async () => {
    const keys = Array.from({ length: 20 }, newKey);
    const before = await settledCounts();
    const began = Date.now();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => start(server.tokens.alice, quick, keys[i % 20]!)),
    );
    const elapsedMs = Date.now() - began;
    const rows = await operationsWithKey(keys);
    console.log(
      `200 concurrent starts over 20 keys: ${rows.length} operations created, ` +
        `${results.filter((result) => !result.replayed).length} not replayed, in ${elapsedMs} ms`,
    );
    expect(rows).toHaveLength(20);
    expect(rows.map((row) => row.idempotencyKey).sort()).toEqual([...keys].sort());
    expect(rows.every((row) => row.jobs === 1 && row.created === 1)).toBe(true);
    for (let k = 0; k < keys.length; k += 1) {
      const forKey = results.filter((_, i) => i % 20 === k);
      expect(forKey).toHaveLength(10);
      expect(new Set(forKey.map((result) => result.operation.id)).size).toBe(1);
      expect(forKey.filter((result) => !result.replayed)).toHaveLength(1);
      const row = rows.find((r) => r.idempotencyKey === keys[k]);
      expect(forKey[0]!.operation.id).toBe(Buffer.from(`Operation:${row!.id}`).toString('base64'));
    }
    const after = await settledCounts();
    expect(Number(after!.operations) - Number(before!.operations)).toBe(20);
    expect(Number(after!.jobs) - Number(before!.jobs)).toBe(20);
    // One of those keys reused with a different input is a conflict, and creates nothing.
    const conflict = await startResult(server.tokens.alice, { ...quick, steps: 2 }, keys[7]!);
    expect(conflict).toMatchObject({ __typename: 'IdempotencyKeyConflictError', key: keys[7] });
    expect(await settledCounts()).toEqual(after);
  });
});

describe('an idempotencyKey reused for another operation type', () => {
  // A second instance on the same database that also knows `test.echo`, whose input looks like
  // diagnostics.sleep's, so only the type differs between the two requests.
  const echo = defineOperationType({
    name: 'test.echo',
    description: 'Returns its input.',
    input: z.strictObject({ steps: z.int(), stepMs: z.int() }),
    run: async (input) => input,
  });
  let other: App & { url: string };
  beforeAll(async () => {
    other = await startTestApp(server.db.url, {}, { types: [diagnosticsSleep, echo] });
  });
  afterAll(() => other?.close());

  it('is an IdempotencyKeyConflictError and creates nothing', async () => {
    const key = newKey();
    const first = await start(server.tokens.alice, quick, key, 'diagnostics.sleep', other.url);
    const before = await settledCounts();
    const conflict = await startResult(server.tokens.alice, quick, key, 'test.echo', other.url);
    expect(conflict).toMatchObject({ __typename: 'IdempotencyKeyConflictError', key });
    expect(await settledCounts()).toEqual(before);
    const again = await start(server.tokens.alice, quick, key, 'diagnostics.sleep', other.url);
    expect(again).toMatchObject({ replayed: true, operation: { id: first.operation.id } });
  });
});
