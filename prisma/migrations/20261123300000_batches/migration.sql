-- Batches (SPEC §3): the batch is an operation of type "batch"; each item is an operation linked to it.

-- AlterTable
ALTER TABLE "Operation" ADD COLUMN "batchId" UUID,
ADD COLUMN "batchItemId" TEXT,
ADD COLUMN "compensatedAt" TIMESTAMPTZ(3),
ADD COLUMN "cancelRequestedAt" TIMESTAMPTZ(3);

-- CreateIndex
CREATE UNIQUE INDEX "Operation_batchId_batchItemId_key" ON "Operation"("batchId", "batchItemId");

-- AddForeignKey
ALTER TABLE "Operation" ADD CONSTRAINT "Operation_batchId_fkey" FOREIGN KEY ("batchId") REFERENCES "Operation"("id") ON DELETE CASCADE ON UPDATE CASCADE;
