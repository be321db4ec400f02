import { join } from 'node:path';
import type { SqlExecutor } from '../db/direct.ts';
import type { Db } from '../db/prisma.ts';
import { NonRetryableError } from '../operations/registry.ts';
import { exportFileName, type OpenedExport, openExport, type ReadLimits } from './export-file.ts';
import { removeFile } from './export-write.ts';
import { resolveInside } from './paths.ts';

type Executor = SqlExecutor;

/**
 * Who owns an export (SQL of the ExportFile table). An export belongs to the user who made it; that
 * user and admins may read it. Names are unique per owner and the file lives in the owner's own
 * folder, `<storageDir>/<ownerId>/<file>`, so one user's names never collide with (or reveal)
 * another's.
 *
 * The row and the file change together, in this order (so a crash at any point leaves a state the
 * next export to that name repairs, and never a readable row without its file):
 *  1. `reserveExport` commits a reservation (no `completedAt`) before a byte is written;
 *  2. the file is written to a hidden `.partial` file beside the target;
 *  3. `completeExport` runs in one transaction that records size, sha256 and count and renames the
 *     file into place before it commits.
 * So a completed row always has its file, and a file in place always has a row (completed, or a
 * reservation nobody may read). A reservation left by a crashed or stopped attempt is taken over
 * by the next attempt of the same operation, or by any export of that name once its operation is
 * no longer PENDING or PROCESSING.
 */

/** The viewer an export is looked up for. */
export interface ExportUser {
  id: string;
  isAdmin: boolean;
}

/** The same answer whether the export does not exist or belongs to someone else. */
export const NO_SUCH_EXPORT = 'no export with this name is available to you';

/** An export that does not exist, is not finished, or is not the viewer's to read. */
export class ExportNotFoundError extends NonRetryableError {
  constructor() {
    super(NO_SUCH_EXPORT, 'EXPORT_NOT_FOUND');
  }
}

/** Where an owner's export file lives. */
export const ownerFolder = (storageDir: string, ownerId: string) => join(storageDir, ownerId);

export interface Reservation {
  ownerId: string;
  file: string;
  collectionId: string;
  operationId: string;
  claimId: string;
}

/**
 * Reserves the owner's file name for this attempt, atomically: true when it now holds it, false
 * when the owner already has an export of that name (or another running export is writing it).
 */
export async function reserveExport(tx: Executor, r: Reservation): Promise<boolean> {
  const rows = await tx.$queryRawUnsafe<unknown[]>(
    `INSERT INTO "ExportFile" ("ownerId", file, "collectionId", "operationId", "claimId")
     VALUES ($1::uuid, $2, $3::uuid, $4::uuid, $5::uuid)
     ON CONFLICT ("ownerId", file) DO UPDATE
        SET "collectionId" = EXCLUDED."collectionId", "operationId" = EXCLUDED."operationId",
            "claimId" = EXCLUDED."claimId", "createdAt" = now()
      WHERE "ExportFile"."completedAt" IS NULL
        AND ("ExportFile"."operationId" = EXCLUDED."operationId"
             OR NOT EXISTS (SELECT 1 FROM "Operation" o WHERE o.id = "ExportFile"."operationId"
                             AND o.status IN ('PENDING', 'PROCESSING')))
     RETURNING 1`,
    r.ownerId,
    r.file,
    r.collectionId,
    r.operationId,
    r.claimId,
  );
  return rows.length === 1;
}

/** Marks this attempt's reservation complete; false when it no longer holds it. */
export async function completeExport(
  tx: Executor,
  r: Pick<Reservation, 'ownerId' | 'file' | 'claimId'>,
  written: { size: number; sha256: string; documentCount: number },
): Promise<boolean> {
  const rows = await tx.$queryRawUnsafe<unknown[]>(
    `UPDATE "ExportFile" SET size = $4, sha256 = $5, "documentCount" = $6, "completedAt" = now()
      WHERE "ownerId" = $1::uuid AND file = $2 AND "claimId" = $3::uuid AND "completedAt" IS NULL
     RETURNING 1`,
    r.ownerId,
    r.file,
    r.claimId,
    written.size,
    written.sha256,
    written.documentCount,
  );
  return rows.length === 1;
}

/** Gives up this attempt's reservation (the export failed before completing). */
export async function releaseReservation(
  db: Executor,
  r: Pick<Reservation, 'ownerId' | 'file' | 'claimId'>,
): Promise<void> {
  await db.$executeRawUnsafe(
    `DELETE FROM "ExportFile" WHERE "ownerId" = $1::uuid AND file = $2 AND "claimId" = $3::uuid AND "completedAt" IS NULL`,
    r.ownerId,
    r.file,
    r.claimId,
  );
}

/**
 * Gives up this attempt's unfinished reservation after a failure, removing its file first if the
 * rename into place happened (the row is locked meanwhile, so it cannot be completed under us).
 * A completed row (the commit went through after all) is left alone with its file.
 */
