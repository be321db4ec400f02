import { join } from 'node:path';
import { z } from 'zod';
import { defineOperationType, NonRetryableError, type RunContext } from '../../operations/registry.ts';
import {
  ChecksumMismatchError,
  EXPORT_FILE_MESSAGE,
  EXPORT_FILE_NAME,
  EXPORT_FORMAT,
  type ExportHeader,
  exportFileName,
  exportLimits,
} from '../export-file.ts';
import { discardPartial, type Partial, placePartial, removeFile, writePartial } from '../export-write.ts';
import {
  abandonExport,
  completeExport,
  ExportWriteError,
  findExport,
  forgetExport,
  isSystemError,
  NO_SUCH_EXPORT,
  openUsableExport,
  ownerFolder,
  ownsExportName,
  type Reservation,
  reserveExport,
  runViewer,
  withdrawExport,
} from '../exports.ts';
import { collectionGlobalId, collectionIdInput, collectionUuid } from '../ids.ts';
import { batchSizeInput, chunkSizeInput, languageInput } from '../languages.ts';
import { usableExport } from '../sources.ts';
import { ClaimLostError, readCollection } from '../store.ts';
import type { SourceDocument } from '../text.ts';
import { inTransaction, onCollection, type Tally } from '../work.ts';
import { collectionName, dropCollection, insertCollection } from './create.ts';
import { loadDocuments } from './load.ts';

const exportInput = z.strictObject({
  collectionId: collectionIdInput,
  file: z
    .string()
    .regex(EXPORT_FILE_NAME, EXPORT_FILE_MESSAGE)
    .optional()
    .describe(
      'File name, unique among your exports (".ndjson.gz" is added); default: collection-<id>-<time>-<operation>',
    ),
});
type ExportInput = z.infer<typeof exportInput>;

async function* exportedDocuments(ctx: RunContext, collectionId: string, tally: Tally) {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    if (ctx.signal.aborted) throw new Error(`export stopped: ${String(ctx.signal.reason)}`);
    const rows = await ctx.db.$queryRawUnsafe<(SourceDocument & { id: string })[]>(
      `SELECT id, source, "externalId", title, content, metadata FROM "Document"
        WHERE "collectionId" = $1::uuid AND id > $2::uuid ORDER BY id LIMIT $3`,
      collectionId,
      after,
      ctx.config.collectionBatchSize,
    );
    if (rows.length === 0) return;
    after = (rows.at(-1) as { id: string }).id;
    tally.done += rows.length;
    ctx.progress({
      current: tally.done,
      total: tally.total,
      message: `exported ${tally.done} of ${tally.total} documents`,
    });
    yield rows.map(({ id: _, ...doc }) => doc);
  }
}

/** `collection.export`: a gzipped NDJSON file owned by the caller, with a checksum, written atomically. */
export const collectionExport = defineOperationType({
  name: 'collection.export',
  description:
    'Writes a collection to a gzipped NDJSON file that belongs to you: only you (and admins) may import it or use it as an export source. Names are unique among your own exports. Result: file, size, documentCount, sha256. Cost 2. Compensation: deletes the file it wrote.',
  cost: 2,
  input: exportInput,
  output: z.object({
    collectionId: z.string(),
    file: z.string().describe("The export's name: what collection.import and export sources take"),
    size: z.int().describe('Bytes of the gzipped file'),
    documentCount: z.int(),
    sha256: z.string().describe('sha256 of the gzipped file, checked by every read'),
  }),
  policy: { retryLimit: 2, retryDelaySeconds: 5 },
  resource: (request: ExportInput) => ({ collectionId: request.collectionId, access: 'read' }),
  async check(request: ExportInput, ctx) {
    if (!request.file) return [];
    const taken = await ownsExportName(ctx.db, ctx.viewer.id, exportFileName(request.file));
    return taken ? [{ path: ['input', 'file'], message: 'you already have an export with this name' }] : [];
  },
  // A read: it takes no lock, so readers of a public collection never block its owner's writes.
  async run(request: ExportInput, ctx) {
    const collection = await readCollection(ctx.db, request.collectionId);
    if (!collection) throw new NonRetryableError('the collection no longer exists', 'COLLECTION_NOT_FOUND');
    const tally: Tally = { done: 0, total: collection.documentCount };
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
    // The default name carries the operation's id: two exports in one second never collide.
    const file = exportFileName(
      request.file ?? `collection-${collection.id}-${stamp}-${ctx.operationId.slice(0, 8)}`,
    );
    const reservation: Reservation = {
      ownerId: ctx.ownerId,
      file,
      collectionId: collection.id,
      operationId: ctx.operationId,
      claimId: ctx.claimId,
    };
    // Create-or-fail on (owner, file): of two exports to one name, exactly one gets here.
    if (!(await inTransaction(ctx, (tx) => reserveExport(tx, reservation)))) {
      throw new NonRetryableError('you already have an export with this name', 'FILE_EXISTS');
    }
    const dir = ownerFolder(ctx.config.storageDir, ctx.ownerId);
    let written: Partial | undefined;
    try {
      written = await writePartial(
        dir,
        file,
        {
          format: EXPORT_FORMAT,
          version: 1,
          name: collection.name,
          language: collection.language as ExportHeader['language'],
          chunkSize: collection.chunkSize,
          // The collection may change while it is read (no lock): the row records what was written.
          documentCount: collection.documentCount,
          exportedAt: new Date().toISOString(),
        },
        exportedDocuments(ctx, collection.id, tally),
      );
      const partial = written;
      // The file is renamed into place inside the transaction that completes its row.
      await inTransaction(ctx, async (tx) => {
        const recorded = { size: partial.size, sha256: partial.sha256, documentCount: tally.done };
        if (!(await completeExport(tx, reservation, recorded))) {
          throw new ClaimLostError('the export reservation was taken over');
        }
        await placePartial(partial, join(dir, file));
      });
    } catch (error) {
      if (written) await discardPartial(written.partial);
      await abandonExport(ctx.db, reservation, join(dir, file)).catch((failure) =>
        ctx.logger.warn('could not give up the export reservation', { error: failure }),
      );
      throw isSystemError(error) ? new ExportWriteError(error) : error;
    }
    return {
      collectionId: collectionGlobalId(collection.id),
      file,
      size: written.size,
      documentCount: tally.done,
      sha256: written.sha256,
    };
  },
  // Withdrawn first (nobody may read it), then deleted from disk, then forgotten.
  async compensate({ operationId, result }, ctx) {
    if (!result?.file) return;
    await withdrawExport(ctx.db, ctx.ownerId, result.file, operationId);
    const path = join(ownerFolder(ctx.config.storageDir, ctx.ownerId), result.file);
    await removeFile(path);
    await removeFile(`${path}.sha256`);
    await forgetExport(ctx.db, ctx.ownerId, result.file, operationId);
  },
});

