-- The cost of an operationsUpdated resume (src/operations/live-replay.ts, the same statement with
-- its parameters filled in): 100 users, 100,000 operations, 404,000 events written in 500
-- transactions; one user's replay from a cursor 4,000 events old, then from one older than all.
--
--   createdb liveops_bench && DATABASE_URL=postgresql://…/liveops_bench npm run db:migrate
--   psql postgresql://…/liveops_bench -f bench/live-replay.sql | grep -E 'Execution Time|xid_idx'
--
-- Keep the statement below in step with live-replay.ts when that changes.
\set QUIET on
INSERT INTO "User" (name) SELECT 'u' || g FROM generate_series(1, 100) g;
CREATE OR REPLACE PROCEDURE pg_temp.fill(batches int, per int) LANGUAGE plpgsql AS $$
DECLARE b int;
BEGIN
  FOR b IN 1..batches LOOP
    WITH ops AS (
      INSERT INTO "Operation" (type, input, "ownerId", status, sequence)
      SELECT 'diagnostics.echo', '{}', (SELECT id FROM "User" ORDER BY name OFFSET (g % 100) LIMIT 1), 'COMPLETED', 4
        FROM generate_series(1, per) g RETURNING id)
    INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent")
    SELECT id, s, 'X', 'COMPLETED', 0 FROM ops, generate_series(1, 4) s;
    COMMIT;
  END LOOP;
END $$;
SELECT pg_current_snapshot()::text AS oldest \gset
CALL pg_temp.fill(400, 250);
SELECT pg_current_snapshot()::text AS recent \gset
CALL pg_temp.fill(100, 10);
ANALYZE;
SELECT id AS usr FROM "User" WHERE name = 'u1' \gset
\set snap :recent
\echo 'from a cursor 4,000 events old'
EXPLAIN (ANALYZE, BUFFERS) SELECT pg_current_snapshot()::text AS snapshot,
            COALESCE((SELECT json_agg(row_to_json(picked) ORDER BY picked.id) FROM (
              SELECT o.* FROM "Operation" o
                LEFT JOIN "Collection" c ON c.id = o."collectionId"
               WHERE o.id IN (
                       SELECT e."operationId" FROM "OperationEvent" e
                        WHERE e.xid >= pg_snapshot_xmin((:'snap')::pg_snapshot)
                          AND NOT pg_visible_in_snapshot(e.xid, (:'snap')::pg_snapshot)
                          AND NOT EXISTS (
                                SELECT 1 FROM unnest('{}'::text[]::text[], '{}'::uuid[]::uuid[]) AS l(s, k)
                                 WHERE e."operationId" <= l.k AND pg_visible_in_snapshot(e.xid, l.s::pg_snapshot)))
                 AND (false::boolean OR o."ownerId" = (:'usr')::uuid OR c."ownerId" = (:'usr')::uuid OR c."isPublic")
                 AND ((:'usr')::uuid IS NULL OR o."ownerId" = (:'usr')::uuid)
                 AND (cardinality('{}'::text[]::text[]) = 0 OR o.status::text = ANY('{}'::text[]::text[]))
                 AND (NULL::text IS NULL OR o.type = NULL::text)
                 AND (NULL::uuid IS NULL OR o."collectionId" = NULL::uuid)
                 AND (NULL::uuid IS NULL OR o."batchId" = NULL::uuid)
                 AND (NULL::timestamptz IS NULL OR o."createdAt" >= NULL::timestamptz)
                 AND (NULL::timestamptz IS NULL OR o."createdAt" < NULL::timestamptz)
               ORDER BY o.id
               LIMIT 1001
            ) picked), '[]'::json) AS operations;
\set snap :oldest
\echo 'from a cursor older than all 404,000 events'
EXPLAIN (ANALYZE, BUFFERS) SELECT pg_current_snapshot()::text AS snapshot,
            COALESCE((SELECT json_agg(row_to_json(picked) ORDER BY picked.id) FROM (
              SELECT o.* FROM "Operation" o
                LEFT JOIN "Collection" c ON c.id = o."collectionId"
               WHERE o.id IN (
                       SELECT e."operationId" FROM "OperationEvent" e
                        WHERE e.xid >= pg_snapshot_xmin((:'snap')::pg_snapshot)
                          AND NOT pg_visible_in_snapshot(e.xid, (:'snap')::pg_snapshot)
                          AND NOT EXISTS (
                                SELECT 1 FROM unnest('{}'::text[]::text[], '{}'::uuid[]::uuid[]) AS l(s, k)
                                 WHERE e."operationId" <= l.k AND pg_visible_in_snapshot(e.xid, l.s::pg_snapshot)))
                 AND (false::boolean OR o."ownerId" = (:'usr')::uuid OR c."ownerId" = (:'usr')::uuid OR c."isPublic")
                 AND ((:'usr')::uuid IS NULL OR o."ownerId" = (:'usr')::uuid)
                 AND (cardinality('{}'::text[]::text[]) = 0 OR o.status::text = ANY('{}'::text[]::text[]))
                 AND (NULL::text IS NULL OR o.type = NULL::text)
                 AND (NULL::uuid IS NULL OR o."collectionId" = NULL::uuid)
                 AND (NULL::uuid IS NULL OR o."batchId" = NULL::uuid)
                 AND (NULL::timestamptz IS NULL OR o."createdAt" >= NULL::timestamptz)
                 AND (NULL::timestamptz IS NULL OR o."createdAt" < NULL::timestamptz)
               ORDER BY o.id
               LIMIT 1001
            ) picked), '[]'::json) AS operations;
