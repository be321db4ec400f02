import { z } from 'zod';
import { defineOperationType } from '../../operations/registry.ts';
import { collectionGlobalId, collectionIdInput } from '../ids.ts';
import { batchSizeInput } from '../languages.ts';
import { removeBatch } from '../store.ts';
import { inTransaction, onCollection, removeAll } from '../work.ts';

const removeSourceInput = z.strictObject({
  collectionId: collectionIdInput,
  source: z.string().min(1).max(1100).describe('The source name, as in Document.source'),
  batchSize: batchSizeInput,
});
type RemoveSourceInput = z.infer<typeof removeSourceInput>;

/** `collection.removeSource`: every document of one source, in batches. */
export const collectionRemoveSource = defineOperationType({
  name: 'collection.removeSource',
  description:
    'Removes every document of one source from a collection, in batches with progress. Cancel keeps what was already removed. Cost 2. No compensation.',
  cost: 2,
  input: removeSourceInput,
  output: z.object({ collectionId: z.string(), source: z.string(), removed: z.int() }),
  policy: { retryLimit: 2, retryDelaySeconds: 5 },
  resource: (request: RemoveSourceInput) => ({ collectionId: request.collectionId, access: 'write' }),
  run: (request: RemoveSourceInput, ctx) =>
    onCollection(
      ctx,
      request.collectionId,
      'collection.removeSource',
      async (collection, tally) => {
        const [count] = await ctx.db.$queryRawUnsafe<{ n: number }[]>(
          `SELECT count(*)::int AS n FROM "Document" WHERE "collectionId" = $1::uuid AND source = $2`,
          collection.id,
          request.source,
        );
        tally.total = count?.n ?? 0;
        const size = request.batchSize ?? ctx.config.collectionBatchSize;
        await removeAll(
          ctx,
          tally,
          async (tx) => (await removeBatch(tx, collection.id, { source: request.source }, size)).documents,
          () => `removed ${tally.done} of ${tally.total} documents of ${request.source}`,
        );
        return {
          collectionId: collectionGlobalId(collection.id),
          source: request.source,
          removed: tally.done,
        };
      },
      (result) => `removed ${result.removed} documents of source ${result.source}`,
    ),
});

const deleteInput = z.strictObject({ collectionId: collectionIdInput, batchSize: batchSizeInput });
type DeleteInput = z.infer<typeof deleteInput>;

/** `collection.delete`: all documents in batches, then the collection itself. */
export const collectionDelete = defineOperationType({
  name: 'collection.delete',
  description:
    'Deletes a collection and all of its documents, in batches with progress. Cancel leaves the collection with the documents not yet removed. Cost 2. No compensation.',
  cost: 2,
  input: deleteInput,
  output: z.object({ collectionId: z.string(), removedDocuments: z.int() }),
  policy: { retryLimit: 2, retryDelaySeconds: 5 },
  resource: (request: DeleteInput) => ({ collectionId: request.collectionId, access: 'write' }),
  run: (request: DeleteInput, ctx) =>
    onCollection(
      ctx,
      request.collectionId,
      'collection.delete',
      async (collection, tally) => {
        tally.total = collection.documentCount;
        const size = request.batchSize ?? ctx.config.collectionBatchSize;
        await removeAll(
          ctx,
          tally,
          async (tx) => (await removeBatch(tx, collection.id, 'all', size)).documents,
          () => `removed ${tally.done} of ${tally.total} documents`,
        );
        await inTransaction(ctx, (tx) =>
          tx.$executeRawUnsafe(`DELETE FROM "Collection" WHERE id = $1::uuid`, collection.id),
        );
        return { collectionId: collectionGlobalId(collection.id), removedDocuments: tally.done };
      },
      (result) => `deleted with ${result.removedDocuments} documents`,
    ),
});
