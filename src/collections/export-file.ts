import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { z } from 'zod';
import type { Config } from '../config.ts';
import { NonRetryableError } from '../operations/registry.ts';
import { chunkSizeInput, languageInput } from './languages.ts';
import type { SourceDocument } from './text.ts';

/**
 * The export format: gzipped NDJSON. The first line is a header, then one line per document.
 * Beside each export, `<file>.sha256` holds the checksum of the gzipped file (for people; the
 * checksum every read checks is the one recorded in the ExportFile row).
 */
export const EXPORT_FORMAT = 'opsgraph.collection';

// An export file is outside data: a hand-edited or corrupted one must fail as cleanly as bad input.
const header = z.strictObject({
  format: z.literal(EXPORT_FORMAT),
  version: z.literal(1),
  name: z.string().min(1).max(200),
  language: languageInput,
  chunkSize: chunkSizeInput,
  documentCount: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  exportedAt: z.iso.datetime(),
});
export type ExportHeader = z.infer<typeof header>;

const line = z.strictObject({
  source: z.string().min(1).max(2000),
  externalId: z.string().min(1).max(4096),
  title: z.string().max(1000),
  content: z.string(),
  metadata: z.record(z.string(), z.json()),
});

/** Export file names: letters, digits, `.`, `_`, `-`; `.ndjson.gz` is added when missing. */
export const EXPORT_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
export const EXPORT_FILE_MESSAGE =
  'must be a plain file name: letters, digits, ".", "_" and "-" (no folders)';

export const exportFileName = (name: string) => (name.endsWith('.ndjson.gz') ? name : `${name}.ndjson.gz`);

/** The error for a file that is not a valid opsgraph export (corrupted or hand-edited). */
export class BadExportError extends Error {
  override name = 'BadExportError';
  readonly code = 'BAD_EXPORT_FILE';
  readonly retryable = false;
}

/** An export whose bytes are not the ones recorded when it was written. */
export class ChecksumMismatchError extends NonRetryableError {
  constructor(message: string) {
    super(message, 'CHECKSUM_MISMATCH');
  }
}

/** Bounds on what reading an export may take. */
export interface ReadLimits {
  /** Longest line (uncompressed bytes) accepted. */
  maxLineBytes: number;
  /** Deepest nesting of JSON (document metadata) accepted. */
  maxJsonDepth: number;
  /** Stops the verification of a long file (cancel, timeout). */
  signal?: AbortSignal;
}

/** The read limits a configuration sets. */
export const exportLimits = (config: Config, signal?: AbortSignal): ReadLimits => ({
  maxLineBytes: config.exportMaxLineBytes,
  maxJsonDepth: config.exportMaxJsonDepth,
  signal,
});

/** What the export's row says the file must be. */
export interface Expected {
  sha256: string;
  size: number;
  /** Documents written (the header's count is the collection's when the export began). */
  documentCount: number;
}

/** An export opened for reading, already verified. Close it when done. */
export interface OpenedExport {
  header: ExportHeader;
  batches(size: number): AsyncIterable<SourceDocument[]>;
  close(): Promise<void>;
}

/**
 * Opens an export and verifies it before anything is read into the database: its size and sha256
 * against the recorded ones (before decompressing a byte), then every line — the header and each
 * document — against the format, so a corrupted or hand-edited file fails with a typed error and
 * nothing stored. Reads go through one file handle: replacing the file meanwhile changes nothing.
 */
export async function openExport(
  path: string,
  expected: Expected,
  limits: ReadLimits,
): Promise<OpenedExport> {
  const handle = await open(path, 'r');
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size !== expected.size || (await hashOf(handle)) !== expected.sha256) {
      throw new ChecksumMismatchError('the export file was changed after it was written (checksum mismatch)');
    }
    let head: ExportHeader | undefined;
    let count = 0;
    for await (const item of documentsOf(handle, limits, expected.documentCount)) {
      if ('header' in item) head = item.header;
      else count += 1;
    }
    if (count !== expected.documentCount) {
      throw new BadExportError(`the file holds ${count} documents, ${expected.documentCount} were exported`);
    }
    const verified = head as ExportHeader;
    return {
      header: verified,
      async *batches(size) {
        let batch: SourceDocument[] = [];
        for await (const item of documentsOf(handle, limits, expected.documentCount)) {
          if (!('document' in item)) continue;
          batch.push(item.document);
          if (batch.length >= size) {
            yield batch;
            batch = [];
          }
        }
        if (batch.length) yield batch;
      },
      close: () => handle.close(),
    };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

