import type { Operation, OperationEvent } from '../generated/prisma/client.ts';
import type { OperationStatus } from './status.ts';

/**
 * An operation row and an event row as JSON (from `operationJsonSql`/`eventJsonSql`, or off the
 * wire), and their conversion back to the shapes Prisma returns, so both paths feed the same GraphQL
 * types.
 *
 * Rows returned by writes and published on the bus leave out values of more than
 * `INLINE_MAX_BYTES` (an input, a result or an event's data may be a megabyte): each would otherwise
 * be parsed, serialized, published and parsed again on the event loop at every event of the
 * operation. Whoever needs one reads it from the database (src/operations/heavy.ts).
 */
export interface OperationJson {
  id: string;
  type: string;
  /** Absent when larger than INLINE_MAX_BYTES. */
  input?: unknown;
  ownerId: string;
  status: OperationStatus;
  progressCurrent: number;
  progressTotal: number | null;
  progressMessage: string | null;
  attempt: number;
  /** Absent when larger than INLINE_MAX_BYTES. */
  result?: unknown;
  error: unknown;
  sequence: number;
  idempotencyKey: string | null;
  inputHash: string | null;
  jobId: string | null;
  workerId: string | null;
  claimId: string | null;
  collectionId: string | null;
  batchId: string | null;
  batchItemId: string | null;
  compensatedAt: string | null;
  cancelRequestedAt: string | null;
  requestId: string | null;
  retryOfId?: string | null;
  scheduleId?: string | null;
  scheduledFor?: string | null;
  creditCost: number;
  /** Absent only in messages of instances older than the column. */
  onPublicCollection?: boolean;
  nextAttemptAt: string | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  updatedAt: string;
}

export interface EventJson {
  id: string | number;
  operationId: string;
  sequence: number;
  kind: string;
  status: OperationStatus;
  progressCurrent: number;
  progressTotal: number | null;
  message: string | null;
  /** Absent when larger than INLINE_MAX_BYTES. */
  data?: unknown;
  createdAt: string;
  /** The writing transaction's id (xid8 as text); absent only in messages of older instances. */
  xid?: string;
}

/** Values of more than this many bytes of JSON text are left out of returned and published rows. */
export const INLINE_MAX_BYTES = 8192;

/**
 * SQL: `column` when `alias.column` is larger than INLINE_MAX_BYTES, else '' (no key). The stored
 * size answers first without printing the value; a compressed value is measured as text.
 */
const ifHeavy = (alias: string, column: string) =>
  `CASE WHEN pg_column_size(${alias}.${column}) > ${INLINE_MAX_BYTES} OR octet_length(${alias}.${column}::text) > ${INLINE_MAX_BYTES} THEN '${column}' ELSE '' END`;

/** SQL: the operation row `alias` as jsonb, without an input or result of more than INLINE_MAX_BYTES. */
export const operationJsonSql = (alias: string): string =>
  `(to_jsonb(${alias}) - ${ifHeavy(alias, 'input')} - ${ifHeavy(alias, 'result')})`;

/** SQL: the event row `alias` as jsonb, without data of more than INLINE_MAX_BYTES. */
export const eventJsonSql = (alias: string): string => `(to_jsonb(${alias}) - ${ifHeavy(alias, 'data')})`;

/** What is published on an operation's channel after each committed event. */
export interface EventMessage {
  operation: OperationJson;
  event: EventJson;
}

const date = (value: string | null): Date | null => (value === null ? null : new Date(value));

/**
 * The Prisma shape of an operation row from JSON. An input or result the row left out stays
 * `undefined` (not null): GraphQL fields and readers load it with src/operations/heavy.ts.
 */
export function toOperation(json: OperationJson): Operation {
  return {
    ...json,
    collectionId: json.collectionId ?? null,
    batchId: json.batchId ?? null,
    batchItemId: json.batchItemId ?? null,
    compensatedAt: date(json.compensatedAt ?? null),
    cancelRequestedAt: date(json.cancelRequestedAt ?? null),
    requestId: json.requestId ?? null,
    retryOfId: json.retryOfId ?? null,
    scheduleId: json.scheduleId ?? null,
    scheduledFor: date(json.scheduledFor ?? null),
    creditCost: json.creditCost ?? 0,
    onPublicCollection: json.onPublicCollection ?? false,
    input: json.input as Operation['input'],
    result: json.result as Operation['result'],
    error: json.error as Operation['error'],
    createdAt: new Date(json.createdAt),
    startedAt: date(json.startedAt),
    completedAt: date(json.completedAt),
    nextAttemptAt: date(json.nextAttemptAt),
    updatedAt: new Date(json.updatedAt),
  };
}

/** The Prisma shape of an event row from JSON; data the row left out stays `undefined`. */
export function toEvent(json: EventJson): OperationEvent {
  return {
    ...json,
    id: BigInt(json.id),
    data: json.data as OperationEvent['data'],
    createdAt: new Date(json.createdAt),
  };
}

/** The channel that carries one operation's events. */
export const operationChannel = (operationId: string): string => `op:${operationId}`;

/**
 * The channels of live lists (`operationsUpdated`): every committed event is also published on its
 * owner's channel, on its collection's channel when it acts on one, and on the channel admins
 * follow, one message per channel whatever the number of subscribers.
 */
export const userChannel = (userId: string): string => `list:user:${userId}`;
export const collectionChannel = (collectionId: string): string => `list:collection:${collectionId}`;
export const ALL_OPERATIONS_CHANNEL = 'list:all';

/** The channel a batch's coordinator hears its items' events on. */
export const batchChannel = (batchId: string): string => `batch:${batchId}`;

/** The channel on which cancel requests reach every worker. */
export const CANCEL_CHANNEL = 'cancel';