const importInput = z.strictObject({
  file: z
    .string()
    .regex(EXPORT_FILE_NAME, EXPORT_FILE_MESSAGE)
    .describe("An export of yours (admins: anyone's), as collection.export named it"),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional()
    .describe('Expected checksum (default: the one recorded when the export was written)'),
  name: collectionName,
  isPublic: z.boolean().default(false),
  language: languageInput.optional().describe("Default: the exported collection's"),
  chunkSize: chunkSizeInput.optional().describe("Default: the exported collection's"),
  batchSize: batchSizeInput,
});
type ImportInput = z.infer<typeof importInput>;

/** `collection.import`: a new collection from an export, after verifying its checksum and lines. */
export const collectionImport = defineOperationType({
  name: 'collection.import',
  description:
    "Restores an export of yours (admins: anyone's) into a new collection: verifies its checksum (the one recorded at export, and the one given), then every line, before creating anything; then loads in batches. Cost 10. Compensation: deletes the new collection.",
  cost: 10,
  input: importInput,
  output: z.object({ collectionId: z.string(), documents: z.int(), chunks: z.int(), sha256: z.string() }),
  policy: { retryLimit: 2, retryDelaySeconds: 5 },
  async check(request: ImportInput, ctx) {
    const usable = await usableExport(ctx, request.file);
    return usable ? [] : [{ path: ['input', 'file'], message: NO_SUCH_EXPORT }];
  },
  async run(request: ImportInput, ctx) {
    // Looked up again: the export or the viewer's rights may have changed since the request.
    const found = await findExport(
      ctx.db,
      await runViewer(ctx.db, ctx.ownerId),
      request.file,
      ctx.config.storageDir,
    );
    if (request.sha256 && request.sha256 !== found.sha256) {
      throw new ChecksumMismatchError('the export is not the one the given checksum names');
    }
    const opened = await openUsableExport(found, exportLimits(ctx.config, ctx.signal));
    ctx.progress({ current: 0, total: found.documentCount, message: 'checksum and contents verified' });
    let id: string;
    try {
      id = await ctx.db.$transaction((tx) =>
        insertCollection(tx, ctx.ownerId, ctx.operationId, {
          name: request.name,
          isPublic: request.isPublic,
          language: request.language ?? opened.header.language,
          chunkSize: request.chunkSize ?? opened.header.chunkSize,
          busy: true,
        }),
      );
    } catch (error) {
      await opened.close();
      throw error;
    }
    return onCollection(
      ctx,
      id,
      'collection.import',
      async (collection, tally) => {
        const counts = await loadDocuments(
          ctx,
          collection,
          { total: found.documentCount, batches: opened.batches, close: opened.close },
          request.batchSize ?? ctx.config.collectionBatchSize,
          tally,
        );
        const after = await readCollection(ctx.db, id);
        return {
          collectionId: collectionGlobalId(id),
          documents: after?.documentCount ?? counts.added,
          chunks: after?.chunkCount ?? counts.chunks,
          sha256: found.sha256,
        };
      },
      (result) => `imported ${result.documents} documents from ${found.file}`,
    );
  },
  async compensate({ result }, ctx) {
    const id = result?.collectionId ? collectionUuid(result.collectionId) : undefined;
    if (id) await dropCollection(ctx.db, id, ctx.config.collectionBatchSize);
  },
});
