import { describe, expect, it } from 'vitest';
import { useServer } from '../support/fixtures.ts';
import { uuidOf } from '../support/operations.ts';
import { ask, READ, RETRY, settle, start } from '../support/runs.ts';

const server = useServer();
const url = () => server.app.url;

const failing = { type: 'diagnostics.sleep', input: { steps: 1, stepMs: 0, failAtStep: 1 } };

describe('retryOperation', () => {
  it('retries a FAILED operation as a new linked one, with a replacement input, that completes', async () => {
    const failed = await start(url(), server.tokens.alice, failing);
    expect((await settle(url(), server.tokens.alice, failed)).status).toBe('FAILED');
    const data = await ask(url(), server.tokens.alice, RETRY, {
      id: failed,
      input: { steps: 2, stepMs: 10 },
    });
    expect(data.retryOperation).toMatchObject({
      __typename: 'RetryOperationSuccess',
      operation: { type: 'diagnostics.sleep', input: { steps: 2, stepMs: 10 }, retryOf: { id: failed } },
    });
    const retry = data.retryOperation.operation.id;
    expect(retry).not.toBe(failed);
    expect((await settle(url(), server.tokens.alice, retry)).status).toBe('COMPLETED');
    // Linked both ways.
    const old = (await ask(url(), server.tokens.alice, READ, { id: failed })).operation;
    expect(old).toMatchObject({ status: 'FAILED', retries: [{ id: retry }] });
  });

  it('retries with the old input when none is given, and validates a replacement like startOperation', async () => {
    const failed = await start(url(), server.tokens.alice, failing);
    await settle(url(), server.tokens.alice, failed);
    const bad = await ask(url(), server.tokens.alice, RETRY, { id: failed, input: { steps: -1, stepMs: 0 } });
    expect(bad.retryOperation.__typename).toBe('ValidationError');
    expect(bad.retryOperation.problems[0].path).toEqual(['input', 'steps']);
    const again = await ask(url(), server.tokens.alice, RETRY, { id: failed });
    expect(again.retryOperation.operation.input).toEqual(failing.input);
    // Nothing was created by the refused one: one retry only.
    const old = (await ask(url(), server.tokens.alice, READ, { id: failed })).operation;
    expect(old.retries).toEqual([{ id: again.retryOperation.operation.id }]);
  });

  it('refuses a COMPLETED (and a running) operation with IllegalTransitionError', async () => {
    const done = await start(url(), server.tokens.alice, {
      type: 'diagnostics.sleep',
      input: { steps: 1, stepMs: 0 },
    });
    expect((await settle(url(), server.tokens.alice, done)).status).toBe('COMPLETED');
    const data = await ask(url(), server.tokens.alice, RETRY, { id: done });
    expect(data.retryOperation).toEqual({
      __typename: 'IllegalTransitionError',
      from: 'COMPLETED',
      to: 'PENDING',
    });
    const running = await start(url(), server.tokens.alice, {
      type: 'diagnostics.sleep',
      input: { steps: 1, stepMs: 60_000 },
    });
    const refused = await ask(url(), server.tokens.alice, RETRY, { id: running });
    expect(refused.retryOperation.__typename).toBe('IllegalTransitionError');
    await ask(
      url(),
      server.tokens.alice,
      'mutation($id: ID!) { cancelOperation(input: { id: $id }) { __typename } }',
      {
        id: running,
      },
    );
    // A CANCELLED one may be retried.
    const cancelled = await ask(url(), server.tokens.alice, RETRY, {
      id: running,
      input: { steps: 1, stepMs: 0 },
    });
    expect(cancelled.retryOperation.__typename).toBe('RetryOperationSuccess');
  });

  it('lets no other user retry: NotFound when they may not see it, as for cancel; an admin may', async () => {
    const failed = await start(url(), server.tokens.alice, failing);
    await settle(url(), server.tokens.alice, failed);
    const bob = await ask(url(), server.tokens.bob, RETRY, { id: failed });
    expect(bob.retryOperation).toEqual({ __typename: 'NotFoundError', resource: 'Operation' });
    const old = (await ask(url(), server.tokens.alice, READ, { id: failed })).operation;
    expect(old.retries).toEqual([]);
    const root = await ask(url(), server.tokens.root, RETRY, { id: failed, input: { steps: 1, stepMs: 0 } });
    expect(root.retryOperation.__typename).toBe('RetryOperationSuccess');
  });

  it('reruns only the items of a non-atomic batch that did not complete; completed ones keep their results', async () => {
    const items = [
      { id: 'a', type: 'diagnostics.echo', input: { value: 'kept' } },
      { id: 'b', type: 'diagnostics.echo', input: { failWith: 'b broke' } },
      { id: 'c', type: 'diagnostics.echo', input: { value: '$ref:a.value' }, dependsOn: ['a', 'b'] },
    ];
    const started = await ask(
      url(),
      server.tokens.alice,
      `mutation($input: StartBatchInput!) { startBatch(input: $input) { __typename ... on StartBatchSuccess { batch { id } } } }`,
      { input: { items, atomic: false, continueOnError: true } },
    );
    const batch = started.startBatch.batch.id;
    const first = await settle(url(), server.tokens.alice, batch);
    expect(first.result.status).toBe('PARTIALLY_COMPLETED');
    const rows = async (batchId: string) =>
      server.db.query<{
        item: string;
        status: string;
        result: unknown;
        startedAt: Date | null;
        kinds: string[];
      }>(
        `SELECT "batchItemId" AS item, status::text AS status, result, "startedAt",
                (SELECT array_agg(kind ORDER BY sequence) FROM "OperationEvent" e WHERE e."operationId" = o.id) AS kinds
           FROM "Operation" o WHERE "batchId" = $1 ORDER BY "batchItemId"`,
        [batchId],
      );
    const before = await rows(uuidOf(batch));

    const data = await ask(url(), server.tokens.alice, RETRY, { id: batch });
    expect(data.retryOperation.__typename, JSON.stringify(data)).toBe('RetryOperationSuccess');
    const retry = data.retryOperation.operation.id;
    expect(data.retryOperation.operation.retryOf).toEqual({ id: batch });
    const second = await settle(url(), server.tokens.alice, retry);
    const after = await rows(uuidOf(retry));
    const [a0, b0] = before;
    const [a1, b1, c1] = after;
    // a: copied COMPLETED with its result and times, never run again (no STARTED event).
    expect(a1).toMatchObject({
      item: 'a',
      status: 'COMPLETED',
      result: { value: 'kept' },
      kinds: ['CREATED', 'COMPLETED'],
    });
    expect(a1?.startedAt?.getTime()).toBe(a0?.startedAt?.getTime());
    // b ran again (a new attempt, after the first one), c waited for it again.
    expect(b1).toMatchObject({ item: 'b', status: 'FAILED' });
    expect(b1?.kinds).toContain('STARTED');
    expect(b1!.startedAt!.getTime()).toBeGreaterThan(b0!.startedAt!.getTime());
    expect(c1).toMatchObject({ item: 'c', status: 'CANCELLED' });
    expect(second.result).toMatchObject({ status: 'PARTIALLY_COMPLETED', failed: ['b'] });
    expect(second.result.items.a).toMatchObject({ status: 'COMPLETED', data: { value: 'kept' } });
  });
});
