import { recordAudit } from '../audit/record.ts';
import type { Tx } from '../operations/insert.ts';

/**
 * The audit rows of retry, scheduling and retention (issue 10 point 2), written through the audit
 * log's one writer (src/audit/record.ts). Every call sits inside the transaction of the action it
 * records.
 */
export interface RunsAuditEntry {
  action: 'operation.retried' | 'schedule.created' | 'schedule.deleted' | 'operation.deleted';
  /** Who did it (a schedule firing is recorded as its owner's start). */
  actorId: string;
  operationId?: string | null;
  scheduleId?: string | null;
  /** What else is worth keeping (the retried operation's id, a schedule's cron …). */
  data?: Record<string, unknown>;
}

const ACTIONS = {
  'operation.retried': 'OPERATION_RETRIED',
  'schedule.created': 'SCHEDULE_CREATED',
  'schedule.deleted': 'SCHEDULE_DELETED',
  'operation.deleted': 'OPERATION_DELETED',
} as const;

export async function auditSpot(tx: Tx, entry: RunsAuditEntry): Promise<void> {
  await recordAudit(tx, {
    actorId: entry.actorId,
    action: ACTIONS[entry.action],
    operationId: entry.operationId ?? null,
    data: { ...entry.data, ...(entry.scheduleId ? { scheduleId: entry.scheduleId } : {}) },
  });
}
