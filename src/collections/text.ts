import { createHash } from 'node:crypto';

/** One document as a source yields it, before it is stored. */
export interface SourceDocument {
  source: string;
  externalId: string;
  title: string;
  content: string;
  metadata: Record<string, unknown>;
}

/** sha256 of what makes a document different: title, content and metadata. */
export function contentHash(doc: Pick<SourceDocument, 'title' | 'content' | 'metadata'>): string {
  return createHash('sha256')
    .update(doc.title)
    .update('\0')
    .update(doc.content)
    .update('\0')
    .update(JSON.stringify(doc.metadata))
    .digest('hex');
}

/**
 * Splits text into chunks of about `size` characters, at a paragraph break, line break or space
 * near the end of each chunk when there is one. Empty text gives one empty chunk, so every document
 * has at least one (its title is indexed with its first chunk).
 */
export function chunkText(text: string, size: number): string[] {
  const chunks: string[] = [];
  let start = 0;
  while (text.length - start > size) {
    const window = text.slice(start, start + size);
    const floor = Math.floor(size * 0.5);
    let cut = window.lastIndexOf('\n\n');
    if (cut < floor) cut = window.lastIndexOf('\n');
    if (cut < floor) cut = window.lastIndexOf(' ');
    if (cut < floor) cut = size;
    chunks.push(text.slice(start, start + cut).trim());
    start += cut;
  }
  chunks.push(text.slice(start).trim());
  return chunks.filter((chunk, i) => chunk.length > 0 || i === 0);
}

/** A title for a file: its first Markdown heading, else its file name. */
export function titleOf(content: string, fileName: string): string {
  const heading = /^#{1,6}\s+(.+?)\s*#*\s*$/m.exec(content);
  return (heading?.[1] ?? fileName).slice(0, 500);
}
