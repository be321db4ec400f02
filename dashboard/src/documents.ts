// GraphQL the dashboard sends besides what @opsgraph/client covers (schema: schema/schema.graphql).

export const RETRY_OPERATION = `mutation Retry($id: ID!) {
  retryOperation(input: { id: $id }) {
    __typename
    ... on RetryOperationSuccess { operation { id } }
    ... on Error { message }
  } }`;

export const COLLECTIONS = `query Collections($first: Int) {
  collections(first: $first) { edges { node {
    id name status documentCount chunkCount language isPublic updatedAt owner { name } } } } }`;

export const SEARCH = `query Search($collectionId: ID!, $query: String!, $first: Int) {
  search(collectionId: $collectionId, query: $query, first: $first) {
    __typename
    ... on SearchSuccess { hits { score snippet document { id title source } } }
    ... on Error { message }
  } }`;
