import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type PreparedBatch, prepareBatch } from '../../src/collections/prepare.ts';
import {
  type BatchChecks,
  ClaimLostError,
  type CollectionRow,
  claimLost,
  readCollection,
  writeBatch,
} from '../../src/collections/store.ts';
import type { SourceDocument } from '../../src/collections/text.ts';
import { executorOf, type SqlExecutor } from '../../src/db/direct.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

/**
 * A batch of documents as one statement with its own checks (`writeBatch`), as `eachStatement`
 * sends it: on a pipelined connection, each statement its own transaction, the next on the wire
 * before the one before has answered.
 */
let db: TestDatabase;
let client: pg.Client;
let executor: SqlExecutor;
let operationId: string;
let collectionId: string;
const claimId = randomUUID();

beforeAll(async () => {
  db = await createTestDatabase();
  client = new pg.Client({ connectionString: db.url, pipeline: true });
  await client.connect();
  executor = executorOf(client);
  const [user] = await db.query<{ id: string }>(`INSERT INTO "User" (name) VALUES ('batch') RETURNING id`);
  const [operation] = await db.query<{ id: string }>(
    `INSERT INTO "Operation" (type, input, "ownerId", status, "claimId")
     VALUES ('collection.append', '{}', $1::uuid, 'PROCESSING', $2::uuid) RETURNING id`,
    [user!.id, claimId],
  );
  operationId = operation!.id;
  const [collection] = await db.query<{ id: string }>(
    `INSERT INTO "Collection" (name, "ownerId", language, "chunkSize") VALUES ('batch', $1::uuid, 'english', 200) RETURNING id`,
    [user!.id],
  );
  collectionId = collection!.id;
});
afterAll(async () => {
  await client?.end();
  await db?.drop();
});
beforeEach(async () => {
  await db.query('DELETE FROM "Document"');
  await db.query(`UPDATE "Collection" SET "documentCount" = 0, "chunkCount" = 0`);
  await db.query(`UPDATE "Operation" SET status = 'PROCESSING', "claimId" = $1::uuid`, [claimId]);
  await client.query('SET opsgraph.batches = 0');
});

const doc = (externalId: string, words: number, word = 'harbour'): SourceDocument => ({
  source: 'inline:test',
  externalId,
  title: `Title of ${externalId}`,
  content: Array.from({ length: words }, (_, i) => `${word}${i % 7}`).join(' '),
  metadata: { externalId },
});

const collection = async (): Promise<CollectionRow> => (await readCollection(executor, collectionId))!;

/** Sends a prepared batch at once (`writeBatch`'s first await is its statement). */
const send = (row: CollectionRow, batch: PreparedBatch, checks: Partial<BatchChecks> = {}) =>
  writeBatch(executor, row, { operationId, claimId, sequence: null, ...checks }, batch).catch(
    (error: unknown) => {
      throw claimLost(error);
    },
  );

const write = async (docs: SourceDocument[], checks: Partial<BatchChecks> = {}) =>
  send(await collection(), await prepareBatch(docs, 200), checks);

/** The collection's counts beside the rows they count. */
async function counts() {
  const [row] = await db.query<{
    documents: number;
    chunks: number;
    documentCount: number;
    chunkCount: number;
  }>(
    `SELECT (SELECT count(*)::int FROM "Document") AS documents, (SELECT count(*)::int FROM "Chunk") AS chunks,
            "documentCount", "chunkCount"
       FROM "Collection" WHERE id = $1::uuid`,
    [collectionId],
  );
  return row!;
}

describe('writeBatch', () => {
  it('adds new documents, replaces the chunks of changed ones and skips unchanged ones, counts included', async () => {
    expect(await write([doc('a', 300), doc('b', 100)])).toMatchObject({ added: 2, updated: 0, unchanged: 0 });
    const before = await counts();
    expect(before).toMatchObject({ documents: 2, documentCount: 2, chunkCount: before.chunks });

    const done = await write([doc('a', 120, 'granite'), doc('b', 100), doc('c', 50)]);
    expect(done).toMatchObject({ added: 1, updated: 1, unchanged: 1 });
    const after = await counts();
    expect(after).toMatchObject({ documents: 3, documentCount: 3, chunkCount: after.chunks });
    // a's old chunks are gone, its new ones are there; b's are untouched.
    const [a] = await db.query<{ content: string; chunks: string[] }>(
      `SELECT d.content, array_agg(c.content ORDER BY c.ordinal) AS chunks
         FROM "Document" d JOIN "Chunk" c ON c."documentId" = d.id WHERE d."externalId" = 'a' GROUP BY d.id`,
    );
    expect(a!.content).toBe(doc('a', 120, 'granite').content);
    expect(a!.chunks.join(' ')).not.toMatch(/harbour/);
    const [c] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "Chunk" c JOIN "Document" d ON d.id = c."documentId" WHERE d."externalId" = 'c'`,
    );
    expect(done.chunks).toBe(a!.chunks.length + c!.n);
  });

  it('commits nothing and throws ClaimLostError for another claim, or once the operation has ended', async () => {
    await expect(write([doc('a', 50)], { claimId: randomUUID() })).rejects.toBeInstanceOf(ClaimLostError);
    await db.query(`UPDATE "Operation" SET status = 'CANCELLED' WHERE id = $1::uuid`, [operationId]);
    await expect(write([doc('b', 50)])).rejects.toBeInstanceOf(ClaimLostError);
    expect(await counts()).toMatchObject({ documents: 0, chunks: 0, documentCount: 0, chunkCount: 0 });
  });

  it('sent behind a batch that fails, commits nothing (the batches of a connection commit in order)', async () => {
    await write([doc('a', 50)], { sequence: 0 });
    // Batch 1 fails (the same document twice); batch 2 is sent behind it before it has answered.
    const row = await collection();
    const [one, two] = [
      await prepareBatch([doc('b', 50), doc('b', 60)], 200),
      await prepareBatch([doc('c', 50)], 200),
    ];
    const failing = send(row, one, { sequence: 1 });
    const behind = send(row, two, { sequence: 2 });
    await expect(failing).rejects.toMatchObject({ code: '23505' });
    await expect(behind).rejects.toMatchObject({ code: 'OG002' });
    expect(await counts()).toMatchObject({ documents: 1, documentCount: 1 });
    // The connection goes on from where its last commit left it.
    await write([doc('c', 50)], { sequence: 1 });
    expect(await counts()).toMatchObject({ documents: 2, documentCount: 2 });
  });
});
