import { randomUUID } from 'node:crypto';
import type { SqlExecutor } from '../db/direct.ts';
import { NonRetryableError } from '../operations/registry.ts';
import { arrayLiteral, type EncodedChunks, type PreparedBatch } from './prepare.ts';

type Executor = SqlExecutor;

/** The columns of a collection that the work needs. */
export interface CollectionRow {
  id: string;
  name: string;
  ownerId: string;
  isPublic: boolean;
  language: string;
  chunkSize: number;
  documentCount: number;
  chunkCount: number;
  activeGeneration: number;
}

const COLUMNS = `id, name, "ownerId", "isPublic", language, "chunkSize", "documentCount", "chunkCount", "activeGeneration"`;

/** Thrown when the attempt no longer holds its operation: its transaction is rolled back. */
export class ClaimLostError extends Error {
  override name = 'ClaimLostError';
  readonly code = 'CLAIM_LOST';
}

/**
 * Makes the caller's transaction commit only while this attempt holds the operation: locks the
 * operation row until the commit (a cancel waits for it; a transaction after a cancel fails here).
 * Batch transactions call it last (see `batchTransaction` in work.ts), others first.
 */
export async function stillHeld(tx: Executor, operationId: string, claimId: string): Promise<void> {
  const rows = await tx.$queryRawUnsafe<unknown[]>(
    `SELECT 1 FROM "Operation" WHERE id = $1::uuid AND "claimId" = $2::uuid AND status = 'PROCESSING' FOR SHARE`,
    operationId,
    claimId,
  );
  if (rows.length === 0) throw new ClaimLostError('the operation was cancelled or taken over');
}

/** The SQLSTATE of `opsgraph_batch_held`'s error (migration `20261208000000_batch_held`). */
const CLAIM_LOST_CODE = 'OG001';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `stillHeld` as one parameterless statement, for a transaction that sends it with its COMMIT
 * (`commitWith` of `directTransaction`): it raises an error when the attempt no longer holds the
 * operation, so nothing commits; `claimLost` tells that error apart.
 */
export function heldCheck(operationId: string, claimId: string): string {
  if (!UUID.test(operationId) || !UUID.test(claimId)) throw new Error('heldCheck: ids must be UUIDs');
  return `SELECT opsgraph_batch_held('${operationId}'::uuid, '${claimId}'::uuid)`;
}

/** The error of `heldCheck` as a ClaimLostError; other errors as they are. */
export function claimLost(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code === CLAIM_LOST_CODE
    ? new ClaimLostError('the operation was cancelled or taken over', { cause: error })
    : error;
}

/**
 * Marks the collection as worked on by this operation, one writer at a time. A holder that has
 * ended (crashed, failed, cancelled) no longer counts; a retry of the same operation takes it over.
 */
export async function acquire(db: Executor, collectionId: string, operationId: string, message: string) {
  const rows = await db.$queryRawUnsafe<CollectionRow[]>(
    `UPDATE "Collection" c
        SET "busyOperationId" = $2::uuid, "lastOperationId" = $2::uuid, status = 'BUSY',
            "statusMessage" = $3, "updatedAt" = now()
      WHERE id = $1::uuid
        AND ("busyOperationId" IS NULL OR "busyOperationId" = $2::uuid OR NOT EXISTS (
              SELECT 1 FROM "Operation" o
               WHERE o.id = c."busyOperationId" AND o.status IN ('PENDING', 'PROCESSING')))
      RETURNING ${COLUMNS}`,
    collectionId,
    operationId,
    message,
  );
  if (rows[0]) return rows[0];
  const [busy] = await db.$queryRawUnsafe<{ busyOperationId: string }[]>(
    `SELECT "busyOperationId" FROM "Collection" WHERE id = $1::uuid`,
    collectionId,
  );
  if (!busy) throw new NonRetryableError('the collection no longer exists', 'COLLECTION_NOT_FOUND');
  throw new NonRetryableError(
    `the collection is busy with operation ${busy.busyOperationId}; start this again when it has finished`,
    'COLLECTION_BUSY',
  );
}

/** Ends this operation's work on the collection: READY or EMPTY, or INCOMPLETE when it stopped early. */
export async function release(
  db: Executor,
  collectionId: string,
  operationId: string,
  end: { incomplete: boolean; message: string },
): Promise<void> {
  await db.$executeRawUnsafe(
    `UPDATE "Collection"
        SET "busyOperationId" = NULL, "statusMessage" = $4, "updatedAt" = now(),
            status = (CASE WHEN $3 THEN 'INCOMPLETE' WHEN "documentCount" = 0 THEN 'EMPTY' ELSE 'READY' END)::"CollectionStatus"
      WHERE id = $1::uuid AND "busyOperationId" = $2::uuid`,
    collectionId,
    operationId,
    end.incomplete,
    end.message,
  );
}

