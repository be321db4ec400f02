import { randomUUID } from 'node:crypto';
import type { Viewer } from '../auth/viewer.ts';
import type { Db } from '../db/prisma.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { slicer } from '../event-loop.ts';
import { publish } from '../operations/attempt.ts';
import * as batchTransitions from '../operations/batch-transitions.ts';
import { runInlineItem } from '../operations/inline.ts';
import { measureJson } from '../operations/input-limits.ts';
import type { OperationType } from '../operations/registry.ts';
import { authorize } from '../operations/start.ts';
import * as transitions from '../operations/transitions.ts';
import { countUnfinished, fairPriority } from '../quotas/fair-share.ts';
import type { Resources } from '../resources.ts';
import { queueJobs } from './insert-items.ts';
import { ITEM_COLUMNS, type ItemRow } from './outcome.ts';
import { InputTooLargeError, RefError, type ResolveLimits, resolveRefs } from './refs.ts';

/** The items of a batch, as the coordinator reads them. */
export const loadItems = (db: Db, batchId: string) =>
  db.$queryRawUnsafe<ItemRow[]>(
    `SELECT ${ITEM_COLUMNS} FROM "Operation" WHERE "batchId" = $1::uuid`,
    batchId,
  );

/**
 * Skips an item that never started (PENDING, with or without a job: items ready at submission have
 * one at once). Its job, if any, is cancelled too; a worker that takes it first finds it CANCELLED.
 * Returns whether the skip applied.
 */
export async function skipItem(
  r: Resources,
  item: { id: string; type: string; jobId: string | null },
  reason: string,
  rootCause: string | null,
): Promise<boolean> {
  const applied = await batchTransitions.skip(r.db, item.id, reason, rootCause);
  if (!applied) return false;
  publish(r, applied);
  if (item.jobId) {
    await r.boss.cancel(item.type, item.jobId).catch((error: Error) => {
      r.logger.warn('pg-boss cancel failed', { operationId: item.id, error: error.message });
    });
  }
  return true;
}

/**
 * What the coordinator reads after a wake: the batch's cancel flag and the items of `ids` (those
 * whose change woke it), without their inputs (it has them, and an input changes only when it
 * releases the item). Reads only what changed, so a step costs the same in a batch of any size.
 */
export async function loadChanged(
  db: Db,
  batchId: string,
  ids: readonly string[],
): Promise<{ cancelled: boolean; rows: ItemRow[] }> {
  const found = await db.$queryRawUnsafe<(Omit<ItemRow, 'id'> & { id: string | null; cancelled: boolean })[]>(
    `SELECT b."cancelRequestedAt" IS NOT NULL AS cancelled, i.id, i."batchItemId", i.type, i.status::text AS status,
            NULL AS input, i.result, i.error, i."jobId", i."startedAt", i."compensatedAt"
       FROM "Operation" b
       LEFT JOIN "Operation" i ON i."batchId" = b.id AND i.id = ANY($2::uuid[])
      WHERE b.id = $1::uuid`,
    batchId,
    ids,
  );
  const rows = found.flatMap(({ cancelled: _, ...row }) => (row.id === null ? [] : [row as ItemRow]));
  return { cancelled: found[0]?.cancelled ?? false, rows };
}

/**
 * What the inputs of one batch's items may take together (`config.batchInputMaxBytes`), as their
 * references are resolved: a small request must never store a large one. Sizes are measured once
 * per row and state (a row's input changes once, when it is released with its references resolved).
 */
export class InputBudget {
  private readonly sizes = new Map<string, number>();
  private left = 0;

  constructor(private readonly r: Resources) {}

  /** The bytes a row's stored input takes. */
  sizeOf(row: ItemRow): number {
    const key = `${row.id}:${row.jobId || row.status !== 'PENDING' ? 'resolved' : 'template'}`;
    let bytes = this.sizes.get(key);
    if (bytes === undefined) {
      const unbounded = { maxBytes: Number.POSITIVE_INFINITY, maxDepth: Number.POSITIVE_INFINITY };
      bytes = measureJson(row.input ?? {}, unbounded).bytes;
      this.sizes.set(key, bytes);
    }
    return bytes;
  }

  /** Takes stock of the batch's rows as they are now. */
  begin(rows: ItemRow[]): void {
    this.left = this.r.config.batchInputMaxBytes - rows.reduce((sum, row) => sum + this.sizeOf(row), 0);
  }

  /** The bounds `row`'s resolved input must fit: its own limit, and what the batch has left. */
  limitsFor(row: ItemRow): ResolveLimits & { byBatch: boolean } {
    const own = this.r.config.inputMaxBytes;
    const batch = this.sizeOf(row) + Math.max(0, this.left);
    return { maxBytes: Math.min(own, batch), maxDepth: this.r.config.inputMaxDepth, byBatch: batch < own };
  }

  /** Records that `row`'s input now takes `bytes`. */
  spend(row: ItemRow, bytes: number): void {
    this.left -= bytes - this.sizeOf(row);
  }
}

