-- CreateEnum
CREATE TYPE "OperationStatus" AS ENUM ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED');

-- CreateTable
CREATE TABLE "User" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "isAdmin" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Operation" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "type" TEXT NOT NULL,
    "input" JSONB NOT NULL,
    "ownerId" UUID NOT NULL,
    "status" "OperationStatus" NOT NULL DEFAULT 'PENDING',
    "progressCurrent" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "progressTotal" DOUBLE PRECISION,
    "progressMessage" TEXT,
    "attempt" INTEGER NOT NULL DEFAULT 0,
    "result" JSONB,
    "error" JSONB,
    "sequence" INTEGER NOT NULL DEFAULT 0,
    "idempotencyKey" TEXT,
    "inputHash" TEXT,
    "jobId" UUID,
    "workerId" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMPTZ(3),
    "completedAt" TIMESTAMPTZ(3),
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Operation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "OperationEvent" (
    "id" BIGSERIAL NOT NULL,
    "operationId" UUID NOT NULL,
    "sequence" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "status" "OperationStatus" NOT NULL,
    "progressCurrent" DOUBLE PRECISION NOT NULL,
    "progressTotal" DOUBLE PRECISION,
    "message" TEXT,
    "data" JSONB,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "OperationEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "User_name_key" ON "User"("name");

-- CreateIndex
CREATE INDEX "Operation_ownerId_createdAt_id_idx" ON "Operation"("ownerId", "createdAt" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "Operation_createdAt_id_idx" ON "Operation"("createdAt" DESC, "id" DESC);

-- CreateIndex
CREATE UNIQUE INDEX "Operation_ownerId_idempotencyKey_key" ON "Operation"("ownerId", "idempotencyKey");

-- CreateIndex
CREATE UNIQUE INDEX "OperationEvent_operationId_sequence_key" ON "OperationEvent"("operationId", "sequence");

-- AddForeignKey
ALTER TABLE "Operation" ADD CONSTRAINT "Operation_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "OperationEvent" ADD CONSTRAINT "OperationEvent_operationId_fkey" FOREIGN KEY ("operationId") REFERENCES "Operation"("id") ON DELETE CASCADE ON UPDATE CASCADE;
