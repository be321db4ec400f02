import { encodeGlobalID } from '@pothos/plugin-relay';

/** An item operation as the batch reads it. */
export interface ItemRow {
  id: string;
  batchItemId: string;
  type: string;
  status: 'PENDING' | 'PROCESSING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';
  input: unknown;
  result: unknown;
  error: { code: string; message: string; rootCause?: string } | null;
  jobId: string | null;
  startedAt: Date | string | null;
  compensatedAt: Date | string | null;
}

export const ITEM_COLUMNS = `id, "batchItemId", type, status::text AS status, input, result, error, "jobId", "startedAt", "compensatedAt"`;

/** What happened to one item. PENDING and RUNNING only while the batch runs. */
export type ItemStatus =
  | 'PENDING'
  | 'RUNNING'
  | 'COMPLETED'
  | 'FAILED'
  | 'SKIPPED'
  | 'CANCELLED'
  | 'ROLLED_BACK';

export function itemStatus(row: ItemRow): ItemStatus {
  switch (row.status) {
    case 'PENDING':
      return 'PENDING';
    case 'PROCESSING':
      return 'RUNNING';
    case 'COMPLETED':
      return row.compensatedAt ? 'ROLLED_BACK' : 'COMPLETED';
    case 'FAILED':
      return 'FAILED';
    default:
      return row.error?.code === 'SKIPPED'
        ? 'SKIPPED'
        : row.error?.code === 'ROLLED_BACK'
          ? 'ROLLED_BACK'
          : 'CANCELLED';
  }
}

export interface ItemOutcome {
  id: string;
  status: ItemStatus;
  /** Absent when the viewer may not see the item's operation (see `redacted`). */
  operationId?: string;
  data?: unknown;
  error?: { code: string; message: string };
  reason?: string;
  rootCause?: string;
}

/**
 * An item as shown to a viewer who may see the batch but not the item's operation: its client id
 * and status (batch-level facts), never its operation id, data, error or reasons.
 */
export const redacted = (item: ItemOutcome): ItemOutcome => ({ id: item.id, status: item.status });

/** The whole batch's outcome: one entry per item and the failed item ids. */
export interface BatchOutcome {
  status: 'COMPLETED' | 'FAILED' | 'PARTIALLY_COMPLETED' | 'CANCELLED' | 'RUNNING';
  items: Record<string, ItemOutcome>;
  failed: string[];
  counts: Record<ItemStatus, number>;
}

export function outcomeOf(rows: ItemRow[], atomic: boolean, cancelled: boolean): BatchOutcome {
  const counts: Record<ItemStatus, number> = {
    PENDING: 0,
    RUNNING: 0,
    COMPLETED: 0,
    FAILED: 0,
    SKIPPED: 0,
    CANCELLED: 0,
    ROLLED_BACK: 0,
  };
  const items: Record<string, ItemOutcome> = {};
  for (const row of rows) {
    const status = itemStatus(row);
    counts[status] += 1;
    const entry: ItemOutcome = {
      id: row.batchItemId,
      status,
      operationId: encodeGlobalID('Operation', row.id),
    };
    if (status === 'COMPLETED' || status === 'ROLLED_BACK') entry.data = row.result;
    if (status === 'FAILED' || status === 'CANCELLED') entry.error = row.error ?? undefined;
    if (status === 'SKIPPED' || (status === 'ROLLED_BACK' && row.error)) {
      entry.reason = row.error?.message;
      if (row.error?.rootCause) entry.rootCause = row.error.rootCause;
    }
    items[row.batchItemId] = entry;
  }
  const failed = rows.filter((row) => row.status === 'FAILED').map((row) => row.batchItemId);
  const running = counts.PENDING + counts.RUNNING > 0;
  const status = running
    ? 'RUNNING'
    : cancelled
      ? 'CANCELLED'
      : failed.length === 0 && counts.CANCELLED === 0
        ? 'COMPLETED'
        : atomic || counts.COMPLETED === 0
          ? 'FAILED'
          : 'PARTIALLY_COMPLETED';
  return { status, items, failed, counts };
}