export interface BatchCounts {
  added: number;
  updated: number;
  unchanged: number;
  chunks: number;
}

/** What the checks ending a batch statement need (`writeBatch`; migration `20261208000000_batch_held`). */
export interface BatchChecks {
  /** The operation, and the claim of the attempt writing the batch. */
  operationId: string;
  claimId: string;
  /**
   * The batch's place among those sent back to back on its connection (`eachStatement`): it
   * commits only after the one before it did. Null for a batch sent on its own.
   */
  sequence: number | null;
}

/**
 * Stores one prepared batch of documents: new ones are added, changed ones (different content
 * hash) replaced, unchanged ones skipped; chunks are indexed in the active generation and the
 * collection's counts move with them. The big parameters were encoded by `prepareBatch`; what is
 * encoded here is one id per document.
 *
 * It is one statement, which ends by checking that the batch before it committed
 * (`opsgraph_batch_in_order`, SQLSTATE OG002) and that the attempt still holds the operation
 * (`opsgraph_batch_held`, SQLSTATE OG001: `claimLost`); either raises, so nothing commits. It is
 * therefore its own transaction, one round trip, sent while the batch before is still in the
 * database (`eachStatement`). The checks come last (their calls need the row the writes produce),
 * so the operation row is locked only from then to the commit: the previous batch's progress
 * write, an UPDATE of that row, does not wait for a batch.
 */
export async function writeBatch(
  db: Executor,
  collection: CollectionRow,
  checks: BatchChecks,
  batch: PreparedBatch,
): Promise<BatchCounts> {
  const { documents, chunks } = batch;
  // A new id for every position; documents already stored keep theirs.
  const made = batch.keys.map(() => randomUUID());
  // `existing`: the stored documents of the batch, by position, and whether their content is the
  // same. New documents are added and changed ones updated; the chunks of both are indexed (a
  // changed document's chunks of the active generation replaced: the DELETE sees only the rows from
  // before the statement). The OFFSET 0 keeps the writes' counts a row of their own, produced before
  // the claim check of the outer SELECT runs.
  const [counts] = await db.$queryRawUnsafe<{ added: number; updated: number; chunks: number }[]>(
    `WITH existing AS (
       SELECT k.n::int AS n, d.id, d."contentHash" = k.h AS same
         FROM "Document" d JOIN unnest($4::text[], $5::text[], $8::text[]) WITH ORDINALITY AS k(source, "externalId", h, n)
           ON d.source = k.source AND d."externalId" = k."externalId"
        WHERE d."collectionId" = $1::uuid
     ), added AS (
       INSERT INTO "Document" (id, "collectionId", source, "externalId", title, content, "contentHash", metadata, "operationId")
       SELECT ($2::uuid[])[n], $1::uuid, s, e, t, c, h, m::jsonb, $3::uuid
         FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS x(s, e, t, c, h, m, n)
        WHERE n NOT IN (SELECT n FROM existing)
       RETURNING 1
     ), updated AS (
       UPDATE "Document" d SET title = x.t, content = x.c, "contentHash" = x.h, metadata = x.m::jsonb, "updatedAt" = now()
         FROM unnest($6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS x(t, c, h, m, n)
         JOIN existing e ON e.n = x.n AND NOT e.same
        WHERE d.id = e.id
       RETURNING 1
     ), removed_chunks AS (
       DELETE FROM "Chunk"
        WHERE "documentId" IN (SELECT id FROM existing WHERE NOT same) AND generation = $10::int
       RETURNING 1
     ), added_chunks AS (
       INSERT INTO "Chunk" ("collectionId", "documentId", generation, ordinal, content, tsv)
       SELECT $1::uuid, coalesce(e.id, ($2::uuid[])[p]), $10::int, o, c, setweight(to_tsvector($11::regconfig, t), 'A') || to_tsvector($11::regconfig, c)
         FROM unnest($12::int[], $13::int[], $14::text[], $15::text[]) AS x(p, o, c, t)
         LEFT JOIN existing e ON e.n = x.p
        WHERE e.same IS NOT TRUE
       RETURNING 1
     ), counted AS (
       UPDATE "Collection"
          SET "documentCount" = "documentCount" + (SELECT count(*)::int FROM added),
              "chunkCount" = "chunkCount" + (SELECT count(*)::int FROM added_chunks) - (SELECT count(*)::int FROM removed_chunks),
              "updatedAt" = now()
        WHERE id = $1::uuid
       RETURNING 1
     )
     SELECT added, updated, chunks, opsgraph_batch_in_order($17::int), opsgraph_batch_held($3::uuid, $16::uuid)
       FROM (SELECT (SELECT count(*)::int FROM added) AS added, (SELECT count(*)::int FROM updated) AS updated,
                    (SELECT count(*)::int FROM added_chunks) AS chunks, (SELECT count(*) FROM counted) AS counted
             OFFSET 0) AS done`,
    collection.id,
    arrayLiteral(made),
    checks.operationId,
    documents.sources,
    documents.externalIds,
    documents.titles,
    documents.contents,
    documents.hashes,
    documents.metadata,
    collection.activeGeneration,
    collection.language,
    chunks.positions,
    chunks.ordinals,
    chunks.contents,
    chunks.titles,
    checks.claimId,
    checks.sequence,
  );
  const { added, updated, chunks: indexed } = counts!;
  return { added, updated, unchanged: batch.length - added - updated, chunks: indexed };
}

