import { setImmediate as turn } from 'node:timers/promises';
import { chunkText, contentHash, type SourceDocument } from './text.ts';

/**
 * Documents hashed or chunked between two turns of the event loop: a batch is prepared while the
 * batch before is in the database, and that transaction's next statement waits for no more than
 * this much work (a whole batch at once would hold it up by tens of milliseconds).
 */
const DOCUMENTS_PER_TURN = 10;

/**
 * A PostgreSQL array literal (`{"a","b",NULL,3}`), passed as one text parameter and cast in SQL
 * (`$1::text[]`): for the small arrays of a batch (ids, positions); its contents go as `binaryArray`.
 */
export function arrayLiteral(values: readonly (string | number | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i];
    if (i > 0) out += ',';
    if (value === null || value === undefined) out += 'NULL';
    else if (typeof value === 'number') out += String(value);
    else out += `"${value.replace(/[\\"]/g, '\\$&')}"`;
  }
  return `${out}}`;
}

const ELEMENT_TYPES = { text: 25, int4: 23 } as const;
type ElementType = keyof typeof ELEMENT_TYPES;

/**
 * A one-dimensional PostgreSQL array in the binary format (`array_send`'s), for a parameter cast
 * to that array type in SQL (`$1::text[]`, `$2::int[]`): node-postgres sends a Buffer parameter in
 * binary, and PostgreSQL then takes each element as it is instead of parsing an array literal
 * (for the megabytes of a batch's contents, `array_in` cost ~9 % of the database's work of the
 * batch). Built while the batch before is in the database.
 */
export function binaryArray(type: ElementType, values: readonly (string | number | null)[]): Buffer {
  const lengths = values.map((value) =>
    value === null ? -1 : type === 'int4' ? 4 : Buffer.byteLength(value as string),
  );
  let size = values.length === 0 ? 12 : 20;
  for (const length of lengths) size += 4 + Math.max(length, 0);
  const out = Buffer.allocUnsafe(size);
  let at = out.writeInt32BE(values.length === 0 ? 0 : 1, 0); // dimensions
  at = out.writeInt32BE(lengths.includes(-1) ? 1 : 0, at); // has nulls
  at = out.writeUInt32BE(ELEMENT_TYPES[type], at);
  if (values.length > 0) {
    at = out.writeInt32BE(values.length, at);
    at = out.writeInt32BE(1, at); // lower bound
  }
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i]!;
    at = out.writeInt32BE(lengths[i]!, at);
    if (value === null) continue;
    if (type === 'int4') at = out.writeInt32BE(value as number, at);
    else at += out.write(value as string, at, 'utf8');
  }
  return out;
}

/** A `binaryArray` as an array literal, for a connection that cannot send binary parameters. */
export function binaryToLiteral(binary: Buffer): string {
  const values: (string | number | null)[] = [];
  const dimensions = binary.readInt32BE(0);
  const type = binary.readUInt32BE(8);
  let at = 12;
  const count = dimensions === 0 ? 0 : binary.readInt32BE(at);
  if (dimensions > 0) at += 8;
  for (let i = 0; i < count; i += 1) {
    const length = binary.readInt32BE(at);
    at += 4;
    if (length < 0) values.push(null);
    else if (type === ELEMENT_TYPES.int4) values.push(binary.readInt32BE(at));
    else values.push(binary.toString('utf8', at, at + length));
    at += Math.max(length, 0);
  }
  return arrayLiteral(values);
}

/** The chunks of a batch, as binary arrays (`binaryArray`) with one element per chunk. */
export interface EncodedChunks {
  /** How many chunks. */
  count: number;
  /** Position (1-based) in the batch of the document each chunk belongs to. */
  positions: Buffer;
  ordinals: Buffer;
  contents: Buffer;
  /** The document's title with its first chunk (indexed with the highest weight), else ''. */
  titles: Buffer;
}

/** Splits documents into chunks of about `chunkSize` characters, encoded for `insertChunks`. */
export async function encodeChunks(
  docs: readonly { title: string; content: string }[],
  chunkSize: number,
): Promise<EncodedChunks> {
  const positions: number[] = [];
  const ordinals: number[] = [];
  const contents: string[] = [];
  const titles: string[] = [];
  for (let i = 0; i < docs.length; i += 1) {
    if (i > 0 && i % DOCUMENTS_PER_TURN === 0) await turn();
    const doc = docs[i]!;
    chunkText(doc.content, chunkSize).forEach((content, ordinal) => {
      positions.push(i + 1);
      ordinals.push(ordinal);
      contents.push(content);
      titles.push(ordinal === 0 ? doc.title : '');
    });
  }
  await turn();
  return {
    count: contents.length,
    positions: binaryArray('int4', positions),
    ordinals: binaryArray('int4', ordinals),
    contents: binaryArray('text', contents),
    titles: binaryArray('text', titles),
  };
}

/** A batch of source documents hashed, chunked and encoded, ready for `writeBatch`. */
export interface PreparedBatch {
  /** How many documents. */
  length: number;
  /** The documents' keys and content hashes, in batch order. */
  keys: { source: string; externalId: string; hash: string }[];
  /** The documents' columns as binary arrays (`binaryArray`), one element per document. */
  documents: {
    sources: Buffer;
    externalIds: Buffer;
    titles: Buffer;
    contents: Buffer;
    hashes: Buffer;
    metadata: Buffer;
  };
  chunks: EncodedChunks;
}

/** Does a batch's Node work (hashing, chunking, encoding) before its transaction, a little at a time. */
export async function prepareBatch(
  docs: readonly SourceDocument[],
  chunkSize: number,
): Promise<PreparedBatch> {
  const keys: PreparedBatch['keys'] = [];
  for (let i = 0; i < docs.length; i += 1) {
    if (i > 0 && i % DOCUMENTS_PER_TURN === 0) await turn();
    const doc = docs[i]!;
    keys.push({ source: doc.source, externalId: doc.externalId, hash: contentHash(doc) });
  }
  await turn();
  const text = (values: string[]) => binaryArray('text', values);
  const documents = {
    sources: text(keys.map((key) => key.source)),
    externalIds: text(keys.map((key) => key.externalId)),
    titles: text(docs.map((doc) => doc.title)),
    contents: text(docs.map((doc) => doc.content)),
    hashes: text(keys.map((key) => key.hash)),
    metadata: text(docs.map((doc) => JSON.stringify(doc.metadata))),
  };
  await turn();
  return { length: docs.length, keys, documents, chunks: await encodeChunks(docs, chunkSize) };
}
