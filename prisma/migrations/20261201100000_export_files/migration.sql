-- Exports are owned (issue 9, point 2): one row per export file, unique per owner, written in the
-- export's own transactions (a reservation first, completed when the file is renamed into place).
-- Files written before this migration (directly in the export folder) have no owner and can no
-- longer be read; export the collection again.

-- CreateTable
CREATE TABLE "ExportFile" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "ownerId" UUID NOT NULL,
    "file" TEXT NOT NULL,
    "collectionId" UUID,
    "operationId" UUID NOT NULL,
    "claimId" UUID,
    "size" BIGINT,
    "sha256" TEXT,
    "documentCount" INTEGER,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completedAt" TIMESTAMPTZ(3),

    CONSTRAINT "ExportFile_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ExportFile_ownerId_file_key" ON "ExportFile"("ownerId", "file");

-- CreateIndex
CREATE INDEX "ExportFile_file_idx" ON "ExportFile"("file");

-- AddForeignKey
ALTER TABLE "ExportFile" ADD CONSTRAINT "ExportFile_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
