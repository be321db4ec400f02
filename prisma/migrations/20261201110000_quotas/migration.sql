-- Quotas and fair share (issue 9). At every start, under the user's quota lock, opsgraph counts the
-- user's unfinished operations that count (a batch's items, not the batch itself) and finds their
-- starts of the last minute: each through its own partial index, so neither count reads other
-- users' rows. Prisma's schema language cannot express partial indexes; schema.prisma names them.
CREATE INDEX "Operation_owner_unfinished_idx" ON "Operation" ("ownerId")
  WHERE status IN ('PENDING', 'PROCESSING') AND type <> 'batch';
CREATE INDEX "Operation_owner_starts_idx" ON "Operation" ("ownerId", "createdAt")
  WHERE type <> 'batch';
