import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { z } from 'zod';
import type { SourceDocument } from './text.ts';

/**
 * The export format: gzipped NDJSON. The first line is a header, then one line per document.
 * Beside each export, `<file>.sha256` holds the checksum of the gzipped file.
 */
export const EXPORT_FORMAT = 'opsgraph.collection';

const header = z.object({
  format: z.literal(EXPORT_FORMAT),
  version: z.literal(1),
  name: z.string(),
  language: z.string(),
  chunkSize: z.int(),
  documentCount: z.int().min(0),
  exportedAt: z.string(),
});
export type ExportHeader = z.infer<typeof header>;

const line = z.object({
  source: z.string().min(1),
  externalId: z.string().min(1),
  title: z.string(),
  content: z.string(),
  metadata: z.record(z.string(), z.unknown()),
});

/** Export file names: letters, digits, `.`, `_`, `-`; `.ndjson.gz` is added when missing. */
export const EXPORT_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
export const EXPORT_FILE_MESSAGE =
  'must be a plain file name: letters, digits, ".", "_" and "-" (no folders)';

export const exportFileName = (name: string) => (name.endsWith('.ndjson.gz') ? name : `${name}.ndjson.gz`);

export interface Written {
  size: number;
  sha256: string;
}

/**
 * Writes an export atomically: to a temporary file first, renamed into place (with its checksum
 * file) only when complete, so a cancelled or crashed export leaves no partial file behind.
 */
export async function writeExport(
  dir: string,
  file: string,
  head: ExportHeader,
  documents: AsyncIterable<SourceDocument[]>,
): Promise<Written> {
  await mkdir(dir, { recursive: true });
  const target = join(dir, file);
  const partial = join(dir, `.${file}.${randomBytes(4).toString('hex')}.partial`);
  const hash = createHash('sha256');
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  async function* lines() {
    yield `${JSON.stringify(head)}\n`;
    for await (const batch of documents) {
      yield batch.map((doc) => `${JSON.stringify(doc)}\n`).join('');
    }
  }
  try {
    await pipeline(lines(), createGzip(), count, createWriteStream(partial, { flags: 'wx' }));
    const sha256 = hash.digest('hex');
    // Both written beside the target first and renamed into place: nothing follows a planted link.
    await writeFile(`${partial}.sha256`, `${sha256}  ${file}\n`, { flag: 'wx' });
    await rename(`${partial}.sha256`, `${target}.sha256`);
    await rename(partial, target);
    return { size, sha256 };
  } catch (error) {
    await rm(partial, { force: true });
    await rm(`${partial}.sha256`, { force: true });
    throw error;
  }
}

/** sha256 of a file's bytes. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The checksum recorded beside an export, or undefined when there is none. */
export async function recordedChecksum(path: string): Promise<string | undefined> {
  const text = await readFile(`${path}.sha256`, 'utf8').catch(() => undefined);
  return text ? /^[0-9a-f]{64}/.exec(text)?.[0] : undefined;
}

/** The error for a file that is not an opsgraph export. */
export class BadExportError extends Error {
  override name = 'BadExportError';
  readonly code = 'BAD_EXPORT_FILE';
  readonly retryable = false;
}

/** Reads an export: its header, then its documents in batches. */
export async function openExport(path: string): Promise<{
  header: ExportHeader;
  batches(size: number): AsyncIterable<SourceDocument[]>;
}> {
  await stat(path);
  const readLines = () =>
    createInterface({
      input: createReadStream(path).pipe(createGunzip()),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
  let head: ExportHeader | undefined;
  try {
    for await (const first of readLines()) {
      head = header.parse(JSON.parse(first));
      break;
    }
  } catch {
    throw new BadExportError('the file is not an opsgraph collection export');
  }
  if (!head) throw new BadExportError('the file is empty');
  return {
    header: head,
    async *batches(size) {
      let batch: SourceDocument[] = [];
      let n = 0;
      for await (const text of readLines()) {
        n += 1;
        if (n === 1 || text === '') continue;
        const parsed = line.safeParse(JSON.parse(text));
        if (!parsed.success) throw new BadExportError(`line ${n} is not a valid document`);
        batch.push(parsed.data);
        if (batch.length >= size) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length) yield batch;
    },
  };
}
