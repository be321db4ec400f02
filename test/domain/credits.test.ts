import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { useApiAndWorkers } from '../support/fixtures.ts';
import { uuidOf, waitForRow, waitForTerminal } from '../support/operations.ts';
import {
  ask,
  CREDITS,
  ledgerCheck,
  ledgerOf,
  START,
  START_BATCH,
  userWithCredits,
} from './credit-support.ts';

/** An API process and worker processes (one is SIGKILLed mid-run), all on one database. */
const cluster = useApiAndWorkers();

const start = async (token: string, type: string, input: Record<string, unknown>) => {
  const { data } = await ask(cluster.api.url, START, { input: { type, input } }, token);
  return data?.startOperation;
};

describe('the credits ledger', () => {
  it('refuses a start the balance does not cover with InsufficientCreditsError, creating nothing', async () => {
    const token = await userWithCredits(cluster.db.url, 'poor', 2);
    // Each sleep costs 1; a batch of 3 costs its items and itself (the batch type costs 0): 3.
    const ok = await start(token, 'diagnostics.sleep', { steps: 1000, stepMs: 1000 });
    expect(ok.__typename).toBe('StartOperationSuccess');
    const batch = await ask(
      cluster.api.url,
      START_BATCH,
      {
        input: {
          atomic: false,
          items: ['a', 'b', 'c'].map((id) => ({
            id,
            type: 'diagnostics.sleep',
            input: { steps: 0, stepMs: 0 },
          })),
        },
      },
      token,
    );
    expect(batch.data?.startBatch).toEqual({
      __typename: 'InsufficientCreditsError',
      required: 3,
      available: 1,
    });
    const two = await start(token, 'diagnostics.sleep', { steps: 0, stepMs: 0 });
    expect(two.__typename).toBe('StartOperationSuccess');
    const three = await start(token, 'diagnostics.sleep', { steps: 0, stepMs: 0 });
    expect(three).toMatchObject({ __typename: 'InsufficientCreditsError', required: 1, available: 0 });
    const [owned] = await cluster.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "Operation" o JOIN "User" u ON u.id = o."ownerId" WHERE u.name = 'poor'`,
    );
    expect(owned?.n).toBe(2);
    const { data } = await ask(cluster.api.url, CREDITS, {}, token);
    expect(data?.viewer.credits).toEqual({ balance: 0, reserved: 2 });
    expect(data?.viewer.creditLedger.edges.map((e: { node: { kind: string } }) => e.node.kind)).toEqual([
      'RESERVE',
      'RESERVE',
      'GRANT',
    ]);
  });

  it('COMPLETED consumes, FAILED and CANCELLED refund — each exactly once', async () => {
    await cluster.spawnWorker('w');
    const token = await userWithCredits(cluster.db.url, 'payer', 10);
    const done = uuidOf((await start(token, 'diagnostics.sleep', { steps: 1, stepMs: 10 })).operation.id);
    const failed = uuidOf(
      (await start(token, 'diagnostics.sleep', { steps: 3, stepMs: 10, failAtStep: 2 })).operation.id,
    );
    const running = await start(token, 'diagnostics.sleep', { steps: 600, stepMs: 100 });
    const cancelled = uuidOf(running.operation.id);
    await waitForRow(cluster.db, cancelled, (row) => row.status === 'PROCESSING', 15_000, 'PROCESSING');
    const cancel = await ask(
      cluster.api.url,
      'mutation($id: ID!) { cancelOperation(input: { id: $id }) { __typename } }',
      { id: running.operation.id },
      token,
    );
    expect(cancel.data?.cancelOperation.__typename).toBe('CancelOperationSuccess');
    expect((await waitForTerminal(cluster.db, done, 15_000)).status).toBe('COMPLETED');
    expect((await waitForTerminal(cluster.db, failed, 15_000)).status).toBe('FAILED');
    expect((await waitForTerminal(cluster.db, cancelled, 15_000)).status).toBe('CANCELLED');
    expect(await ledgerOf(cluster.db, done)).toEqual([
      { kind: 'RESERVE', amount: '1' },
      { kind: 'CONSUME', amount: '1' },
    ]);
    for (const id of [failed, cancelled]) {
      expect(await ledgerOf(cluster.db, id)).toEqual([
        { kind: 'RESERVE', amount: '1' },
        { kind: 'REFUND', amount: '1' },
      ]);
    }
    const { data } = await ask(cluster.api.url, CREDITS, {}, token);
    expect(data?.viewer.credits).toEqual({ balance: 9, reserved: 0 });
  });

  it('an idempotent replay reserves nothing more', async () => {
    const token = await userWithCredits(cluster.db.url, 'replayer', 5);
    const input = { type: 'diagnostics.sleep', input: { steps: 1000, stepMs: 1000 }, idempotencyKey: 'k1' };
    const first = await ask(cluster.api.url, START, { input }, token);
    const again = await ask(cluster.api.url, START, { input }, token);
    expect(again.data?.startOperation.operation.id).toBe(first.data?.startOperation.operation.id);
    const { data } = await ask(cluster.api.url, CREDITS, {}, token);
    expect(data?.viewer.credits).toEqual({ balance: 4, reserved: 1 });
    // The ledger pages newest first: RESERVE, then (after its cursor) the initial GRANT.
    const PAGE = `query($after: String) { viewer { creditLedger(first: 1, after: $after) {
      edges { node { kind amount } } pageInfo { hasNextPage endCursor } } } }`;
    const page1 = (await ask(cluster.api.url, PAGE, {}, token)).data?.viewer.creditLedger;
    expect(page1.edges).toEqual([{ node: { kind: 'RESERVE', amount: 1 } }]);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    const next = (await ask(cluster.api.url, PAGE, { after: page1.pageInfo.endCursor }, token)).data?.viewer
      .creditLedger;
    expect(next.edges).toEqual([{ node: { kind: 'GRANT', amount: 5 } }]);
  });

  it('grantCredits: admins only, typed errors, one GRANT row with the reason', async () => {
    const admin = await userWithCredits(cluster.db.url, 'banker', 0, true);
    const token = await userWithCredits(cluster.db.url, 'grantee', 0);
    const me = await ask(cluster.api.url, '{ viewer { id } }', {}, token);
    const userId = me.data?.viewer.id as string;
    const GRANT = `mutation($input: GrantCreditsInput!) { grantCredits(input: $input) {
      __typename
      ... on GrantCreditsSuccess { entry { kind amount balanceAfter reason } credits { balance reserved } }
      ... on ValidationError { problems { path message } }
    } }`;
    const denied = await ask(cluster.api.url, GRANT, { input: { userId, amount: 5, reason: 'x' } }, token);
    expect(denied.data?.grantCredits.__typename).toBe('ForbiddenError');
    const invalid = await ask(cluster.api.url, GRANT, { input: { userId, amount: 0, reason: 'x' } }, admin);
    expect(invalid.data?.grantCredits.problems[0].path).toEqual(['amount']);
    const granted = await ask(
      cluster.api.url,
      GRANT,
      { input: { userId, amount: 7, reason: 'welcome' } },
      admin,
    );
    expect(granted.data?.grantCredits).toEqual({
      __typename: 'GrantCreditsSuccess',
      entry: { kind: 'GRANT', amount: 7, balanceAfter: 7, reason: 'welcome' },
      credits: { balance: 7, reserved: 0 },
    });
  });

  it('a worker SIGKILLed mid-run: the retried one consumes once, the failed one refunds once', async () => {
    const token = await userWithCredits(cluster.db.url, 'survivor', 10);
    const w1 = await cluster.spawnWorker('w1');
    const flaky = uuidOf((await start(token, 'diagnostics.flaky', { steps: 30, stepMs: 250 })).operation.id);
    const slept = uuidOf((await start(token, 'diagnostics.sleep', { steps: 100, stepMs: 200 })).operation.id);
    for (const id of [flaky, slept]) {
      await waitForRow(
        cluster.db,
        id,
        (row) => row.status === 'PROCESSING' && row.workerId === w1.id,
        15_000,
        'on W1',
      );
    }
    await sleep(300);
    w1.process.child.kill('SIGKILL');
    await w1.process.exited;
    await cluster.spawnWorker('w2');
    const retried = await waitForTerminal(cluster.db, flaky, 90_000);
    expect(retried.status).toBe('COMPLETED');
    expect(retried.attempt).toBe(2);
    const lost = await waitForTerminal(cluster.db, slept, 60_000);
    expect(lost.status).toBe('FAILED');
    expect(lost.error?.code).toBe('WORKER_LOST');
    expect(await ledgerOf(cluster.db, flaky)).toEqual([
      { kind: 'RESERVE', amount: '1' },
      { kind: 'CONSUME', amount: '1' },
    ]);
    expect(await ledgerOf(cluster.db, slept)).toEqual([
      { kind: 'RESERVE', amount: '1' },
      { kind: 'REFUND', amount: '1' },
    ]);
  }, 150_000);

  it('the invariant holds for every user and operation', async () => {
    // Whatever earlier tests left unfinished is cancelled (and refunded) first.
    const [root] = await cluster.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Operation"`);
    expect(root?.n).toBeGreaterThan(0);
    const check = await ledgerCheck(cluster.db);
    console.log(
      `ledger invariant: ${check.users} users, ${check.operations} operations; ${check.badUsers.length} users and ${check.badOperations.length} operations off`,
    );
    expect(check.badUsers).toEqual([]);
    expect(check.badOperations).toEqual([]);
  });
});
