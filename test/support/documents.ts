import { graphql } from '../gql/index.ts';

/** The GraphQL documents the tests use, typed by codegen (npm run codegen). */

export const OperationFields = graphql(`
  fragment OperationFields on Operation {
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
    createdAt
    startedAt
    completedAt
  }
`);

export const StartOperation = graphql(`
  mutation StartOperation($input: StartOperationInput!) {
    startOperation(input: $input) {
      __typename
      ... on StartOperationSuccess { replayed operation { ...OperationFields } }
      ... on ValidationError { message problems { path message } }
      ... on UnknownOperationTypeError { message type knownTypes }
      ... on IdempotencyKeyConflictError { message key }
    }
  }
`);

export const CancelOperation = graphql(`
  mutation CancelOperation($id: ID!, $reason: String) {
    cancelOperation(input: { id: $id, reason: $reason }) {
      __typename
      ... on CancelOperationSuccess { operation { ...OperationFields } }
      ... on ValidationError { message problems { path message } }
      ... on NotFoundError { message id }
      ... on ForbiddenError { message }
      ... on IllegalTransitionError { message from to }
    }
  }
`);

export const GetOperation = graphql(`
  query GetOperation($id: ID!) {
    operation(id: $id) { ...OperationFields events { sequence kind status message progress { current total } } }
  }
`);

export const NodeQuery = graphql(`
  query Node($id: ID!) {
    node(id: $id) { id ... on Operation { status } }
  }
`);

export const ListOperations = graphql(`
  query ListOperations($filter: OperationFilter, $first: Int, $after: String, $last: Int, $before: String) {
    operations(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
      edges { cursor node { id type status createdAt owner { name } } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
`);

export const OperationTypes = graphql(`
  query OperationTypes {
    operationTypes {
      name description inputSchema retryLimit retryDelaySeconds retryBackoff softTimeoutSeconds hardTimeoutSeconds
    }
  }
`);

export const Viewer = graphql(`
  query Viewer { viewer { id name isAdmin } }
`);

export const OperationUpdated = graphql(`
  subscription OperationUpdated($id: ID!, $afterSequence: Int) {
    operationUpdated(id: $id, afterSequence: $afterSequence) {
      sequence
      event { sequence kind status message data progress { current total message } }
      operation { id status sequence result error { code message } progress { current total message } }
    }
  }
`);

export const ListOperationsDetailed = graphql(`
  query ListOperationsDetailed($first: Int) {
    operations(first: $first) {
      edges { node { id owner { name } events { sequence } } }
      pageInfo { hasNextPage }
    }
  }
`);

/** The smallest useful start: what a throughput client sends. */
export const StartTrivial = graphql(`
  mutation StartTrivial($input: StartOperationInput!) {
    startOperation(input: $input) {
      __typename
      ... on StartOperationSuccess { operation { id } }
    }
  }
`);

/** An operation with the retry fields and its whole audit trail (reliability tests). */
export const OperationAttempts = graphql(`
  query OperationAttempts($id: ID!) {
    operation(id: $id) {
      id status attempt nextAttemptAt result error { code message }
      events(first: 1000) { sequence kind status message data createdAt }
    }
  }
`);
