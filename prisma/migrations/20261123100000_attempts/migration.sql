-- AlterTable: retries, claims and the time of the next attempt
ALTER TABLE "Operation" ADD COLUMN "claimId" UUID,
ADD COLUMN "nextAttemptAt" TIMESTAMPTZ(3);

-- CreateIndex: the reconciler scans operations that are not finished
CREATE INDEX "Operation_active_idx" ON "Operation"("status", "updatedAt") WHERE "status" IN ('PENDING', 'PROCESSING');
