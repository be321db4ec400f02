import type { Db } from '../db/prisma.ts';
import type { Document } from '../generated/prisma/client.ts';

export interface SearchHit {
  document: Document;
  /** ts_rank_cd of the document's best chunk; higher is better. */
  score: number;
  /** The best chunk's matching passages, terms wrapped in <mark>…</mark>. */
  snippet: string;
}

/**
 * Full-text search over the collection's active generation, with web-style syntax
 * (`websearch_to_tsquery`: "quoted phrases", or, -excluded). One hit per document (its best
 * chunk), best first. One statement, so a reindex's switch is seen entirely or not at all.
 */
export async function searchCollection(db: Db, collectionId: string, query: string, first: number) {
  return db.$queryRawUnsafe<(Document & { score: number; snippet: string })[]>(
    `WITH c AS (
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
      ORDER BY top.score DESC, d.id`,
    collectionId,
    query,
    first,
  );
}

export const toHit = ({
  score,
  snippet,
  ...document
}: Document & { score: number; snippet: string }): SearchHit => ({
  document,
  score,
  snippet,
});
