import { z } from 'zod';
import type { Db } from '../../db/prisma.ts';
import { defineOperationType } from '../../operations/registry.ts';
import { collectionGlobalId, collectionIdInput } from '../ids.ts';
import { batchSizeInput, chunkSizeInput, languageInput } from '../languages.ts';
import { arrayLiteral, encodeChunks } from '../prepare.ts';
import { insertChunks } from '../store.ts';
import { eachBatch, inTransaction, mapBatches, onCollection, type Tally } from '../work.ts';

const input = z.strictObject({
  collectionId: collectionIdInput,
  language: languageInput.optional().describe('New text search language (default: unchanged)'),
  chunkSize: chunkSizeInput.optional().describe('New chunk size (default: unchanged)'),
  batchSize: batchSizeInput,
});
type Input = z.infer<typeof input>;

const output = z.object({
  collectionId: z.string(),
  generation: z.int().describe('The generation now in service'),
  language: z.string(),
  chunkSize: z.int(),
  documents: z.int(),
  chunks: z.int(),
});

/** Deletes chunks of one generation (or of every generation but one), 5000 per statement. */
async function dropChunks(db: Db, collectionId: string, generation: { only: number } | { except: number }) {
  const [filter, value] = 'only' in generation ? ['=', generation.only] : ['<>', generation.except];
  while (
    (await db.$executeRawUnsafe(
      `DELETE FROM "Chunk" WHERE id IN (
         SELECT id FROM "Chunk" WHERE "collectionId" = $1::uuid AND generation ${filter} $2 LIMIT 5000)`,
      collectionId,
      value,
    )) > 0
  );
}

async function* documentBatches(db: Db, collectionId: string, size: number) {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await db.$queryRawUnsafe<{ id: string; title: string; content: string }[]>(
      `SELECT id, title, content FROM "Document" WHERE "collectionId" = $1::uuid AND id > $2::uuid ORDER BY id LIMIT $3`,
      collectionId,
      after,
      size,
    );
    if (rows.length === 0) return;
    yield rows;
    after = (rows.at(-1) as { id: string }).id;
  }
}

/**
 * `collection.reindex`, blue-green: builds the next generation of chunks with the new settings
 * while searches read the current one, switches in one transaction, then drops the old one.
 */
export const collectionReindex = defineOperationType({
  name: 'collection.reindex',
  description:
    'Rebuilds the search index with new settings (language, chunk size) blue-green: searches keep using the current index until an atomic switch; cancelling before the switch leaves the current index untouched. Cost 10. No compensation.',
  cost: 10,
  input,
  output,
  policy: { retryLimit: 2, retryDelaySeconds: 5 },
  resource: (request: Input) => ({ collectionId: request.collectionId, access: 'write' }),
  run: (request: Input, ctx) =>
    onCollection(
      ctx,
      request.collectionId,
      'collection.reindex',
      async (collection, tally: Tally) => {
        const next = {
          id: collection.id,
          language: request.language ?? collection.language,
          chunkSize: request.chunkSize ?? collection.chunkSize,
        };
        const generation = collection.activeGeneration + 1;
        // Leftovers of an earlier reindex that stopped before its switch.
        await dropChunks(ctx.db, collection.id, { except: collection.activeGeneration });
        tally.total = collection.documentCount;
        let chunks = 0;
        await eachBatch(
          ctx,
          mapBatches(
            documentBatches(ctx.db, collection.id, request.batchSize ?? ctx.config.collectionBatchSize),
            async (docs) => ({
              length: docs.length,
              ids: arrayLiteral(docs.map((doc) => doc.id)),
              chunks: await encodeChunks(docs, next.chunkSize),
            }),
          ),
          tally,
          async (tx, batch) => {
            chunks += await insertChunks(tx, next, generation, batch.ids, batch.chunks);
          },
          () => `built ${tally.done} of ${tally.total} documents into generation ${generation}`,
          { unseen: true },
        );
        await inTransaction(ctx, (tx) =>
          tx.$executeRawUnsafe(
            `UPDATE "Collection" SET "activeGeneration" = $2, language = $3, "chunkSize" = $4, "chunkCount" = $5, "updatedAt" = now()
              WHERE id = $1::uuid`,
            collection.id,
            generation,
            next.language,
            next.chunkSize,
            chunks,
          ),
        );
        ctx.progress({
          current: tally.done,
          total: tally.total,
          message: `switched to generation ${generation}`,
        });
        await dropChunks(ctx.db, collection.id, { only: collection.activeGeneration });
        return {
          collectionId: collectionGlobalId(collection.id),
          generation,
          language: next.language,
          chunkSize: next.chunkSize,
          documents: tally.done,
          chunks,
        };
      },
      (result) =>
        `reindexed into generation ${result.generation} (${result.language}, ${result.chunkSize} characters a chunk)`,
    ),
});
