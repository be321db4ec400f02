// The GraphQL the dashboard sends (plain strings: the schema is in schema/schema.graphql).

export const OPERATION_FIELDS = `
  id type status attempt sequence createdAt startedAt completedAt batchItemId
  batch { id } collection { id name }
  progress { current total fraction message }
  error { code message }`;

const EVENT_FIELDS = 'sequence kind status message createdAt progress { current total fraction message }';

const OUTCOME_FIELDS = `batchOutcome {
  status counts { pending running completed failed skipped cancelled rolledBack }
  items { id status operationId reason rootCause error { message } } }`;

export const OPERATIONS = `query Operations($filter: OperationFilter, $first: Int) {
  operations(filter: $filter, first: $first) { edges { node { ${OPERATION_FIELDS} } } } }`;

export const OPERATION = `query Operation($id: ID!) {
  operation(id: $id) { ${OPERATION_FIELDS} input result events(first: 500) { ${EVENT_FIELDS} } } }`;

export const OPERATION_UPDATED = `subscription OperationUpdated($id: ID!, $afterSequence: Int) {
  operationUpdated(id: $id, afterSequence: $afterSequence) {
    sequence event { ${EVENT_FIELDS} } operation { ${OPERATION_FIELDS} } } }`;

export const OPERATION_UPDATED_FULL = `subscription OperationUpdatedFull($id: ID!, $afterSequence: Int) {
  operationUpdated(id: $id, afterSequence: $afterSequence) {
    sequence event { ${EVENT_FIELDS} } operation { ${OPERATION_FIELDS} result } } }`;

export const BATCH = `query Batch($id: ID!) {
  operation(id: $id) { ${OPERATION_FIELDS} input ${OUTCOME_FIELDS} events(first: 500) { ${EVENT_FIELDS} } } }`;

export const BATCH_UPDATED = `subscription BatchUpdated($id: ID!, $afterSequence: Int) {
  batchUpdated(id: $id, afterSequence: $afterSequence) {
    sequence event { ${EVENT_FIELDS} } operation { ${OPERATION_FIELDS} ${OUTCOME_FIELDS} } } }`;

export const START_OPERATION = `mutation Start($input: StartOperationInput!) {
  startOperation(input: $input) {
    __typename
    ... on StartOperationSuccess { operation { ${OPERATION_FIELDS} } }
    ... on Error { message }
  } }`;

export const CANCEL_OPERATION = `mutation Cancel($id: ID!, $reason: String) {
  cancelOperation(id: $id, reason: $reason) {
    __typename
    ... on CancelOperationSuccess { operation { ${OPERATION_FIELDS} } }
    ... on Error { message }
  } }`;

export const RETRY_OPERATION = `mutation Retry($id: ID!) {
  retryOperation(id: $id) {
    __typename
    ... on RetryOperationSuccess { operation { ${OPERATION_FIELDS} } }
    ... on Error { message }
  } }`;

export const START_BATCH = `mutation StartBatch($input: StartBatchInput!) {
  startBatch(input: $input) {
    __typename
    ... on StartBatchSuccess { batch { id } }
    ... on Error { message }
  } }`;

export const VIEWER = 'query Viewer { viewer { name } operationTypes { name description } }';

export const COLLECTIONS = `query Collections($first: Int) {
  collections(first: $first) { edges { node {
    id name status documentCount chunkCount language isPublic updatedAt owner { name } } } } }`;

export const SEARCH = `query Search($collectionId: ID!, $query: String!, $first: Int) {
  search(collectionId: $collectionId, query: $query, first: $first) {
    __typename
    ... on SearchSuccess { hits { score snippet document { id title source } } }
    ... on Error { message }
  } }`;
