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
 * (`$1::text[]`). Built while the batch before is in the database, so the transaction sends it as
 * it is instead of encoding every element on its way.
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

/** The chunks of a batch, as array literals with one element per chunk. */
export interface EncodedChunks {
  /** How many chunks. */
  count: number;
  /** Position (1-based) in the batch of the document each chunk belongs to. */
  positions: string;
  ordinals: string;
  contents: string;
  /** The document's title with its first chunk (indexed with the highest weight), else ''. */
  titles: string;
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
    positions: arrayLiteral(positions),
    ordinals: arrayLiteral(ordinals),
    contents: arrayLiteral(contents),
    titles: arrayLiteral(titles),
  };
}

/** A batch of source documents hashed, chunked and encoded, ready for `writeBatch`. */
export interface PreparedBatch {
  /** How many documents. */
  length: number;
  /** The documents' keys and content hashes, in batch order. */
  keys: { source: string; externalId: string; hash: string }[];
  /** The documents' columns as array literals, one element per document. */
  documents: {
    sources: string;
    externalIds: string;
    titles: string;
    contents: string;
    hashes: string;
    metadata: string;
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
  const documents = {
    sources: arrayLiteral(keys.map((key) => key.source)),
    externalIds: arrayLiteral(keys.map((key) => key.externalId)),
    titles: arrayLiteral(docs.map((doc) => doc.title)),
    contents: arrayLiteral(docs.map((doc) => doc.content)),
    hashes: arrayLiteral(keys.map((key) => key.hash)),
    metadata: arrayLiteral(docs.map((doc) => JSON.stringify(doc.metadata))),
  };
  await turn();
  return { length: docs.length, keys, documents, chunks: await encodeChunks(docs, chunkSize) };
}
