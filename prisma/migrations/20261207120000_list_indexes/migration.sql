-- Lists at scale (issue 13.4): the `operations` list reads pages from ordered index ranges and
-- checks its filters on index entries (src/operations/list.ts). The owner and time indexes carry
-- the filtered columns; the collection index becomes ordered by time as well.
DROP INDEX "Operation_ownerId_createdAt_id_idx";
CREATE INDEX "Operation_ownerId_createdAt_id_idx" ON "Operation" ("ownerId", "createdAt" DESC, id DESC)
  INCLUDE (status, type, "collectionId", "batchId");

DROP INDEX "Operation_createdAt_id_idx";
CREATE INDEX "Operation_createdAt_id_idx" ON "Operation" ("createdAt" DESC, id DESC)
  INCLUDE (status, type, "collectionId", "batchId", "ownerId");

DROP INDEX "Operation_collectionId_idx";
CREATE INDEX "Operation_collectionId_createdAt_id_idx" ON "Operation" ("collectionId", "createdAt" DESC, id DESC)
  INCLUDE (status, type, "batchId", "ownerId");

-- The collections anyone may see, for the list's per-collection ranges.
CREATE INDEX "Collection_public_idx" ON "Collection" (id) WHERE "isPublic";
