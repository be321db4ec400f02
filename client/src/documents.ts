import { graphql } from './gql/index.js';

/**
 * Every GraphQL document the client sends, in one place. Typed by codegen from
 * schema/schema.graphql (`npm run codegen` writes client/src/gql/).
 */

export const OperationFields = graphql(`
  fragment ClientOperationFields on Operation {
    id
    type
    status
    input
    attempt
    sequence
    result
    error { code message }
    progress { current total message fraction }
    owner { name }
    batchItemId
    createdAt
    startedAt
    completedAt
    updatedAt
  }
`);

export const BatchOutcomeFields = graphql(`
  fragment ClientBatchOutcomeFields on BatchOutcome {
    status
    failed
    counts { pending running completed failed skipped cancelled rolledBack }
    items { id status operationId data reason rootCause error { code message } }
  }
`);

export const EventFields = graphql(`
  fragment ClientEventFields on OperationEvent {
    sequence
    kind
    status
    message
    data
    createdAt
    progress { current total message fraction }
  }
`);

export const OperationUpdated = graphql(`
  subscription ClientOperationUpdated($id: ID!, $afterSequence: Int) {
    operationUpdated(id: $id, afterSequence: $afterSequence) {
      sequence
      event { ...ClientEventFields }
      operation { ...ClientOperationFields }
    }
  }
`);

export const BatchUpdated = graphql(`
  subscription ClientBatchUpdated($id: ID!, $afterSequence: Int) {
    batchUpdated(id: $id, afterSequence: $afterSequence) {
      sequence
      event { ...ClientEventFields }
      operation { ...ClientOperationFields batchOutcome { ...ClientBatchOutcomeFields } }
    }
  }
`);

export const ListOperations = graphql(`
  query ClientListOperations($filter: OperationFilter, $first: Int, $after: String) {
    operations(filter: $filter, first: $first, after: $after) {
      edges { cursor node { ...ClientOperationFields } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const StartOperation = graphql(`
  mutation ClientStartOperation($input: StartOperationInput!) {
    startOperation(input: $input) {
      __typename
      ... on StartOperationSuccess { replayed operation { ...ClientOperationFields } }
      ... on ValidationError { message omittedProblems problems { path message } }
      ... on UnknownOperationTypeError { message type knownTypes }
      ... on IdempotencyKeyConflictError { message key }
      ... on InsufficientCreditsError { message required available }
      ... on QuotaExceededError { message quota limit retryAfterSeconds }
      ... on NotFoundError { message id resource }
      ... on ForbiddenError { message action }
    }
  }
`);

export const CancelOperation = graphql(`
  mutation ClientCancelOperation($id: ID!, $reason: String) {
    cancelOperation(input: { id: $id, reason: $reason }) {
      __typename
      ... on CancelOperationSuccess { operation { ...ClientOperationFields } }
      ... on ValidationError { message omittedProblems problems { path message } }
      ... on NotFoundError { message id resource }
      ... on ForbiddenError { message action }
      ... on IllegalTransitionError { message from to }
    }
  }
`);

export const StartBatch = graphql(`
  mutation ClientStartBatch($input: StartBatchInput!) {
    startBatch(input: $input) {
      __typename
      ... on StartBatchSuccess {
        replayed
        plan { itemCount levels { level items } }
        batch { ...ClientOperationFields batchOutcome { ...ClientBatchOutcomeFields } }
      }
      ... on ValidationError { message omittedProblems problems { path message } }
      ... on IdempotencyKeyConflictError { message key }
      ... on InsufficientCreditsError { message required available }
      ... on QuotaExceededError { message quota limit retryAfterSeconds }
    }
  }
`);

/**
 * `operationsUpdated` (one message per change of any visible operation matching the filter,
 * resumable with `after: cursor`). A plain string with a hand-written type (OperationChange in
 * types.ts) until the field is in schema/schema.graphql; then it can move to graphql(`…`).
 */
export const OperationsUpdated = `
  subscription ClientOperationsUpdated($filter: OperationFilter, $after: String) {
    operationsUpdated(filter: $filter, after: $after) {
      cursor
      operation {
        id type status input attempt sequence result
        error { code message }
        progress { current total message fraction }
        owner { name }
        batchItemId createdAt startedAt completedAt updatedAt
      }
    }
  }
`;
