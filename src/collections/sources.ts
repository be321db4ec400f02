import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { z } from 'zod';
import type { Config } from '../config.ts';
import type { Problem } from '../errors.ts';
import { type CheckContext, NonRetryableError, type RunContext } from '../operations/registry.ts';
import { EXPORT_FILE_MESSAGE, EXPORT_FILE_NAME, exportLimits } from './export-file.ts';
import { ExportNotFoundError, findExport, NO_SUCH_EXPORT, openUsableExport, runViewer } from './exports.ts';
import { type FolderFile, listFolder, type Resolved, resolveInside } from './paths.ts';
import { type SourceDocument, titleOf } from './text.ts';

const inlineDocument = z.strictObject({
  externalId: z.string().min(1).max(500).describe('Unique within the source'),
  title: z.string().max(500).optional().describe('Default: the externalId'),
  content: z.string().max(1_000_000),
  metadata: z.record(z.string(), z.json()).optional(),
});

/** Where documents come from. */
export const sourceInput = z
  .discriminatedUnion('kind', [
    z
      .strictObject({
        kind: z.literal('inline'),
        name: z.string().min(1).max(200).describe('The source name the documents are stored under'),
        documents: z.array(inlineDocument).min(1).max(10_000),
      })
      .describe('Documents given in the request'),
    z
      .strictObject({
        kind: z.literal('folder'),
        path: z.string().min(1).max(1000).describe('A folder relative to OPSGRAPH_SOURCES_ROOT'),
      })
      .describe('Text and Markdown files (.txt, .md, .markdown) under a folder, read recursively'),
    z
      .strictObject({
        kind: z.literal('export'),
        file: z
          .string()
          .regex(EXPORT_FILE_NAME, EXPORT_FILE_MESSAGE)
          .describe("A file written by collection.export: your own (admins: anyone's)"),
      })
      .describe(
        'The documents of an earlier export, under their original source names. Only your own exports (admins: any); its checksum is verified first',
      ),
  ])
  .describe('Where the documents come from');

export type SourceInput = z.infer<typeof sourceInput>;

/** The source name a folder's documents are stored under. */
export const folderSourceName = (path: string) =>
  `folder:${
    path
      .replace(/\\/g, '/')
      .replace(/^(\.\/)+/, '')
      .replace(/\/+$/, '') || '.'
  }`;

/**
 * Problems with a source that need the file system or the database: paths that escape their root,
 * missing files, exports the viewer may not read (told apart from absent ones by nothing).
 */
export async function checkSource(
  source: SourceInput,
  ctx: CheckContext,
  at: (string | number)[],
): Promise<Problem[]> {
  const { config } = ctx;
  if (source.kind === 'inline') return inlineProblems(source, at);
  if (source.kind === 'folder') {
    const files = await folderFiles(source.path, config);
    return files.ok ? [] : [{ path: [...at, 'path'], message: files.problem }];
  }
  return (await usableExport(ctx, source.file)) ? [] : [{ path: [...at, 'file'], message: NO_SUCH_EXPORT }];
}

function inlineProblems(
  source: Extract<SourceInput, { kind: 'inline' }>,
  at: (string | number)[],
): Problem[] {
  const seen = new Set<string>();
  return source.documents.flatMap((doc, i) => {
    if (!seen.has(doc.externalId)) {
      seen.add(doc.externalId);
      return [];
    }
    return [
      { path: [...at, 'documents', i, 'externalId'], message: `duplicate externalId "${doc.externalId}"` },
    ];
  });
}

/** True when the viewer may read this export; the answer never tells absent from not theirs. */
export async function usableExport(ctx: CheckContext, file: string): Promise<boolean> {
  try {
    await findExport(ctx.db, ctx.viewer, file, ctx.config.storageDir);
    return true;
  } catch (error) {
    if (error instanceof ExportNotFoundError) return false;
    throw error;
  }
}

/** The text files of a folder source, resolved inside OPSGRAPH_SOURCES_ROOT. */
async function folderFiles(path: string, config: Config): Promise<Resolved<FolderFile[]>> {
  const folder = await resolveInside(config.sourcesRoot, path, 'OPSGRAPH_SOURCES_ROOT');
  return folder.ok ? listFolder(config.sourcesRoot, folder.value, 'OPSGRAPH_SOURCES_ROOT') : folder;
}

function refuse(problems: string[]): never {
  throw new NonRetryableError(`source ${problems.join('; ')}`, 'BAD_SOURCE');
}

/** A source opened for reading: how many documents it holds, and the documents in batches. */
export interface OpenedSource {
  total: number;
  batches(size: number): AsyncIterable<SourceDocument[]>;
  /** Releases what the source holds open (an export's file handle). */
  close?(): Promise<void>;
}

/**
 * Opens a source, checking its paths and its export's owner again (the files or the viewer's rights
 * may have changed since the request). An export is verified (checksum, then every line) first.
 */
export async function openSource(
  source: SourceInput,
  ctx: Pick<RunContext, 'db' | 'config' | 'ownerId' | 'signal'>,
): Promise<OpenedSource> {
  const { config } = ctx;
  if (source.kind === 'inline') {
    const problems = inlineProblems(source, ['source']);
    if (problems.length) refuse(problems.map((problem) => problem.message));
    const docs = source.documents.map((doc) => ({
      source: source.name,
      externalId: doc.externalId,
      title: doc.title ?? doc.externalId,
      content: doc.content,
      metadata: doc.metadata ?? {},
    }));
    return { total: docs.length, batches: (size) => inBatches(docs, size) };
  }
  if (source.kind === 'folder') {
    const files = await folderFiles(source.path, config);
    if (!files.ok) refuse([files.problem]);
    const name = folderSourceName(source.path);
    return {
      total: files.value.length,
      async *batches(size) {
        for (let i = 0; i < files.value.length; i += size) {
          yield await Promise.all(
            files.value.slice(i, i + size).map(async (file) => {
              const content = await readFile(file.absolutePath, 'utf8');
              return {
                source: name,
                externalId: file.relativePath,
                title: titleOf(content, basename(file.relativePath)),
                content: content.replaceAll('\0', ''),
                metadata: { path: file.relativePath, bytes: Buffer.byteLength(content) },
              };
            }),
          );
        }
      },
    };
  }
  const found = await findExport(
    ctx.db,
    await runViewer(ctx.db, ctx.ownerId),
    source.file,
    config.storageDir,
  );
  const opened = await openUsableExport(found, exportLimits(config, ctx.signal));
  return { total: found.documentCount, batches: opened.batches, close: opened.close };
}

async function* inBatches<T>(items: T[], size: number): AsyncIterable<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
