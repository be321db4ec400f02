-- Retry, scheduling and retention (issue 10, points 3–5).
--
-- Links between operations and to schedules are ON DELETE SET NULL: removing an expired operation
-- (retention) or a schedule never removes the operations that name it. Rows of other tables that
-- name an operation (credit ledger, audit log) must not cascade from "Operation" either.

CREATE TABLE "Schedule" (
  id          uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
  "ownerId"   uuid         NOT NULL REFERENCES "User"(id) ON DELETE CASCADE,
  name        text         NOT NULL,
  cron        text         NOT NULL,
  timezone    text         NOT NULL,
  type        text         NOT NULL,
  input       jsonb        NOT NULL,
  "createdAt" timestamptz(3) NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX "Schedule_ownerId_name_key" ON "Schedule" ("ownerId", name);
CREATE INDEX "Schedule_createdAt_id_idx" ON "Schedule" ("createdAt" DESC, id DESC);

ALTER TABLE "Operation"
  ADD COLUMN "retryOfId"    uuid REFERENCES "Operation"(id) ON DELETE SET NULL,
  ADD COLUMN "scheduleId"   uuid REFERENCES "Schedule"(id) ON DELETE SET NULL,
  ADD COLUMN "scheduledFor" timestamptz(3);
CREATE INDEX "Operation_retryOfId_idx" ON "Operation" ("retryOfId");
CREATE INDEX "Operation_scheduleId_createdAt_idx" ON "Operation" ("scheduleId", "createdAt");

-- Retention: the maintenance job finds expired terminal operations of one type, oldest first, in
-- batches, through this partial index.
CREATE INDEX "Operation_terminal_completedAt_idx" ON "Operation" (type, "completedAt")
  WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED');
