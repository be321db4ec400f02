import { z } from 'zod';
import type { Db } from '../../db/prisma.ts';
import { defineOperationType, NonRetryableError, type RunContext } from '../../operations/registry.ts';
import { collectionGlobalId, collectionIdInput } from '../ids.ts';
import { batchSizeInput } from '../languages.ts';
import { prepareBatch } from '../prepare.ts';
import {
  checkSource,
  folderSourceName,
  type OpenedSource,
  openSource,
  type SourceInput,
  sourceInput,
} from '../sources.ts';
import { type BatchCounts, type CollectionRow, removeBatch, writeBatch } from '../store.ts';
import { eachStatement, mapBatches, onCollection, removeAll, type Tally } from '../work.ts';

const input = z.strictObject({
  collectionId: collectionIdInput,
  source: sourceInput,
  batchSize: batchSizeInput,
});
type Input = z.infer<typeof input>;

export const loadOutput = z.object({
  collectionId: z.string(),
  source: z.string().describe('The source name (inline name, folder:<path>, or export:<file>)'),
  documents: z.int().describe('Documents read from the source'),
  added: z.int(),
  updated: z.int().describe('Documents whose content changed'),
  unchanged: z.int().describe('Documents skipped because their content hash was unchanged'),
  chunks: z.int().describe('Chunks indexed'),
});
type Output = z.infer<typeof loadOutput>;

export const sourceName = (source: SourceInput) =>
  source.kind === 'inline'
    ? source.name
    : source.kind === 'folder'
      ? folderSourceName(source.path)
      : `export:${source.file}`;

/** Reads an opened source into a collection the caller holds, batch by batch; closes the source. */
export async function loadDocuments(
  ctx: RunContext,
  collection: CollectionRow,
  opened: OpenedSource,
  batchSize: number,
  tally: Tally,
): Promise<BatchCounts> {
  try {
    return await loadAll(ctx, collection, opened, batchSize, tally);
  } finally {
    await opened.close?.();
  }
}

async function loadAll(
  ctx: RunContext,
  collection: CollectionRow,
  opened: OpenedSource,
  batchSize: number,
  tally: Tally,
): Promise<BatchCounts> {
  tally.total = opened.total;
  const counts: BatchCounts = { added: 0, updated: 0, unchanged: 0, chunks: 0 };
  await eachStatement(
    ctx,
    mapBatches(opened.batches(batchSize), (docs) => prepareBatch(docs, collection.chunkSize)),
    tally,
    async (db, batch, checks) => {
      const done = await writeBatch(db, collection, checks, batch);
      counts.added += done.added;
      counts.updated += done.updated;
      counts.unchanged += done.unchanged;
      counts.chunks += done.chunks;
    },
    () => `${tally.done} of ${tally.total} documents (${counts.unchanged} unchanged)`,
  );
  return counts;
}

/** `index` refuses a collection holding documents, except those added by an earlier attempt of itself. */
async function requireEmpty(db: Db, collectionId: string, operationId: string): Promise<void> {
  const [row] = await db.$queryRawUnsafe<{ taken: boolean }[]>(
    `SELECT EXISTS (SELECT 1 FROM "Document" WHERE "collectionId" = $1::uuid AND "operationId" IS DISTINCT FROM $2::uuid) AS taken`,
    collectionId,
    operationId,
  );
  if (row?.taken) {
    throw new NonRetryableError(
      'the collection already holds documents: use collection.append',
      'COLLECTION_NOT_EMPTY',
    );
  }
}

function defineLoad(name: string, description: string, empty: boolean) {
  return defineOperationType({
    name,
    description,
    cost: 10,
    input,
    output: loadOutput,
    policy: { retryLimit: 2, retryDelaySeconds: 5 },
    resource: (request: Input) => ({ collectionId: request.collectionId, access: 'write' }),
    check: (request: Input, ctx) => checkSource(request.source, ctx, ['input', 'source']),
    run: (request: Input, ctx): Promise<Output> =>
      onCollection(
        ctx,
        request.collectionId,
        name,
        async (collection, tally) => {
          if (empty) await requireEmpty(ctx.db, collection.id, ctx.operationId);
          const counts = await loadDocuments(
            ctx,
            collection,
            await openSource(request.source, ctx),
            request.batchSize ?? ctx.config.collectionBatchSize,
            tally,
          );
          return {
            collectionId: collectionGlobalId(collection.id),
            source: sourceName(request.source),
            documents: tally.done,
            ...counts,
          };
        },
        (result) =>
          `${name} finished: ${result.added} added, ${result.updated} updated, ${result.unchanged} unchanged`,
      ),
    // Removes the documents this operation added; documents it updated keep their new content.
    async compensate({ operationId, input: request }, ctx) {
      const tally = { done: 0, total: 0 };
      await removeAll(
        ctx,
        tally,
        async (tx) =>
          (await removeBatch(tx, request.collectionId, { operationId }, ctx.config.collectionBatchSize))
            .documents,
        () => `removed ${tally.done} documents added by ${operationId}`,
      );
    },
  });
}

/** `collection.index`: documents from a source into an empty collection. */
export const collectionIndex = defineLoad(
  'collection.index',
  'Indexes the documents of a source (inline, folder, or export file) into an empty collection, in batches with progress. Cancel stops at a batch boundary; a later collection.append finishes the job. Cost 10. Compensation: removes the documents it added.',
  true,
);

/** `collection.append`: adds a source's documents, skipping unchanged ones. */
export const collectionAppend = defineLoad(
  'collection.append',
  'Adds the documents of a source to a collection; documents with an unchanged content hash are skipped and counted, changed ones are replaced. Cost 10. Compensation: removes the documents it added.',
  false,
);
