import type { Resources } from '../resources.ts';
import { type Check, fixEach } from './finding.ts';
import { scanPages } from './scan.ts';

interface CountDrift {
  id: string;
  name: string;
  documentCount: number;
  documents: number;
  chunkCount: number;
  chunks: number;
}

/**
 * One keyset page of collections (by id) and those among them that no operation is writing to,
 * unchanged for `minAgeSeconds`, whose documentCount / chunkCount (active generation) differ from
 * their rows (counted on the Document (collectionId, id) and Chunk (collectionId, generation) indexes).
 */
async function countPage(r: Resources, after: string | null, size: number, minAgeSeconds: number) {
  const [row] = await r.db.$queryRawUnsafe<{ end: string | null; found: CountDrift[] }[]>(
    `WITH page AS (
       SELECT id, name, "documentCount", "chunkCount", "activeGeneration", "busyOperationId", "updatedAt"
         FROM "Collection" WHERE $1::uuid IS NULL OR id > $1::uuid ORDER BY id LIMIT $2
     )
     SELECT (SELECT max(id::text) FROM page) AS "end",
            COALESCE((SELECT json_agg(d) FROM (
              SELECT p.id, p.name, p."documentCount", d.n AS documents, p."chunkCount", c.n AS chunks
                FROM page p
                CROSS JOIN LATERAL (SELECT count(*)::int AS n FROM "Document" WHERE "collectionId" = p.id) d
                CROSS JOIN LATERAL (SELECT count(*)::int AS n FROM "Chunk"
                                     WHERE "collectionId" = p.id AND generation = p."activeGeneration") c
               WHERE p."busyOperationId" IS NULL AND p."updatedAt" < now() - make_interval(secs => $3)
                 AND (p."documentCount" <> d.n OR p."chunkCount" <> c.n)
            ) d), '[]'::json) AS found`,
    after,
    size,
    minAgeSeconds,
  );
  return { end: row?.end ?? null, found: row?.found ?? [] };
}

/**
 * Recounts a collection's documents and chunks in one statement, only while no operation holds it
 * (a writer marks it BUSY first, so the recount and a write never interleave); an EMPTY or READY
 * status follows the new count.
 */
async function recount(r: Resources, drift: CountDrift): Promise<string> {
  const rows = await r.db.$queryRawUnsafe<{ documentCount: number; chunkCount: number }[]>(
    `UPDATE "Collection" c
        SET "documentCount" = n.documents, "chunkCount" = n.chunks, "updatedAt" = now(),
            status = (CASE WHEN c.status NOT IN ('EMPTY', 'READY') THEN c.status::text
                           WHEN n.documents = 0 THEN 'EMPTY' ELSE 'READY' END)::"CollectionStatus"
       FROM (SELECT (SELECT count(*)::int FROM "Document" WHERE "collectionId" = $1::uuid) AS documents,
                    (SELECT count(*)::int FROM "Chunk" k JOIN "Collection" x ON x.id = k."collectionId"
                      WHERE k."collectionId" = $1::uuid AND k.generation = x."activeGeneration") AS chunks) n
      WHERE c.id = $1::uuid AND c."busyOperationId" IS NULL
      RETURNING c."documentCount", c."chunkCount"`,
    drift.id,
  );
  const done = rows[0];
  return done
    ? `recounted: ${done.documentCount} documents, ${done.chunkCount} chunks`
    : 'an operation is writing to it now; left alone';
}

/** Collections whose document or chunk count disagrees with their rows: `--fix` recounts them. */
export const collectionCounts: Check = {
  kind: 'collection-counts',
  description: 'collections whose documentCount / chunkCount disagree with their rows (--fix recounts)',
  async run(r, options) {
    const drifts = await scanPages<string, CountDrift>(
      (after, size) => countPage(r, after, size, options.minAgeSeconds),
      options,
    );
    const finding = (d: CountDrift) => ({
      kind: 'collection-counts',
      subject: `Collection ${d.id}`,
      problem: `${JSON.stringify(d.name)}: documentCount ${d.documentCount} (rows ${d.documents}), chunkCount ${d.chunkCount} (rows ${d.chunks})`,
      action: `set documentCount ${d.documents}, chunkCount ${d.chunks}`,
      fixable: true,
    });
    if (!options.fix) return drifts.map(finding);
    return fixEach(drifts, finding, (d) => recount(r, d));
  },
};