async function hashOf(handle: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of handle.createReadStream({ start: 0, autoClose: false })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

type Item = { header: ExportHeader } | { document: SourceDocument };

/** The header, then every document of the file, each validated; any flaw is a BadExportError. */
async function* documentsOf(handle: FileHandle, limits: ReadLimits, most: number): AsyncIterable<Item> {
  const stream = handle.createReadStream({ start: 0, autoClose: false }).pipe(createGunzip());
  let head: ExportHeader | undefined;
  let count = 0;
  const seen = new Set<string>();
  try {
    for await (const [n, text] of linesOf(stream, limits.maxLineBytes)) {
      limits.signal?.throwIfAborted();
      if (!head) {
        head = parsed(header, text, 'the header (line 1)', limits);
        yield { header: head };
        continue;
      }
      const document = parsed(line, text, `line ${n}`, limits);
      const key = createHash('sha256').update(document.source).update('\0').update(document.externalId);
      const digest = key.digest('base64').slice(0, 22);
      if (seen.has(digest))
        throw new BadExportError(`line ${n} repeats an earlier document (same source and externalId)`);
      seen.add(digest);
      count += 1;
      if (count > most) throw new BadExportError(`the file holds more than the ${most} documents exported`);
      yield { document };
    }
  } catch (error) {
    if (error instanceof BadExportError || limits.signal?.aborted) throw error;
    throw new BadExportError('the file is not a valid gzipped opsgraph export');
  } finally {
    stream.destroy();
  }
  if (!head) throw new BadExportError('the file is empty');
}

/** Splits a byte stream into UTF-8 lines of at most `max` bytes, numbered from 1. */
async function* linesOf(stream: AsyncIterable<Buffer>, max: number): AsyncIterable<[number, string]> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const tooLong = (n: number) => new BadExportError(`line ${n} is longer than ${max} bytes`);
  let parts: Buffer[] = [];
  let length = 0;
  let n = 0;
  for await (const chunk of stream) {
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(10, start);
      const piece = chunk.subarray(start, end === -1 ? chunk.length : end);
      length += piece.length;
      if (length > max) throw tooLong(n + 1);
      parts.push(piece);
      if (end === -1) break;
      n += 1;
      yield [n, decoder.decode(Buffer.concat(parts, length))];
      parts = [];
      length = 0;
      start = end + 1;
    }
  }
  if (length > 0) yield [n + 1, decoder.decode(Buffer.concat(parts, length))];
}

function parsed<T>(schema: z.ZodType<T>, text: string, where: string, limits: ReadLimits): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadExportError(`${where} is not JSON`);
  }
  const flaw = flawOf(value, limits.maxJsonDepth);
  if (flaw) throw new BadExportError(`${where}: ${flaw}`);
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const at = issue?.path.map((p) => String(p).slice(0, 40)).join('.');
  throw new BadExportError(`${where} is not valid: ${at ? `${at}: ` : ''}${issue?.message.slice(0, 120)}`);
}

const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * What PostgreSQL or the validator would choke on, checked without recursion: nesting deeper than
 * `maxDepth`, NUL characters and lone surrogates (in values or keys).
 */
function flawOf(value: unknown, maxDepth: number): string | undefined {
  const stack: [unknown, number][] = [[value, 0]];
  for (let next = stack.pop(); next; next = stack.pop()) {
    const [item, depth] = next;
    if (typeof item === 'string') {
      if (item.includes('\0')) return 'contains a NUL character';
      if (LONE_SURROGATE.test(item)) return 'contains a lone surrogate';
    } else if (item !== null && typeof item === 'object') {
      if (depth >= maxDepth) return `is nested deeper than ${maxDepth} levels`;
      for (const [key, child] of Object.entries(item)) {
        stack.push([key, depth], [child, depth + 1]);
      }
    }
  }
  return undefined;
}
