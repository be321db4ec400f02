/**
 * Every GraphQL document the CLI sends, in one place, so a schema change (argument shapes, type
 * names) is adapted here alone. Plain strings: the CLI ships without codegen output.
 */

/** What the CLI shows of an operation, everywhere. */
const OPERATION_FIELDS = `
  id type status attempt sequence createdAt startedAt completedAt
  progress { current total fraction message }
  error { code message }
  result
`;

/**
 * The failure members of mutation unions all implement the Error interface; their message says
 * everything (a ValidationError's lists its problems with their paths).
 */
const ERROR_FIELDS = `
  ... on Error { message }
`;

export const START_OPERATION = `
  mutation CliStartOperation($input: StartOperationInput!) {
    startOperation(input: $input) {
      __typename
      ... on StartOperationSuccess { replayed operation { ${OPERATION_FIELDS} } }
      ... on UnknownOperationTypeError { knownTypes }
      ${ERROR_FIELDS}
    }
  }
`;

export const CANCEL_OPERATION = `
  mutation CliCancelOperation($input: CancelOperationInput!) {
    cancelOperation(input: $input) {
      __typename
      ... on CancelOperationSuccess { operation { ${OPERATION_FIELDS} } }
      ${ERROR_FIELDS}
    }
  }
`;

export const START_BATCH = `
  mutation CliStartBatch($input: StartBatchInput!) {
    startBatch(input: $input) {
      __typename
      ... on StartBatchSuccess { replayed plan { itemCount levels { level items } } batch { ${OPERATION_FIELDS} } }
      ${ERROR_FIELDS}
    }
  }
`;

export const GET_OPERATION = `
  query CliOperation($id: ID!) {
    operation(id: $id) { ${OPERATION_FIELDS} }
  }
`;

export const GET_BATCH_OUTCOME = `
  query CliBatchOutcome($id: ID!) {
    operation(id: $id) {
      ${OPERATION_FIELDS}
      batchOutcome {
        status
        counts { pending running completed failed skipped cancelled rolledBack }
        items { id status operationId error { code message } reason rootCause }
      }
    }
  }
`;

export const LIST_OPERATIONS = `
  query CliOperations($filter: OperationFilter, $first: Int, $after: String) {
    operations(filter: $filter, first: $first, after: $after) {
      edges { node { ${OPERATION_FIELDS} } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

/** The update fields both subscriptions carry. */
const UPDATE_FIELDS = `
  sequence
  event { sequence kind status message data progress { current total fraction message } }
  operation { ${OPERATION_FIELDS} }
`;

export const OPERATION_UPDATED = `
  subscription CliOperationUpdated($id: ID!, $afterSequence: Int) {
    operationUpdated(id: $id, afterSequence: $afterSequence) { ${UPDATE_FIELDS} }
  }
`;

export const BATCH_UPDATED = `
  subscription CliBatchUpdated($id: ID!, $afterSequence: Int) {
    batchUpdated(id: $id, afterSequence: $afterSequence) { ${UPDATE_FIELDS} }
  }
`;

/** The operation statuses (the schema's OperationStatus enum). */
export const OPERATION_STATUSES = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];

/** How far an operation has got. */
export interface ProgressView {
  current: number;
  total: number | null;
  fraction: number | null;
  message: string | null;
}

/** An operation as the documents above select it. */
export interface OperationView {
  id: string;
  type: string;
  status: OperationStatus;
  attempt: number;
  sequence: number;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  progress: ProgressView;
  error: { code: string; message: string } | null;
  result: unknown;
}

/** One message of operationUpdated / batchUpdated. */
export interface UpdateView {
  sequence: number;
  event: {
    sequence: number;
    kind: string;
    status: OperationStatus;
    message: string | null;
    data: unknown;
    /** The progress as of this event (`operation` is the latest state, also while replaying). */
    progress: ProgressView;
  } | null;
  operation: OperationView;
}

/** A failure member of a mutation's result union. */
export interface ErrorView {
  __typename: string;
  message: string;
  knownTypes?: string[];
}