export async function abandonExport(db: Db, r: Reservation, target: string): Promise<void> {
  await db.$transaction(async (tx) => {
    const rows = await tx.$queryRawUnsafe<unknown[]>(
      `SELECT 1 FROM "ExportFile" WHERE "ownerId" = $1::uuid AND file = $2 AND "claimId" = $3::uuid
          AND "completedAt" IS NULL FOR UPDATE`,
      r.ownerId,
      r.file,
      r.claimId,
    );
    if (rows.length === 0) return;
    await removeFile(target);
    await removeFile(`${target}.sha256`);
    await releaseReservation(tx, r);
  });
}

/** Turns a completed export of `operationId` back into a reservation nobody may read (compensation). */
export async function withdrawExport(db: Executor, ownerId: string, file: string, operationId: string) {
  await db.$executeRawUnsafe(
    `UPDATE "ExportFile" SET "completedAt" = NULL WHERE "ownerId" = $1::uuid AND file = $2 AND "operationId" = $3::uuid`,
    ownerId,
    file,
    operationId,
  );
}

/** Deletes the (withdrawn or abandoned) reservation of `operationId`. */
export async function forgetExport(db: Executor, ownerId: string, file: string, operationId: string) {
  await db.$executeRawUnsafe(
    `DELETE FROM "ExportFile" WHERE "ownerId" = $1::uuid AND file = $2 AND "operationId" = $3::uuid AND "completedAt" IS NULL`,
    ownerId,
    file,
    operationId,
  );
}

/**
 * True when the owner already has an export of this name, or one being written (a reservation
 * whose operation is still PENDING or PROCESSING). A reservation left by an ended operation does
 * not count: the next export takes it over.
 */
export async function ownsExportName(db: Executor, ownerId: string, file: string): Promise<boolean> {
  const rows = await db.$queryRawUnsafe<unknown[]>(
    `SELECT 1 FROM "ExportFile" e
      WHERE e."ownerId" = $1::uuid AND e.file = $2
        AND (e."completedAt" IS NOT NULL
             OR EXISTS (SELECT 1 FROM "Operation" o WHERE o.id = e."operationId"
                         AND o.status IN ('PENDING', 'PROCESSING')))`,
    ownerId,
    file,
  );
  return rows.length > 0;
}

/** A finished export the viewer may read, with where it is and what it must be. */
export interface UsableExport {
  ownerId: string;
  file: string;
  path: string;
  sha256: string;
  size: number;
  documentCount: number;
}

/**
 * The finished export of this name the viewer may read: their own; for an admin without one, the
 * single other user's export of that name (two users' exports of one name are refused as absent:
 * an admin must not import the wrong one). Absent, unfinished, someone else's, or a file missing on
 * disk all give the same ExportNotFoundError.
 */
export async function findExport(
  db: Executor,
  viewer: ExportUser,
  file: string,
  storageDir: string,
): Promise<UsableExport> {
  file = exportFileName(file);
  const rows = await db.$queryRawUnsafe<
    { ownerId: string; sha256: string; size: bigint; documentCount: number }[]
  >(
    `SELECT "ownerId", sha256, size, "documentCount" FROM "ExportFile"
      WHERE file = $1 AND "completedAt" IS NOT NULL AND ("ownerId" = $2::uuid OR $3)
      ORDER BY ("ownerId" = $2::uuid) DESC, "createdAt" DESC LIMIT 2`,
    file,
    viewer.id,
    viewer.isAdmin,
  );
  const [row, other] = rows;
  if (!row || (row.ownerId !== viewer.id && other)) throw new ExportNotFoundError();
  const path = await resolveInside(storageDir, `${row.ownerId}/${file}`, 'the export folder');
  if (!path.ok) throw new ExportNotFoundError();
  return {
    ownerId: row.ownerId,
    file,
    path: path.value,
    sha256: row.sha256,
    size: Number(row.size),
    documentCount: row.documentCount,
  };
}

/** A Node file-system error: its message names a server path, which no client may see. */
export const isSystemError = (error: unknown): error is NodeJS.ErrnoException =>
  error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === 'string';

/** Opens a found export (see openExport); a file that cannot be opened or read is not available. */
export async function openUsableExport(found: UsableExport, limits: ReadLimits): Promise<OpenedExport> {
  try {
    return await openExport(found.path, found, limits);
  } catch (error) {
    throw isSystemError(error) ? new ExportNotFoundError() : error;
  }
}

/** The error recorded when writing an export fails in the file system: its code, never the path. */
export class ExportWriteError extends Error {
  override name = 'ExportWriteError';
  readonly code = 'EXPORT_WRITE_FAILED';
  constructor(cause: NodeJS.ErrnoException) {
    super(`the export file could not be written (${cause.code ?? 'I/O error'})`, { cause });
  }
}

/** The viewer a running operation acts for: its owner, with their admin flag as it is now. */
export async function runViewer(db: Executor, ownerId: string): Promise<ExportUser> {
  const [row] = await db.$queryRawUnsafe<{ isAdmin: boolean }[]>(
    `SELECT "isAdmin" FROM "User" WHERE id = $1::uuid`,
    ownerId,
  );
  return { id: ownerId, isAdmin: row?.isAdmin === true };
}
