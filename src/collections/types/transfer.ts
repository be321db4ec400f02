import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { defineOperationType, NonRetryableError, type RunContext } from '../../operations/registry.ts';
import {
  EXPORT_FILE_MESSAGE,
  EXPORT_FILE_NAME,
  EXPORT_FORMAT,
  exportFileName,
  openExport,
  recordedChecksum,
  sha256File,
  writeExport,
} from '../export-file.ts';
import { collectionGlobalId, collectionIdInput, collectionUuid } from '../ids.ts';
import { batchSizeInput, chunkSizeInput, languageInput } from '../languages.ts';
import { resolveInside } from '../paths.ts';
import { readCollection } from '../store.ts';
import type { SourceDocument } from '../text.ts';
import { onCollection, type Tally } from '../work.ts';
import { collectionName, dropCollection, insertCollection } from './create.ts';
import { loadDocuments } from './load.ts';

const exportInput = z.strictObject({
  collectionId: collectionIdInput,
  file: z
    .string()
    .regex(EXPORT_FILE_NAME, EXPORT_FILE_MESSAGE)
    .optional()
    .describe('File name in the export folder (".ndjson.gz" is added); default: collection-<id>-<time>'),
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

/** `collection.export`: a gzipped NDJSON file with a checksum, written atomically. */
export const collectionExport = defineOperationType({
  name: 'collection.export',
  description:
    'Writes a collection to a gzipped NDJSON file in the export folder (OPSGRAPH_STORAGE_DIR), with <file>.sha256 beside it. Result: file, path, size, documentCount, sha256. Cost 2. Compensation: deletes the file it wrote.',
  cost: 2,
  input: exportInput,
  output: z.object({
    collectionId: z.string(),
    file: z.string().describe('File name in the export folder'),
    path: z.string().describe('Absolute path on the server'),
    size: z.int(),
    documentCount: z.int(),
    sha256: z.string(),
  }),
  policy: { retryLimit: 2, retryDelaySeconds: 5 },
  resource: (request: ExportInput) => ({ collectionId: request.collectionId, access: 'read' }),
  async check(request: ExportInput, ctx) {
    if (!request.file) return [];
    const taken = await resolveInside(
      ctx.config.storageDir,
      exportFileName(request.file),
      'the export folder',
    );
    return taken.ok ? [{ path: ['input', 'file'], message: 'a file with this name already exists' }] : [];
  },
  // A read: it takes no lock, so readers of a public collection never block its owner's writes.
  async run(request: ExportInput, ctx) {
    const collection = await readCollection(ctx.db, request.collectionId);
    if (!collection) throw new NonRetryableError('the collection no longer exists', 'COLLECTION_NOT_FOUND');
    const tally: Tally = { done: 0, total: collection.documentCount };
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
    const file = exportFileName(request.file ?? `collection-${collection.id}-${stamp}`);
    const written = await writeExport(
      ctx.config.storageDir,
      file,
      {
        format: EXPORT_FORMAT,
        version: 1,
        name: collection.name,
        language: collection.language,
        chunkSize: collection.chunkSize,
        documentCount: collection.documentCount,
        exportedAt: new Date().toISOString(),
      },
      exportedDocuments(ctx, collection.id, tally),
    ).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') throw new NonRetryableError(`${file} already exists`, 'FILE_EXISTS');
      throw error;
    });
    return {
      collectionId: collectionGlobalId(collection.id),
      file,
      path: join(ctx.config.storageDir, file),
      size: written.size,
      documentCount: tally.done,
      sha256: written.sha256,
    };
  },
  async compensate({ result }, ctx) {
    if (!result?.file) return;
    await rm(join(ctx.config.storageDir, result.file), { force: true });
    await rm(join(ctx.config.storageDir, `${result.file}.sha256`), { force: true });
  },
});

const importInput = z.strictObject({
  file: z
    .string()
    .regex(EXPORT_FILE_NAME)
    .describe('A file written by collection.export, in the export folder'),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional()
    .describe('Expected checksum (default: the one recorded beside the file at export)'),
  name: collectionName,
  isPublic: z.boolean().default(false),
  language: languageInput.optional().describe("Default: the exported collection's"),
  chunkSize: chunkSizeInput.optional().describe("Default: the exported collection's"),
  batchSize: batchSizeInput,
});
type ImportInput = z.infer<typeof importInput>;

/** `collection.import`: a new collection from an export, after verifying its checksum. */
export const collectionImport = defineOperationType({
  name: 'collection.import',
  description:
    'Restores an export into a new collection: verifies the checksum first (given, or recorded beside the file), then loads in batches. Cost 10. Compensation: deletes the new collection.',
  cost: 10,
  input: importInput,
  output: z.object({ collectionId: z.string(), documents: z.int(), chunks: z.int(), sha256: z.string() }),
  policy: { retryLimit: 2, retryDelaySeconds: 5 },
  async check(request: ImportInput, ctx) {
    const file = await resolveInside(ctx.config.storageDir, request.file, 'the export folder');
    return file.ok ? [] : [{ path: ['input', 'file'], message: file.problem }];
  },
  async run(request: ImportInput, ctx) {
    // Resolved again: the file may have been replaced (e.g. by a symlink out) since the request.
    const resolved = await resolveInside(ctx.config.storageDir, request.file, 'the export folder');
    if (!resolved.ok) throw new NonRetryableError(`file ${resolved.problem}`, 'BAD_SOURCE');
    const path = resolved.value;
    const expected = request.sha256 ?? (await recordedChecksum(path));
    if (!expected)
      throw new NonRetryableError('no checksum given and none recorded beside the file', 'CHECKSUM_MISSING');
    const actual = await sha256File(path);
    if (actual !== expected) {
      throw new NonRetryableError(
        `checksum mismatch: expected ${expected}, file has ${actual}`,
        'CHECKSUM_MISMATCH',
      );
    }
    ctx.progress({ current: 0, total: null, message: 'checksum verified' });
    const { header } = await openExport(path);
    const id = await ctx.db.$transaction((tx) =>
      insertCollection(tx, ctx.ownerId, ctx.operationId, {
        name: request.name,
        isPublic: request.isPublic,
        language: request.language ?? header.language,
        chunkSize: request.chunkSize ?? header.chunkSize,
        busy: true,
      }),
    );
    return onCollection(
      ctx,
      id,
      'collection.import',
      async (collection, tally) => {
        const counts = await loadDocuments(
          ctx,
          collection,
          { kind: 'export', file: request.file },
          request.batchSize ?? ctx.config.collectionBatchSize,
          tally,
        );
        const after = await readCollection(ctx.db, id);
        return {
          collectionId: collectionGlobalId(id),
          documents: after?.documentCount ?? counts.added,
          chunks: after?.chunkCount ?? counts.chunks,
          sha256: actual,
        };
      },
      (result) => `imported ${result.documents} documents from ${request.file}`,
    );
  },
  async compensate({ result }, ctx) {
    const id = result?.collectionId ? collectionUuid(result.collectionId) : undefined;
    if (id) await dropCollection(ctx.db, id, ctx.config.collectionBatchSize);
  },
});
