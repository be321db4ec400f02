import type { OperationStatus } from '../generated/prisma/enums.ts';

export type { OperationStatus };

/** The statuses an operation never leaves. */
export const TERMINAL: readonly OperationStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

/** Allowed transitions: status → the statuses it may move to (SPEC §3). */
export const TRANSITIONS: Readonly<Record<OperationStatus, readonly OperationStatus[]>> = {
  PENDING: ['PROCESSING', 'CANCELLED'],
  // PENDING again: a retry waiting for its next attempt.
  PROCESSING: ['COMPLETED', 'FAILED', 'CANCELLED', 'PENDING'],
  COMPLETED: [],
  FAILED: [],
  CANCELLED: [],
};

export const isTerminal = (status: OperationStatus): boolean => TERMINAL.includes(status);

export const canTransition = (from: OperationStatus, to: OperationStatus): boolean =>
  TRANSITIONS[from].includes(to);

/** The statuses from which `to` may be reached. */
export const sourcesOf = (to: OperationStatus): OperationStatus[] =>
  (Object.keys(TRANSITIONS) as OperationStatus[]).filter((from) => canTransition(from, to));
