import type { OperationStatus } from './status.ts';

export class UnknownOperationTypeError extends Error {
  override name = 'UnknownOperationTypeError';
  constructor(
    readonly type: string,
    readonly knownTypes: string[],
  ) {
    super(`Unknown operation type "${type}". Known types: ${knownTypes.join(', ')}`);
  }
}

export class IllegalTransitionError extends Error {
  override name = 'IllegalTransitionError';
  constructor(
    readonly from: OperationStatus,
    readonly to: OperationStatus,
  ) {
    super(`An operation cannot go from ${from} to ${to}`);
  }
}

export class IdempotencyKeyConflictError extends Error {
  override name = 'IdempotencyKeyConflictError';
  constructor(
    readonly key: string,
    readonly operationId: string,
  ) {
    super(`Idempotency key "${key}" was already used with a different type or input`);
  }
}