/** Why an input cannot be used, as an item error. */
async function prepare(
  r: Resources,
  viewer: Viewer,
  type: OperationType,
  template: unknown,
  results: ReadonlyMap<string, unknown>,
  limits: ReturnType<InputBudget['limitsFor']>,
): Promise<{ input: unknown; bytes: number; collectionId: string | null } | transitions.OperationError> {
  let resolved: unknown;
  const tooLarge = {
    code: 'INPUT_TOO_LARGE',
    message: limits.byBatch
      ? `with its references resolved, the batch's item inputs would take more than ${r.config.batchInputMaxBytes} bytes as JSON together`
      : `with its references resolved, the input would be larger than ${limits.maxBytes} bytes as JSON or nest deeper than ${limits.maxDepth} levels`,
  };
  try {
    resolved = resolveRefs(template, results, limits);
  } catch (error) {
    if (error instanceof InputTooLargeError) return tooLarge;
    if (error instanceof RefError) return { code: error.code, message: error.message };
    throw error;
  }
  const parsed = type.input.safeParse(resolved);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .slice(0, r.config.maxProblems)
      .map((issue) => `${['input', ...issue.path].join('.')}: ${issue.message}`);
    const more = parsed.error.issues.length - problems.length;
    const rest = more > 0 ? `; and ${more} more problems` : '';
    return { code: 'INVALID_INPUT', message: `with its references resolved: ${problems.join('; ')}${rest}` };
  }
  // What is stored: the parsed input (defaults filled in), within the same bounds.
  const measured = measureJson(parsed.data, limits);
  if (measured.over) return tooLarge;
  try {
    // Access rules apply to every item as if it were started alone.
    const collectionId = await authorize(r, viewer, type, parsed.data);
    const problems = (await type.check?.(parsed.data, { db: r.db, config: r.config, viewer })) ?? [];
    if (problems.length) throw new ValidationError(problems.slice(0, r.config.maxProblems));
    return { input: parsed.data, bytes: measured.bytes, collectionId };
  } catch (error) {
    if (error instanceof NotFoundError) return { code: 'NOT_FOUND', message: error.message };
    if (error instanceof ForbiddenError) return { code: 'FORBIDDEN', message: error.message };
    if (error instanceof ValidationError) return { code: 'INVALID_INPUT', message: error.message };
    throw error;
  }
}

/** Items started per transaction: one commit for many (commits dominate on this path). */
const CHUNK = 100;
/** Resolved inputs held in memory before they are written: bounds the coordinator's memory. */
const CHUNK_BYTES = 8 * 1024 * 1024;
/** Longest the coordinator computes without letting other work run, in ms. */
const SLICE_MS = 10;

type Ready = { row: ItemRow; type: OperationType; input: unknown; collectionId: string | null };

/**
 * Starts items whose dependencies completed: resolves their references from the results (within
 * the input limits and the batch's `budget`), checks each as if started alone, then queues the
 * jobs, many per transaction (inline items run each in its own). An item that cannot be started
 * this way ends FAILED with the reason. It yields to the event loop every SLICE_MS, so that a large
 * batch never holds up other requests or the heartbeats of operations running in this process.
 */
export async function startItems(
  r: Resources,
  viewer: Viewer,
  rows: ItemRow[],
  results: ReadonlyMap<string, unknown>,
  budget: InputBudget,
): Promise<void> {
  let ready: Ready[] = [];
  let readyBytes = 0;
  const slice = slicer(SLICE_MS);
  for (const row of rows) {
    await slice();
    const type = r.registry.get(row.type);
    const prepared = type
      ? await prepare(r, viewer, type, row.input, results, budget.limitsFor(row))
      : { code: 'UNKNOWN_TYPE', message: `unknown operation type ${row.type}` };
    if (!type || 'code' in prepared) {
      const error = prepared as transitions.OperationError;
      const failed = await transitions.fail(r.db, row.id, null, error, { from: ['PENDING'] });
      if (failed) publish(r, failed);
      if (failed) r.metrics.refFailures.inc({ code: error.code });
      continue;
    }
    budget.spend(row, prepared.bytes);
    if (type.inline) {
      const messages = await runInlineItem(r, type, row.id, prepared.input, viewer.id);
      for (const message of messages ?? []) publish(r, message);
    } else {
      ready.push({ row, type, input: prepared.input, collectionId: prepared.collectionId });
      readyBytes += prepared.bytes;
      if (ready.length >= CHUNK || readyBytes >= CHUNK_BYTES) {
        await release(r, viewer, ready);
        ready = [];
        readyBytes = 0;
      }
    }
  }
  if (ready.length) await release(r, viewer, ready);
}

/** Stores the resolved inputs and queues the jobs of `ready`, in one transaction, set-based. */
async function release(r: Resources, viewer: Viewer, ready: Ready[]): Promise<void> {
  const released = await r.db.$transaction(
    async (tx) => {
      // Fair share: ranked by the owner's other unfinished operations (these items included).
      const priority = fairPriority((await countUnfinished(tx, viewer.id)) - 1);
      const entries = ready.map(({ row, type, input, collectionId }) => ({
        operationId: row.id,
        type,
        input,
        jobId: randomUUID(),
        collectionId,
      }));
      const applied = await batchTransitions.releaseMany(tx, entries);
      // Items started meanwhile (a restarted coordinator) get no second job.
      const done = new Set(applied.map((message) => message.operation.id));
      await queueJobs(
        tx,
        r,
        entries.filter((entry) => done.has(entry.operationId)),
        priority,
      );
      return applied;
    },
    { maxWait: 10_000, timeout: 60_000 },
  );
  for (const message of released) publish(r, message);
}
