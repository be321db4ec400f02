import { expect, vi } from 'vitest';

/** Raw GraphQL over HTTP for the tests of retry, scheduling and retention (loosely typed answers). */

// biome-ignore lint/suspicious/noExplicitAny: answers of hand-written queries
export type Data = Record<string, any>;

export async function ask(
  url: string,
  token: string | null,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<Data> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const answer = (await response.json()) as { data?: Data; errors?: unknown[] };
  expect(answer.errors, JSON.stringify(answer.errors)).toBeUndefined();
  return answer.data as Data;
}

export const START = `mutation($input: StartOperationInput!) { startOperation(input: $input) { __typename
  ... on StartOperationSuccess { operation { id status scheduledFor } }
  ... on ValidationError { problems { path message } } } }`;

export const RETRY = `mutation($id: ID!, $input: JSON) { retryOperation(input: { id: $id, input: $input }) { __typename
  ... on RetryOperationSuccess { operation { id status type input retryOf { id } } }
  ... on IllegalTransitionError { from to }
  ... on NotFoundError { resource }
  ... on ForbiddenError { action }
  ... on ValidationError { problems { path message } } } }`;

export const READ = `query($id: ID!) { operation(id: $id) { id status type result startedAt completedAt
  error { code } retryOf { id } retries { id } } }`;

/** Starts an operation that must be accepted; returns its global id. */
export async function start(url: string, token: string, input: Record<string, unknown>): Promise<string> {
  const data = await ask(url, token, START, { input });
  expect(data.startOperation.__typename, JSON.stringify(data)).toBe('StartOperationSuccess');
  return data.startOperation.operation.id;
}

/** Waits until the operation has one of `statuses` and returns it. */
export async function settle(
  url: string,
  token: string,
  id: string,
  statuses = ['COMPLETED', 'FAILED', 'CANCELLED'],
) {
  let last: Data | undefined;
  await vi.waitFor(
    async () => {
      last = (await ask(url, token, READ, { id })).operation;
      expect(statuses).toContain(last?.status);
    },
    { timeout: 20_000, interval: 50 },
  );
  return last as Data;
}
