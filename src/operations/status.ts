import type { OperationStatus } from '../generated/prisma/enums.ts';

export type { OperationStatus };

/** The statuses an operation never leaves. */
export const TERMINAL: readonly OperationStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

/**
 * Allowed transitions: status → the statuses it may move to (SPEC §3). The one table every status
 * write goes through (transitions.ts `apply` refuses any other pair).
 */
export const TRANSITIONS: Readonly<Record<OperationStatus, readonly OperationStatus[]>> = {
  // FAILED from PENDING: an operation that can never start (its job was lost beyond repair, its
  // batch ended before it, or a reference in its input could not be resolved).
  PENDING: ['PROCESSING', 'CANCELLED', 'FAILED'],
  // PENDING again: a retry waiting for its next attempt.
  PROCESSING: ['COMPLETED', 'FAILED', 'CANCELLED', 'PENDING'],
  COMPLETED: [],
  FAILED: [],
  CANCELLED: [],
};

/**
 * The statuses that may record an event without changing: PENDING (a requeue, a batch item's
 * release), PROCESSING (progress, notes, a soft timeout) and COMPLETED (an atomic batch's
 * compensation of a completed item). FAILED and CANCELLED are final in every respect.
 */
export const STAYS: readonly OperationStatus[] = ['PENDING', 'PROCESSING', 'COMPLETED'];

export const isTerminal = (status: OperationStatus): boolean => TERMINAL.includes(status);

export const canTransition = (from: OperationStatus, to: OperationStatus): boolean =>
  TRANSITIONS[from].includes(to);

/** Whether a change from `from` to `to` may be applied: a transition of the table, or a stay. */
export const mayApply = (from: OperationStatus, to: OperationStatus): boolean =>
  from === to ? STAYS.includes(from) : canTransition(from, to);

/** The statuses from which `to` may be reached. */
export const sourcesOf = (to: OperationStatus): OperationStatus[] =>
  (Object.keys(TRANSITIONS) as OperationStatus[]).filter((from) => canTransition(from, to));
