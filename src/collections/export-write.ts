import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { ExportHeader } from './export-file.ts';
import type { SourceDocument } from './text.ts';

/** Writing an export file (the format is in export-file.ts; who owns it, in exports.ts). */

/** A complete export written beside its target, not yet in place. */
export interface Partial {
  partial: string;
  size: number;
  sha256: string;
}

/** Writes an export to a hidden temporary file in `dir` (never a name a client can ask for). */
export async function writePartial(
  dir: string,
  file: string,
  head: ExportHeader,
  documents: AsyncIterable<SourceDocument[]>,
): Promise<Partial> {
  await mkdir(dir, { recursive: true });
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
    await writeFile(`${partial}.sha256`, `${sha256}  ${file}\n`, { flag: 'wx' });
    return { partial, size, sha256 };
  } catch (error) {
    await discardPartial(partial);
    throw error;
  }
}

/** Renames a partial export (and its checksum file) into place; nothing follows a planted link. */
export async function placePartial(written: Partial, target: string): Promise<void> {
  await rename(`${written.partial}.sha256`, `${target}.sha256`);
  await rename(written.partial, target);
}

export async function discardPartial(partial: string): Promise<void> {
  await removeFile(partial);
  await removeFile(`${partial}.sha256`);
}

/** Removes a file; one that cannot exist (missing, or a path through a non-folder) is no error. */
export async function removeFile(path: string): Promise<void> {
  await rm(path, { force: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOTDIR') throw error;
  });
}
