import { expect } from 'vitest';

/**
 * A result object as the tests read it: these documents are plain strings (not codegen'd), so
 * their fields are untyped.
 */
// biome-ignore lint/suspicious/noExplicitAny: results of untyped query strings
export type Result = Record<string, any>;

/** A GraphQL request over HTTP with a plain query string; returns `data`, failing on any error. */
export async function post<T = Result>(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  token?: string,
): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = (await response.json()) as { data?: T; errors?: unknown };
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data as T;
}

export const START = `
  mutation Start($input: StartOperationInput!) {
    startOperation(input: $input) {
      __typename
      ... on StartOperationSuccess { replayed operation { id status } }
      ... on QuotaExceededError { message quota limit retryAfterSeconds }
      ... on UnknownOperationTypeError { message type knownTypes }
      ... on Error { message }
    }
  }`;

export const START_BATCH = `
  mutation StartBatch($input: StartBatchInput!) {
    startBatch(input: $input) {
      __typename
      ... on StartBatchSuccess { batch { id status } plan { itemCount } }
      ... on QuotaExceededError { message quota limit retryAfterSeconds }
      ... on ValidationError { problems { path message } }
      ... on Error { message }
    }
  }`;

export const OPERATION = `
  query Operation($id: ID!) { operation(id: $id) { id status startedAt } }`;

export const CANCEL_BATCH = `
  mutation CancelBatch($id: ID!) { cancelBatch(input: { id: $id }) { __typename } }`;

export const OPERATION_TYPES = `query { operationTypes { name } }`;

/** Starts one operation and returns the startOperation result. */
export const start = (url: string, token: string, type: string, input: unknown, idempotencyKey?: string) =>
  post<{ startOperation: Result }>(url, START, { input: { type, input, idempotencyKey } }, token).then(
    (data) => data.startOperation,
  );

/** Submits a batch and returns the startBatch result. */
export const startBatch = (url: string, token: string, input: Record<string, unknown>) =>
  post<{ startBatch: Result }>(url, START_BATCH, { input }, token).then((data) => data.startBatch);
