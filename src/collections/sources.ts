import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { z } from 'zod';
import type { Config } from '../config.ts';
import type { Problem } from '../errors.ts';
import { NonRetryableError } from '../operations/registry.ts';
import { EXPORT_FILE_MESSAGE, EXPORT_FILE_NAME, openExport } from './export-file.ts';
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
          .describe('A file written by collection.export'),
      })
      .describe('The documents of an earlier export, under their original source names'),
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

/** Problems with a source that need the file system: paths that escape their root, missing files. */
export async function checkSource(
  source: SourceInput,
  config: Config,
  at: (string | number)[],
): Promise<Problem[]> {
  if (source.kind === 'inline') {
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
  if (source.kind === 'folder') {
    const files = await folderFiles(source.path, config);
    return files.ok ? [] : [{ path: [...at, 'path'], message: files.problem }];
  }
  const file = await exportFile(source.file, config);
  return file.ok ? [] : [{ path: [...at, 'file'], message: file.problem }];
}

/** The text files of a folder source, resolved inside OPSGRAPH_SOURCES_ROOT. */
async function folderFiles(path: string, config: Config): Promise<Resolved<FolderFile[]>> {
  const folder = await resolveInside(config.sourcesRoot, path, 'OPSGRAPH_SOURCES_ROOT');
  return folder.ok ? listFolder(config.sourcesRoot, folder.value, 'OPSGRAPH_SOURCES_ROOT') : folder;
}

const exportFile = (file: string, config: Config) =>
  resolveInside(config.storageDir, file, 'the export folder');

function refuse(problems: string[]): never {
  throw new NonRetryableError(`source ${problems.join('; ')}`, 'BAD_SOURCE');
}

/** A source opened for reading: how many documents it holds, and the documents in batches. */
export interface OpenedSource {
  total: number;
  batches(size: number): AsyncIterable<SourceDocument[]>;
}

/** Opens a source, checking its paths again (the files may have changed since the request). */
export async function openSource(source: SourceInput, config: Config): Promise<OpenedSource> {
  if (source.kind === 'inline') {
    const problems = await checkSource(source, config, ['source']);
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
  const file = await exportFile(source.file, config);
  if (!file.ok) refuse([file.problem]);
  const opened = await openExport(file.value);
  return { total: opened.header.documentCount, batches: opened.batches };
}

async function* inBatches<T>(items: T[], size: number): AsyncIterable<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
