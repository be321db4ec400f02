import { z } from 'zod';
import type { Db } from '../../db/prisma.ts';
import { defineOperationType, NonRetryableError } from '../../operations/registry.ts';
import { collectionGlobalId, collectionUuid } from '../ids.ts';
import { chunkSizeInput, languageInput } from '../languages.ts';
import { removeBatch } from '../store.ts';

type Executor = Pick<Db, '$queryRawUnsafe' | '$executeRawUnsafe'>;

export const collectionName = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .describe('Unique among your collections (1–200 characters)');

const input = z.strictObject({
  name: collectionName,
  isPublic: z.boolean().default(false).describe('Anyone may see and search it (default false)'),
  language: languageInput.default('english'),
  chunkSize: chunkSizeInput.default(1000),
});

const output = z.object({
  collectionId: z.string().describe('Global ID of the new collection'),
  collectionUuid: z.string().describe('Its database id (letters, digits and "-": safe in file names)'),
});

/** Creates a collection row owned by `ownerId`, linked to the operation; fails if the name is taken. */
export async function insertCollection(
  db: Executor,
  ownerId: string,
  operationId: string,
  spec: { name: string; isPublic: boolean; language: string; chunkSize: number; busy?: boolean },
): Promise<string> {
  const rows = await db.$queryRawUnsafe<{ id: string }[]>(
    `INSERT INTO "Collection" (name, "ownerId", "isPublic", language, "chunkSize", "lastOperationId", "busyOperationId", status)
     VALUES ($1, $2::uuid, $3, $4, $5, $6::uuid, CASE WHEN $7 THEN $6::uuid END, (CASE WHEN $7 THEN 'BUSY' ELSE 'EMPTY' END)::"CollectionStatus")
     ON CONFLICT ("ownerId", name) DO UPDATE SET "updatedAt" = now()
        WHERE "Collection"."lastOperationId" = $6::uuid
     RETURNING id`,
    spec.name,
    ownerId,
    spec.isPublic,
    spec.language,
    spec.chunkSize,
    operationId,
    spec.busy ?? false,
  );
  const id = rows[0]?.id;
  if (!id)
    throw new NonRetryableError(
      `you already have a collection named "${spec.name}"`,
      'COLLECTION_NAME_TAKEN',
    );
  await db.$executeRawUnsafe(
    `UPDATE "Operation" SET "collectionId" = $2::uuid WHERE id = $1::uuid`,
    operationId,
    id,
  );
  return id;
}

/** Deletes a collection with all of its documents, one batch per transaction (compensations). */
export async function dropCollection(db: Db, collectionId: string, batchSize: number): Promise<void> {
  while ((await db.$transaction((tx) => removeBatch(tx, collectionId, 'all', batchSize))).documents > 0);
  await db.$executeRawUnsafe(`DELETE FROM "Collection" WHERE id = $1::uuid`, collectionId);
}

/** `collection.create`: inline, in the request's transaction. Undone by deleting the collection. */
export const collectionCreate = defineOperationType({
  name: 'collection.create',
  description:
    'Creates an empty collection (inline: finished when startOperation returns). Result: { collectionId }. Cost 1. Compensation: deletes the collection.',
  inline: true,
  cost: 1,
  input,
  output,
  policy: { hardTimeoutSeconds: 30, softTimeoutSeconds: 30 },
  async run(request, ctx) {
    const id = await insertCollection(ctx.db, ctx.ownerId, ctx.operationId, request);
    return { collectionId: collectionGlobalId(id), collectionUuid: id };
  },
  async compensate({ result }, ctx) {
    const id = result?.collectionId ? collectionUuid(result.collectionId) : undefined;
    if (id) await dropCollection(ctx.db, id, ctx.config.collectionBatchSize);
  },
});
