import type { Tx } from '../operations/insert.ts';

/**
 * The audit rows of retry, scheduling and retention (issue 10 point 2), written by the audit log
 * (src/audit/, built on another branch). Every call below sits inside the transaction of the
 * action it records; once src/audit/ is merged, this body becomes `recordAudit(tx, entry)` and
 * nothing else changes. Until then it writes nothing.
 */
export interface RunsAuditEntry {
  action: 'operation.retried' | 'schedule.created' | 'schedule.deleted' | 'operation.deleted';
  /** Who did it; null for the system (a schedule firing is recorded as its owner's start). */
  actorId: string | null;
  operationId?: string | null;
  scheduleId?: string | null;
  /** What else is worth keeping (the retried operation's id, a schedule's cron …). */
  data?: Record<string, unknown>;
}

export async function auditSpot(_tx: Tx, _entry: RunsAuditEntry): Promise<void> {
  // AUDIT SPOT: replace with `await recordAudit(tx, entry)` (src/audit/) after merging.
}
