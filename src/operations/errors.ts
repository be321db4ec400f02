import type { OperationStatus } from './status.ts';

export class UnknownOperationTypeError extends Error {
  override name = 'UnknownOperationTypeError';
  /** The type asked for, cut to 100 characters: an error never echoes a large input back. */
  readonly type: string;
  constructor(
    type: string,
    readonly knownTypes: string[],
  ) {
    const cut = type.length > 100 ? `${type.slice(0, 100)}…` : type;
    super(`Unknown operation type "${cut}". Known types: ${knownTypes.join(', ')}`);
    this.type = cut;
  }
}

export class IllegalTransitionError extends Error {
  override name = 'IllegalTransitionError';
  /** `to` null: the refused action changes no status (deleteOperation of an unfinished one). */
  constructor(
    readonly from: OperationStatus,
    readonly to: OperationStatus | null,
  ) {
    super(
      to ? `An operation cannot go from ${from} to ${to}` : `An operation that is ${from} cannot be deleted`,
    );
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

/** Which per-user quota refused a start (see src/quotas/quotas.ts). */
export type QuotaKind = 'ACTIVE_OPERATIONS' | 'STARTS_PER_MINUTE';

/** A start refused by a per-user quota; nothing was created. */
export class QuotaExceededError extends Error {
  override name = 'QuotaExceededError';
  constructor(
    readonly quota: QuotaKind,
    readonly limit: number,
    /** When trying again may succeed, in seconds; null when the request alone exceeds the limit. */
    readonly retryAfterSeconds: number | null,
  ) {
    super(
      quota === 'ACTIVE_OPERATIONS'
        ? `At most ${limit} unfinished operations per user`
        : `At most ${limit} operations started per user per minute`,
    );
  }
}
