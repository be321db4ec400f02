-- Credits ledger (issue 10, point 1). Amounts are whole credits in BIGINT: exact, never floats.
-- A user's account holds what is available (balance) and what is held by unfinished operations
-- (reserved); every movement is one row of "CreditLedger". Starting an operation reserves its
-- "creditCost"; the transition to COMPLETED consumes it, to FAILED or CANCELLED refunds it, in the
-- same statement as the transition (src/operations/transitions.ts).
CREATE TYPE "CreditKind" AS ENUM ('GRANT', 'RESERVE', 'CONSUME', 'REFUND');

-- What starting the operation reserved (its type's cost); consumed or refunded when it ends.
ALTER TABLE "Operation" ADD COLUMN "creditCost" INTEGER NOT NULL DEFAULT 0;

CREATE TABLE "CreditAccount" (
  "userId"    UUID PRIMARY KEY REFERENCES "User"(id) ON DELETE CASCADE,
  balance     BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
  reserved    BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
  -- Every figure stays an exact JavaScript number (GraphQL SafeInt).
  CONSTRAINT "CreditAccount_safe" CHECK (balance + reserved <= 9007199254740991)
);

CREATE TABLE "CreditLedger" (
  id             BIGSERIAL PRIMARY KEY,
  "userId"       UUID NOT NULL REFERENCES "User"(id) ON DELETE CASCADE,
  -- No foreign key: ledger rows outlive the operations they concern (retention).
  "operationId"  UUID,
  kind           "CreditKind" NOT NULL,
  amount         BIGINT NOT NULL CHECK (amount >= 0),
  "balanceAfter" BIGINT NOT NULL,
  -- For a GRANT: why, and the admin who granted it (null: the initial grant).
  reason         TEXT,
  "actorId"      UUID,
  "createdAt"    TIMESTAMPTZ(3) NOT NULL DEFAULT now()
);
CREATE INDEX "CreditLedger_userId_id_idx" ON "CreditLedger" ("userId", id DESC);
-- The database itself refuses a second reservation or a second settlement of one operation.
CREATE UNIQUE INDEX "CreditLedger_reserve_once" ON "CreditLedger" ("operationId") WHERE kind = 'RESERVE';
CREATE UNIQUE INDEX "CreditLedger_settle_once" ON "CreditLedger" ("operationId")
  WHERE kind IN ('CONSUME', 'REFUND');

-- Existing users get the default initial grant (1,000,000; OPSGRAPH_DEFAULT_CREDITS applies to
-- users created from now on), and existing operations a zero reservation (and a zero settlement
-- when they have ended), so the invariant holds from the start.
INSERT INTO "CreditAccount" ("userId", balance) SELECT id, 1000000 FROM "User";
INSERT INTO "CreditLedger" ("userId", kind, amount, "balanceAfter", reason)
  SELECT id, 'GRANT', 1000000, 1000000, 'initial grant' FROM "User";
INSERT INTO "CreditLedger" ("userId", "operationId", kind, amount, "balanceAfter", "createdAt")
  SELECT "ownerId", id, 'RESERVE', 0, 1000000, "createdAt" FROM "Operation";
INSERT INTO "CreditLedger" ("userId", "operationId", kind, amount, "balanceAfter", "createdAt")
  SELECT "ownerId", id, (CASE WHEN status = 'COMPLETED' THEN 'CONSUME' ELSE 'REFUND' END)::"CreditKind", 0, 1000000,
         COALESCE("completedAt", "updatedAt")
    FROM "Operation" WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED');
