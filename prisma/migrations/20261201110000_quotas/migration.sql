-- Quotas and fair share (issue 9): a user's unfinished operations that count (a batch's items, not
-- the batch itself) are counted under the user's quota lock at every start, through this index.
-- Prisma's schema language cannot express a partial index; schema.prisma names it in a comment.
CREATE INDEX "Operation_owner_unfinished_idx" ON "Operation" ("ownerId")
  WHERE status IN ('PENDING', 'PROCESSING') AND type <> 'batch';
