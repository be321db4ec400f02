import type { Repair } from '../operations/reconcile.ts';
import type { EventMessage } from '../operations/record.ts';
import { isTerminal } from '../operations/status.ts';
import type { Metrics } from './metrics.ts';

/** Batch item outcomes counted when a batch ends (the final ones: no PENDING or RUNNING). */
const ITEM_OUTCOMES = ['COMPLETED', 'FAILED', 'SKIPPED', 'CANCELLED', 'ROLLED_BACK'] as const;

const seconds = (from: string | null, to: string | null) =>
  from && to ? Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000) : null;

/**
 * Updates the operation metrics from one committed event, as it is published: every transition
 * passes through here once, in the process that wrote it. CREATED counts a start, STARTED an
 * attempt (and the first one's wait), RETRY_SCHEDULED a retry, and the event that ends an operation
 * (any event in FAILED or CANCELLED, which are final; COMPLETED's own event, not a later
 * compensation note) its status and duration. (Published rows may leave a large input or result
 * out, so a batch's items are counted where the batch is submitted and where it ends.)
 * It never throws: a fault in counting must not stop an event from being published.
 */
export function observeEvent(m: Metrics, message: EventMessage): void {
  try {
    countEvent(m, message);
  } catch {
    m.faults.inc();
  }
}

function countEvent(m: Metrics, { operation: op, event }: EventMessage): void {
  const type = m.typeLabel(op.type);
  switch (event.kind) {
    case 'CREATED':
      m.started.inc({ type });
      return;
    case 'STARTED': {
      m.attempts.inc({ type });
      const wait = seconds(op.createdAt, op.startedAt);
      if (op.attempt === 1 && wait !== null) m.wait.observe({ type }, wait);
      return;
    }
    case 'RETRY_SCHEDULED':
      m.retries.inc({ type });
      return;
  }
  if (!isTerminal(event.status) || (event.status === 'COMPLETED' && event.kind !== 'COMPLETED')) return;
  const status = event.status;
  m.finished.inc({ type, status });
  const took = seconds(op.createdAt, op.completedAt ?? event.createdAt);
  if (took !== null) m.duration.observe({ type, status }, took);
  if (op.type === 'batch' && took !== null) m.batchDuration.observe({ status }, took);
}

/**
 * A submitted (or retried) batch: its size, and its items as started by their types — they are
 * created with it, in bulk, without events of their own being published.
 */
export function observeBatchSubmitted(m: Metrics, itemTypes: readonly string[]): void {
  m.batchSize.observe(itemTypes.length);
  const byType = new Map<string, number>();
  for (const name of itemTypes) {
    const type = m.typeLabel(name);
    byType.set(type, (byType.get(type) ?? 0) + 1);
  }
  for (const [type, n] of byType) m.started.inc({ type }, n);
}

/** A batch's coordinator ended it: its items by final outcome. */
export function observeBatchOutcome(m: Metrics, counts: Readonly<Record<string, number>>): void {
  for (const outcome of ITEM_OUTCOMES) {
    const n = counts[outcome];
    if (typeof n === 'number' && n > 0) m.batchItems.inc({ outcome }, n);
  }
}

/** The reconciler's `problem` texts as a bounded label (they may name a collection). */
export function problemLabel(problem: string): string {
  if (problem === 'job missing') return 'job_missing';
  if (problem === 'worker heartbeat lost') return 'heartbeat_lost';
  const job = /^job (created|retry|active|completed|cancelled|failed)$/.exec(problem);
  if (job) return `job_${job[1]}`;
  if (problem.startsWith('batch ended')) return 'batch_ended';
  if (problem.startsWith('collection ')) return 'collection_left_busy';
  return 'other';
}

/** Counts the repairs one reconcile pass made (the ones it could not make are only logged). */
export function observeRepairs(m: Metrics, repairs: readonly Repair[]): void {
  for (const repair of repairs) {
    if (repair.fixed)
      m.repairs.inc({ type: m.typeLabel(repair.type), problem: problemLabel(repair.problem) });
  }
}
