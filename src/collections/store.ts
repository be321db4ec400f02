import type { Db } from '../db/prisma.ts';
import { NonRetryableError } from '../operations/registry.ts';
import { chunkText, contentHash, type SourceDocument } from './text.ts';

type Executor = Pick<Db, '$queryRawUnsafe' | '$executeRawUnsafe'>;
type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

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
 * operation row (a cancel waits for the transaction; a transaction after a cancel fails here).
 */
export async function stillHeld(tx: Executor, operationId: string, claimId: string): Promise<void> {
  const rows = await tx.$queryRawUnsafe<unknown[]>(
    `SELECT 1 FROM "Operation" WHERE id = $1::uuid AND "claimId" = $2::uuid AND status = 'PROCESSING' FOR SHARE`,
    operationId,
    claimId,
  );
  if (rows.length === 0) throw new ClaimLostError('the operation was cancelled or taken over');
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

/**
 * Stores one batch of documents in the caller's transaction: new ones are added, changed ones
 * (different content hash) replaced, unchanged ones skipped; chunks are indexed in the active
 * generation and the collection's counts move with them.
 */
export async function writeBatch(
  tx: Tx,
  collection: CollectionRow,
  operationId: string,
  docs: SourceDocument[],
): Promise<BatchCounts> {
  const hashed = docs.map((doc) => ({ ...doc, hash: contentHash(doc) }));
  const existing = await tx.$queryRawUnsafe<
    { id: string; source: string; externalId: string; contentHash: string }[]
  >(
    `SELECT d.id, d.source, d."externalId", d."contentHash"
       FROM "Document" d JOIN unnest($2::text[], $3::text[]) AS k(source, "externalId")
         ON d.source = k.source AND d."externalId" = k."externalId"
      WHERE d."collectionId" = $1::uuid`,
    collection.id,
    hashed.map((d) => d.source),
    hashed.map((d) => d.externalId),
  );
  const byKey = new Map(existing.map((row) => [`${row.source}\0${row.externalId}`, row]));
  const fresh = hashed.filter((doc) => !byKey.has(`${doc.source}\0${doc.externalId}`));
  const changed = hashed.flatMap((doc) => {
    const row = byKey.get(`${doc.source}\0${doc.externalId}`);
    return row && row.contentHash !== doc.hash ? [{ ...doc, id: row.id }] : [];
  });
  const unchanged = hashed.length - fresh.length - changed.length;

  const inserted = fresh.length
    ? await tx.$queryRawUnsafe<{ id: string }[]>(
        `INSERT INTO "Document" ("collectionId", source, "externalId", title, content, "contentHash", metadata, "operationId")
         SELECT $1::uuid, s, e, t, c, h, m::jsonb, $8::uuid
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS x(s, e, t, c, h, m, n)
          ORDER BY n
         RETURNING id`,
        collection.id,
        fresh.map((d) => d.source),
        fresh.map((d) => d.externalId),
        fresh.map((d) => d.title),
        fresh.map((d) => d.content),
        fresh.map((d) => d.hash),
        fresh.map((d) => JSON.stringify(d.metadata)),
        operationId,
      )
    : [];
  let removedChunks = 0;
  if (changed.length) {
    const ids = changed.map((d) => d.id);
    removedChunks = await tx.$executeRawUnsafe(
      `DELETE FROM "Chunk" WHERE "documentId" = ANY($1::uuid[]) AND generation = $2`,
      ids,
      collection.activeGeneration,
    );
    await tx.$executeRawUnsafe(
      `UPDATE "Document" d SET title = x.t, content = x.c, "contentHash" = x.h, metadata = x.m::jsonb, "updatedAt" = now()
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(id, t, c, h, m)
        WHERE d.id = x.id`,
      ids,
      changed.map((d) => d.title),
      changed.map((d) => d.content),
      changed.map((d) => d.hash),
      changed.map((d) => JSON.stringify(d.metadata)),
    );
  }
  // Postgres returns the inserted rows in the order of the ordered SELECT.
  const toIndex = [
    ...fresh.map((doc, i) => ({
      id: (inserted[i] as { id: string }).id,
      title: doc.title,
      content: doc.content,
    })),
    ...changed.map((doc) => ({ id: doc.id, title: doc.title, content: doc.content })),
  ];
  const chunks = await insertChunks(tx, collection, collection.activeGeneration, toIndex);
  await tx.$executeRawUnsafe(
    `UPDATE "Collection" SET "documentCount" = "documentCount" + $2, "chunkCount" = "chunkCount" + $3, "updatedAt" = now()
      WHERE id = $1::uuid`,
    collection.id,
    fresh.length,
    chunks - removedChunks,
  );
  return { added: fresh.length, updated: changed.length, unchanged, chunks };
}

/**
 * Splits documents into chunks and indexes them in `generation` with the collection's language.
 * The title is indexed (weighted highest) with each document's first chunk.
 */
export async function insertChunks(
  tx: Executor,
  settings: { id: string; language: string; chunkSize: number },
  generation: number,
  docs: { id: string; title: string; content: string }[],
): Promise<number> {
  const rows = docs.flatMap((doc) =>
    chunkText(doc.content, settings.chunkSize).map((content, ordinal) => ({
      documentId: doc.id,
      ordinal,
      content,
      title: ordinal === 0 ? doc.title : '',
    })),
  );
  if (rows.length === 0) return 0;
  return tx.$executeRawUnsafe(
    `INSERT INTO "Chunk" ("collectionId", "documentId", generation, ordinal, content, tsv)
     SELECT $1::uuid, d, $2, o, c, setweight(to_tsvector($3::regconfig, t), 'A') || to_tsvector($3::regconfig, c)
       FROM unnest($4::uuid[], $5::int[], $6::text[], $7::text[]) AS x(d, o, c, t)`,
    settings.id,
    generation,
    settings.language,
    rows.map((r) => r.documentId),
    rows.map((r) => r.ordinal),
    rows.map((r) => r.content),
    rows.map((r) => r.title),
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
