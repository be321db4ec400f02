import type {
  ClientBatchUpdatedSubscription,
  ClientCancelOperationMutation,
  ClientListOperationsQuery,
  ClientOperationFieldsFragment,
  ClientOperationUpdatedSubscription,
  ClientStartBatchMutation,
  ClientStartOperationMutation,
  OperationStatus,
} from './gql/graphql.js';

export type {
  BatchItemInput,
  BatchItemStatus,
  BatchStatus,
  OperationFilter,
  OperationStatus,
  StartBatchInput,
  StartOperationInput,
} from './gql/graphql.js';

/** An operation as the client reads it (fields of `ClientOperationFields` in documents.ts). */
export type Operation = ClientOperationFieldsFragment;
/** One message of `watchOperation`: the current state first (event null), then one per event. */
export type OperationUpdate = ClientOperationUpdatedSubscription['operationUpdated'];
/** One event of an operation (a transition or a persisted progress step). */
export type OperationEvent = NonNullable<OperationUpdate['event']>;
/** One message of `watchBatch`: like OperationUpdate, with the batch's live `batchOutcome`. */
export type BatchUpdate = ClientBatchUpdatedSubscription['batchUpdated'];
/** The batch operation with its outcome per item. */
export type BatchOperation = BatchUpdate['operation'];
export type StartOperationResult = ClientStartOperationMutation['startOperation'];
export type CancelOperationResult = ClientCancelOperationMutation['cancelOperation'];
export type StartBatchResult = ClientStartBatchMutation['startBatch'];
export type OperationsPage = ClientListOperationsQuery['operations'];

/**
 * One message of `watchOperations` (`operationsUpdated`): a change of one operation. Written by
 * hand until `operationsUpdated` is in schema/schema.graphql.
 */
export interface OperationChange {
  /** Opaque resume cursor: the stream resumes right after this message. */
  cursor: string;
  /** The operation as it is after this change. */
  operation: Operation;
}

/** COMPLETED, FAILED and CANCELLED: an operation in one of these never changes again. */
export const TERMINAL_STATUSES: readonly OperationStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];
export const isTerminal = (status: OperationStatus): boolean => TERMINAL_STATUSES.includes(status);
