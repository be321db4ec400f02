-- Collections of text documents, indexed for full-text search (SPEC §3).

-- CreateEnum
CREATE TYPE "CollectionStatus" AS ENUM ('EMPTY', 'READY', 'BUSY', 'INCOMPLETE');

-- CreateTable
CREATE TABLE "Collection" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "ownerId" UUID NOT NULL,
    "isPublic" BOOLEAN NOT NULL DEFAULT false,
    "language" TEXT NOT NULL DEFAULT 'english',
    "chunkSize" INTEGER NOT NULL DEFAULT 1000,
    "status" "CollectionStatus" NOT NULL DEFAULT 'EMPTY',
    "statusMessage" TEXT,
    "documentCount" INTEGER NOT NULL DEFAULT 0,
    "chunkCount" INTEGER NOT NULL DEFAULT 0,
    "activeGeneration" INTEGER NOT NULL DEFAULT 1,
    "busyOperationId" UUID,
    "lastOperationId" UUID,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Collection_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Document" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "collectionId" UUID NOT NULL,
    "source" TEXT NOT NULL,
    "externalId" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "content" TEXT NOT NULL,
    "contentHash" TEXT NOT NULL,
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "operationId" UUID,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Document_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Chunk" (
    "id" BIGSERIAL NOT NULL,
    "collectionId" UUID NOT NULL,
    "documentId" UUID NOT NULL,
    "generation" INTEGER NOT NULL,
    "ordinal" INTEGER NOT NULL,
    "content" TEXT NOT NULL,
    "tsv" tsvector NOT NULL,

    CONSTRAINT "Chunk_pkey" PRIMARY KEY ("id")
);

-- AlterTable: the collection an operation acts on (SPEC §3 "resource")
ALTER TABLE "Operation" ADD COLUMN "collectionId" UUID;

-- CreateIndex
CREATE UNIQUE INDEX "Collection_ownerId_name_key" ON "Collection"("ownerId", "name");
CREATE INDEX "Collection_createdAt_id_idx" ON "Collection"("createdAt" DESC, "id" DESC);
CREATE UNIQUE INDEX "Document_collectionId_source_externalId_key" ON "Document"("collectionId", "source", "externalId");
CREATE INDEX "Document_collectionId_id_idx" ON "Document"("collectionId", "id");
CREATE INDEX "Document_operationId_idx" ON "Document"("operationId");
CREATE INDEX "Chunk_collectionId_generation_idx" ON "Chunk"("collectionId", "generation");
CREATE INDEX "Chunk_documentId_idx" ON "Chunk"("documentId");
CREATE INDEX "Chunk_tsv_idx" ON "Chunk" USING GIN ("tsv");
CREATE INDEX "Operation_collectionId_idx" ON "Operation"("collectionId");

-- AddForeignKey
ALTER TABLE "Collection" ADD CONSTRAINT "Collection_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "Document" ADD CONSTRAINT "Document_collectionId_fkey" FOREIGN KEY ("collectionId") REFERENCES "Collection"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Chunk" ADD CONSTRAINT "Chunk_documentId_fkey" FOREIGN KEY ("documentId") REFERENCES "Document"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Operation" ADD CONSTRAINT "Operation_collectionId_fkey" FOREIGN KEY ("collectionId") REFERENCES "Collection"("id") ON DELETE SET NULL ON UPDATE CASCADE;
