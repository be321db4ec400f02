import type { Db } from '../db/prisma.ts';
import { isStatementTimeout } from '../db/timeout.ts';
import type { Document } from '../generated/prisma/client.ts';

export interface SearchHit {
  document: Document;
  /** ts_rank_cd of the document's best chunk; higher is better. */
  score: number;
  /** The best chunk's matching passages, terms wrapped in <mark>…</mark>. */
  snippet: string;
}

/** What bounds the cost of one search (OPSGRAPH_SEARCH_*). */
export interface SearchLimits {
  /** Most characters in the query. */
  maxQueryLength: number;
  /** Most words, quoted ones included. */
  maxTerms: number;
  /** Most "quoted phrases". */
  maxPhrases: number;
  /** The search's own statement timeout, in ms. */
  timeoutMs: number;
}

/** A query over one of the search limits: refused before it reaches the database. */
export class SearchTooComplexError extends Error {
  override name = 'SearchTooComplexError';
  constructor(
    /** What was counted: `terms` or `phrases`. */
    readonly measure: 'terms' | 'phrases',
    readonly limit: number,
    readonly measured: number,
  ) {
    super(`the query has ${measured} ${measure}; at most ${limit} are allowed`);
  }
}

/** A search stopped by its statement timeout. */
export class SearchTimeoutError extends Error {
  override name = 'SearchTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`the search took longer than ${timeoutMs} ms and was stopped; use fewer or more specific terms`);
  }
}

/**
 * Counts a query the way `websearch_to_tsquery` reads it: words (letters and digits, inside quotes
 * or not) and quoted phrases (a quote left open runs to the end).
 */
export function measureQuery(query: string): { terms: number; phrases: number } {
  const terms = query.match(/[\p{L}\p{N}]+/gu)?.length ?? 0;
  const quotes = query.split('"').length - 1;
  const phrases = Math.ceil(quotes / 2);
  return { terms, phrases };
}

/** The limit `query` exceeds, or undefined. Length is checked by the caller (a ValidationError). */
export function tooComplex(query: string, limits: SearchLimits): SearchTooComplexError | undefined {
  const { terms, phrases } = measureQuery(query);
  if (phrases > limits.maxPhrases) return new SearchTooComplexError('phrases', limits.maxPhrases, phrases);
  if (terms > limits.maxTerms) return new SearchTooComplexError('terms', limits.maxTerms, terms);
  return undefined;
}

type Row = Document & { score: number; snippet: string };

/**
 * Full-text search over the collection's active generation, with web-style syntax
 * (`websearch_to_tsquery`: "quoted phrases", or, -excluded). One hit per document (its best
 * chunk), best first. One statement, so a reindex's switch is seen entirely or not at all; it runs
 * in its own transaction under `SET LOCAL statement_timeout`, so one costly search cannot hold a
 * connection of the API's pool for longer than `timeoutMs` (then: SearchTimeoutError).
 */
export async function searchCollection(
  db: Db,
  collectionId: string,
  query: string,
  first: number,
  timeoutMs: number,
): Promise<Row[]> {
  try {
    return await db.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe(`SET LOCAL statement_timeout = ${Math.max(1, Math.trunc(timeoutMs))}`);
        return tx.$queryRawUnsafe<Row[]>(SEARCH_SQL, collectionId, query, first);
      },
      { timeout: timeoutMs + 5000 },
    );
  } catch (error) {
    if (isStatementTimeout(error)) throw new SearchTimeoutError(timeoutMs);
    throw error;
  }
}

const SEARCH_SQL = `WITH c AS (
   SELECT id, language::regconfig AS cfg, "activeGeneration" AS gen,
          websearch_to_tsquery(language::regconfig, $2) AS q
     FROM "Collection" WHERE id = $1::uuid
 ), best AS (
   SELECT DISTINCT ON (ch."documentId") ch."documentId", ch.content, ts_rank_cd(ch.tsv, c.q) AS score, c.q, c.cfg
     FROM c JOIN "Chunk" ch ON ch."collectionId" = c.id AND ch.generation = c.gen AND ch.tsv @@ c.q
    ORDER BY ch."documentId", score DESC
 ), top AS (
   SELECT * FROM best ORDER BY score DESC, "documentId" LIMIT $3
 )
 SELECT d.*, top.score::float8 AS score,
        ts_headline(top.cfg, top.content, top.q, 'StartSel=<mark>, StopSel=</mark>, MaxWords=35, MinWords=15, MaxFragments=2') AS snippet
   FROM top JOIN "Document" d ON d.id = top."documentId"
  ORDER BY top.score DESC, d.id`;

export const toHit = ({ score, snippet, ...document }: Row): SearchHit => ({
  document,
  score,
  snippet,
});
