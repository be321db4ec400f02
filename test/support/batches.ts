import { expect, vi } from 'vitest';
import { graphql } from '../gql/index.ts';
import { gql } from './client.ts';

/** GraphQL documents and helpers for the batch tests. */

export const StartBatch = graphql(`
  mutation StartBatch($input: StartBatchInput!) {
    startBatch(input: $input) {
      __typename
      ... on StartBatchSuccess {
        replayed
        plan { itemCount levels { level items } }
        batch { id status type }
      }
      ... on ValidationError { message problems { path message } }
      ... on IdempotencyKeyConflictError { message key }
    }
  }
`);

export const CancelBatch = graphql(`
  mutation CancelBatch($id: ID!, $reason: String) {
    cancelBatch(input: { id: $id, reason: $reason }) {
      __typename
      ... on CancelBatchSuccess { batch { id status } }
      ... on NotFoundError { message }
      ... on ForbiddenError { message }
      ... on IllegalTransitionError { message from to }
      ... on ValidationError { message }
    }
  }
`);

export const GetBatch = graphql(`
  query GetBatch($id: ID!) {
    operation(id: $id) {
      id
      status
      result
      error { code message }
      progress { current total }
      batchOutcome {
        status
        failed
        counts { pending running completed failed skipped cancelled rolledBack }
        items { id status operationId data error { code message } reason rootCause }
      }
      events { sequence kind status message data }
    }
  }
`);

type BatchInput = Parameters<typeof gql<unknown, { input: unknown }>>[2]['input'];

/** Starts a batch that must be accepted; returns its operation id and plan. */
export async function startBatchOk(url: string, token: string, input: BatchInput) {
  const response = await gql(url, StartBatch, { input: input as never }, token);
  const result = response.data?.startBatch;
  if (result?.__typename !== 'StartBatchSuccess' || !result.batch) throw new Error(JSON.stringify(response));
  return { id: result.batch.id, plan: result.plan };
}

/** Waits until the batch operation has ended and returns it with its outcome. */
export async function settleBatch(url: string, token: string, id: string, timeout = 30_000) {
  let last: Awaited<ReturnType<typeof readBatch>> | undefined;
  await vi.waitFor(
    async () => {
      last = await readBatch(url, token, id);
      expect(['COMPLETED', 'FAILED', 'CANCELLED']).toContain(last?.status);
    },
    { timeout, interval: 50 },
  );
  return last as NonNullable<typeof last>;
}

export const readBatch = async (url: string, token: string, id: string) =>
  (await gql(url, GetBatch, { id }, token)).data?.operation;

/** The outcome's items by their ids. */
export const itemsById = (batch: NonNullable<Awaited<ReturnType<typeof readBatch>>>) =>
  Object.fromEntries((batch.batchOutcome?.items ?? []).map((item) => [item.id, item]));