/**
 * Indexes encoded chunks (see `encodeChunks`) in `generation` with the collection's language.
 * `ids` (an array literal) holds the id of the document at each batch position, or NULL for a
 * document whose chunks are to be skipped. The title is indexed (weighted highest) with each
 * document's first chunk.
 */
export async function insertChunks(
  tx: Executor,
  settings: { id: string; language: string },
  generation: number,
  ids: string,
  chunks: EncodedChunks,
): Promise<number> {
  if (chunks.count === 0) return 0;
  return tx.$executeRawUnsafe(
    `INSERT INTO "Chunk" ("collectionId", "documentId", generation, ordinal, content, tsv)
     SELECT $1::uuid, d, $2::int, o, c, setweight(to_tsvector($3::regconfig, t), 'A') || to_tsvector($3::regconfig, c)
       FROM (SELECT ($4::uuid[])[p] AS d, o, c, t
               FROM unnest($5::int[], $6::int[], $7::text[], $8::text[]) AS x(p, o, c, t)) AS x
      WHERE d IS NOT NULL`,
    settings.id,
    generation,
    settings.language,
    ids,
    chunks.positions,
    chunks.ordinals,
    chunks.contents,
    chunks.titles,
  );
}

/** Which documents a removal takes. */
export type Selection = { source: string } | { operationId: string } | 'all';

/**
 * Removes up to `limit` documents (and their chunks) in the caller's transaction and moves the
 * collection's counts with them. Returns how many documents went (0 when none are left).
 */
export async function removeBatch(tx: Executor, collectionId: string, selection: Selection, limit: number) {
  const [filter, value] =
    selection === 'all'
      ? ['TRUE', null]
      : 'source' in selection
        ? ['source = $3', selection.source]
        : ['"operationId" = $3::uuid', selection.operationId];
  const [counts] = await tx.$queryRawUnsafe<{ documents: number; chunks: number }[]>(
    `WITH victims AS (
       SELECT id FROM "Document" WHERE "collectionId" = $1::uuid AND ${filter} ORDER BY id LIMIT $2
     ), gone_chunks AS (
       DELETE FROM "Chunk" WHERE "documentId" IN (SELECT id FROM victims)
       RETURNING generation
     ), gone AS (
       DELETE FROM "Document" WHERE id IN (SELECT id FROM victims) RETURNING 1
     ), counted AS (
       UPDATE "Collection" c
          SET "documentCount" = "documentCount" - (SELECT count(*) FROM gone),
              "chunkCount" = "chunkCount" - (SELECT count(*) FROM gone_chunks g WHERE g.generation = c."activeGeneration"),
              "updatedAt" = now()
        WHERE id = $1::uuid
        RETURNING 1
     )
     SELECT (SELECT count(*)::int FROM gone) AS documents, (SELECT count(*)::int FROM gone_chunks) AS chunks
       FROM counted`,
    collectionId,
    limit,
    ...(value === null ? [] : [value]),
  );
  return counts ?? { documents: 0, chunks: 0 };
}

/** Reads a collection's columns. */
export async function readCollection(db: Executor, collectionId: string): Promise<CollectionRow | undefined> {
  const rows = await db.$queryRawUnsafe<CollectionRow[]>(
    `SELECT ${COLUMNS} FROM "Collection" WHERE id = $1::uuid`,
    collectionId,
  );
  return rows[0];
}
