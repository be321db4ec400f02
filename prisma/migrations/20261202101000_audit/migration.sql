-- Audit log (issue 10, point 2): an append-only record of who did what, written in the transaction
-- of the action (src/audit/record.ts). Refusals (ACCESS_DENIED, QUOTA_EXCEEDED) are bounded per
-- user: at most OPSGRAPH_AUDIT_DENIALS_PER_MINUTE rows per user, action and minute; further ones
-- in that minute only raise the last row's "count" and "lastAt", the one change the trigger allows.
CREATE TYPE "AuditAction" AS ENUM (
  'OPERATION_STARTED', 'OPERATION_CANCELLED', 'OPERATION_RETRIED', 'OPERATION_DELETED',
  'BATCH_STARTED', 'BATCH_CANCELLED', 'CREDITS_GRANTED', 'QUOTA_EXCEEDED', 'ACCESS_DENIED',
  'SCHEDULE_CREATED', 'SCHEDULE_DELETED'
);

CREATE TABLE "AuditEvent" (
  id             BIGSERIAL PRIMARY KEY,
  -- No foreign keys: audit rows outlive users, operations and collections.
  "actorId"      UUID NOT NULL,
  action         "AuditAction" NOT NULL,
  "operationId"  UUID,
  "collectionId" UUID,
  "targetUserId" UUID,
  data           JSONB,
  -- Refusals: how many this row stands for (1, or more once the per-minute bound is reached).
  count          INTEGER NOT NULL DEFAULT 1,
  "createdAt"    TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
  "lastAt"       TIMESTAMPTZ(3) NOT NULL DEFAULT now()
);
-- A user's own events (newest first), and the per-minute bound on refusals.
CREATE INDEX "AuditEvent_actor_idx" ON "AuditEvent" ("actorId", id DESC);
CREATE INDEX "AuditEvent_actor_action_time_idx" ON "AuditEvent" ("actorId", action, "createdAt");
CREATE INDEX "AuditEvent_operation_idx" ON "AuditEvent" ("operationId") WHERE "operationId" IS NOT NULL;
CREATE INDEX "AuditEvent_collection_idx" ON "AuditEvent" ("collectionId") WHERE "collectionId" IS NOT NULL;
CREATE INDEX "AuditEvent_time_idx" ON "AuditEvent" ("createdAt");

CREATE FUNCTION "AuditEvent_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'AuditEvent is append-only';
  END IF;
  IF (NEW.id, NEW."actorId", NEW.action, NEW."operationId", NEW."collectionId", NEW."targetUserId", NEW.data, NEW."createdAt")
     IS DISTINCT FROM
     (OLD.id, OLD."actorId", OLD.action, OLD."operationId", OLD."collectionId", OLD."targetUserId", OLD.data, OLD."createdAt")
     OR NEW.count < OLD.count THEN
    RAISE EXCEPTION 'AuditEvent is append-only (only count and lastAt of a refusal may grow)';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER "AuditEvent_append_only" BEFORE UPDATE OR DELETE ON "AuditEvent"
  FOR EACH ROW EXECUTE FUNCTION "AuditEvent_append_only"();
