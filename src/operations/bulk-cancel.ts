import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { Viewer } from '../auth/viewer.ts';
import { cancelBatch } from '../batches/submit.ts';
import { NotFoundError } from '../errors.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import type { Resources } from '../resources.ts';
import { cancellableWhere } from './access.ts';
import { cancelOperation } from './cancel.ts';
import { IllegalTransitionError } from './errors.ts';
import { filterWhere, type OperationFilterInput } from './filter.ts';

/** Operations read (and then cancelled one by one) per round trip; the event loop turns between pages. */
const PAGE_SIZE = 100;

/** What one `cancelOperations` call did. */
export interface BulkCancelled {
  /** Matching operations this call cancelled (a batch counts once, and so does each matching item). */
  count: number;
  /** More matching operations were left because the call reached its bound (`bulkCancelMax`). */
  hasMore: boolean;
}

/**
 * Cancels every unfinished operation matching `filter` that the viewer may cancel (owner, owner of
 * its collection, admin — `canCancel`), oldest first, at most `max` of them. Each goes through the
 * very path of `cancelOperation` (a batch through `cancelBatch`): its events, credit refund, audit
 * row, the abort of its running handler. One that finished meanwhile is passed over; an item
 * already cancelled with its batch by this call counts as cancelled. An empty filter means every
 * operation the viewer may cancel (for an admin: everyone's). Throws a ValidationError for a
 * malformed id in the filter, before anything is cancelled.
 */
export async function cancelOperations(
  r: Resources,
  viewer: Viewer,
  filter: OperationFilterInput,
  reason: string | null | undefined,
  max = r.config.bulkCancelMax,
): Promise<BulkCancelled> {
  const where: Prisma.OperationWhereInput = {
    AND: [
      filterWhere(filter, ['input', 'filter']),
      { status: { in: ['PENDING', 'PROCESSING'] } },
      cancellableWhere(viewer),
    ],
  };
  const run = { count: 0, tried: 0, max, cancelledBatches: new Set<string>() };
  // Batches first: their items are then cancelled with them (as cancelBatch does), never one by
  // one ahead of their batch (which an atomic batch would take for a failure).
  for (const kind of [{ type: 'batch' }, { type: { not: 'batch' } }]) {
    const more = await cancelPages(r, viewer, { AND: [where, kind] }, reason, run);
    if (more) return { count: run.count, hasMore: true };
  }
  return { count: run.count, hasMore: false };
}

/** Cancels the operations matching `where`, page by page, until done or `run.max` were tried; true when the bound left some. */
async function cancelPages(
  r: Resources,
  viewer: Viewer,
  where: Prisma.OperationWhereInput,
  reason: string | null | undefined,
  run: { count: number; tried: number; max: number; cancelledBatches: Set<string> },
): Promise<boolean> {
  let after: { createdAt: Date; id: string } | null = null;
  for (;;) {
    // One more than may be tried: whether any is left over.
    const take = Math.min(PAGE_SIZE, run.max - run.tried + 1);
    const page: { id: string; type: string; batchId: string | null; createdAt: Date }[] =
      await r.db.operation.findMany({
        where: after
          ? {
              AND: [
                where,
                {
                  OR: [
                    { createdAt: { gt: after.createdAt } },
                    { createdAt: after.createdAt, id: { gt: after.id } },
                  ],
                },
              ],
            }
          : where,
        select: { id: true, type: true, batchId: true, createdAt: true },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        take,
      });
    for (const row of page) {
      if (run.tried === run.max) return true;
      run.tried += 1;
      if (await cancelOne(r, viewer, row, reason, run.cancelledBatches)) run.count += 1;
    }
    const last = page.at(-1);
    if (!last || page.length < take) return false;
    after = last;
    await yieldToLoop();
  }
}

/** One operation cancelled like `cancelOperation` would; false when it had finished meanwhile. */
async function cancelOne(
  r: Resources,
  viewer: Viewer,
  row: { id: string; type: string; batchId: string | null },
  reason: string | null | undefined,
  cancelledBatches: Set<string>,
): Promise<boolean> {
  const displayId = encodeGlobalID('Operation', row.id);
  try {
    if (row.type === 'batch') {
      await cancelBatch(r, viewer, row.id, displayId, reason);
      cancelledBatches.add(row.id);
    } else {
      await cancelOperation(r, viewer, row.id, displayId, reason);
    }
    return true;
  } catch (error) {
    // Finished (or deleted) since the page was read: not this call's to count, unless its batch
    // was cancelled by this very call.
    if (error instanceof IllegalTransitionError)
      return row.batchId !== null && cancelledBatches.has(row.batchId);
    if (error instanceof NotFoundError) return false;
    throw error;
  }
}
