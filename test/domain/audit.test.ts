import { encodeGlobalID } from '@pothos/plugin-relay';
import { describe, expect, it } from 'vitest';
import { useServer } from '../support/fixtures.ts';
import { uuidOf } from '../support/operations.ts';
import { ask, type Data, START, userWithCredits } from './credit-support.ts';

const server = useServer({ auditDenialsPerMinute: 3, quotaStartsPerMinute: 40 });

const EVENTS = `query($filter: AuditEventFilter, $first: Int, $after: String) {
  auditEvents(filter: $filter, first: $first, after: $after) {
    edges { cursor node { action actorId operationId collectionId targetUserId data count createdAt } }
    pageInfo { hasNextPage endCursor }
  } }`;

const events = async (token: string, filter: Record<string, unknown> = {}, first = 100) => {
  const { data, errors } = await ask(server.app.url, EVENTS, { filter, first }, token);
  expect(errors).toBeUndefined();
  return ((data?.auditEvents.edges ?? []) as { node: Data }[]).map((edge) => edge.node);
};

const idOf = async (token: string) =>
  (await ask(server.app.url, '{ viewer { id } }', {}, token)).data?.viewer.id as string;

describe('the audit log', () => {
  it('lists a start, a cancel, a denied read by another user and a credit grant, each with actor and time', async () => {
    const { alice, bob, root } = server.tokens;
    const before = Date.now() - 1000;
    const started = (
      await ask(
        server.app.url,
        START,
        { input: { type: 'diagnostics.sleep', input: { steps: 600, stepMs: 100 } } },
        alice,
      )
    ).data?.startOperation;
    const opId = started.operation.id as string;
    const cancel = await ask(
      server.app.url,
      'mutation($id: ID!) { cancelOperation(input: { id: $id }) { __typename } }',
      { id: opId },
      alice,
    );
    expect(cancel.data?.cancelOperation.__typename).toBe('CancelOperationSuccess');
    // bob reads alice's operation: null for him, and the denied read is recorded.
    const read = await ask(
      server.app.url,
      'query($id: ID!) { operation(id: $id) { id } }',
      { id: opId },
      bob,
    );
    expect(read.data).toEqual({ operation: null });
    // bob tries to cancel it: NotFoundError, recorded too.
    const denied = await ask(
      server.app.url,
      'mutation($id: ID!) { cancelOperation(input: { id: $id }) { __typename } }',
      { id: opId },
      bob,
    );
    expect(denied.data?.cancelOperation.__typename).toBe('NotFoundError');
    const aliceId = await idOf(alice);
    const bobId = await idOf(bob);
    const rootId = await idOf(root);
    const grant = await ask(
      server.app.url,
      'mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { __typename } }',
      { input: { userId: bobId, amount: 10, reason: 'audit test' } },
      root,
    );
    expect(grant.data?.grantCredits.__typename).toBe('GrantCreditsSuccess');

    const all = await events(root);
    const find = (action: string, actorId: string) =>
      all.find((e) => e.action === action && e.actorId === actorId);
    expect(find('OPERATION_STARTED', aliceId)).toMatchObject({
      operationId: opId,
      data: { type: 'diagnostics.sleep' },
    });
    expect(find('OPERATION_CANCELLED', aliceId)).toMatchObject({ operationId: opId });
    const reads = all.filter((e) => e.action === 'ACCESS_DENIED' && e.actorId === bobId);
    expect(reads.map((e) => e.data.what).sort()).toEqual(['cancelOperation', 'operation']);
    expect(reads.every((e) => e.operationId === opId)).toBe(true);
    expect(find('CREDITS_GRANTED', rootId)).toMatchObject({
      targetUserId: bobId,
      data: { amount: 10, reason: 'audit test' },
    });
    for (const e of all) {
      expect(Date.parse(e.createdAt)).toBeGreaterThan(before);
      expect(Date.parse(e.createdAt)).toBeLessThanOrEqual(Date.now());
    }

    // A user sees only their own rows, whatever they filter on; admins filter freely.
    const mine = await events(bob);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((e) => e.actorId === bobId)).toBe(true);
    expect(await events(bob, { actorId: aliceId })).toEqual([]);
    expect(await events(bob, { operationId: opId })).toHaveLength(2);
    const aliceOnly = await events(root, { actorId: aliceId });
    expect(aliceOnly.map((e) => e.action).sort()).toEqual(['OPERATION_CANCELLED', 'OPERATION_STARTED']);
    expect(await events(root, { action: 'CREDITS_GRANTED' })).toHaveLength(1);
    expect(await events(root, { from: new Date(Date.now() + 60_000).toISOString() })).toEqual([]);
    expect(uuidOf(opId)).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('pages newest first with cursors', async () => {
    const all = await events(server.tokens.root);
    const first = await ask(server.app.url, EVENTS, { first: 2 }, server.tokens.root);
    const page = first.data?.auditEvents;
    expect(page.edges.map((e: { node: Data }) => e.node.action)).toEqual(
      all.slice(0, 2).map((e) => e.action),
    );
    const next = await ask(
      server.app.url,
      EVENTS,
      { first: 2, after: page.pageInfo.endCursor },
      server.tokens.root,
    );
    expect(next.errors).toBeUndefined();
    expect(next.data?.auditEvents.edges.map((e: { node: Data }) => e.node.action)).toEqual(
      all.slice(2, 4).map((e) => e.action),
    );
  });

  it('bounds refusal rows per user and minute: a flood of denied reads adds at most the bound, counted', async () => {
    const { bob, alice } = server.tokens;
    const started = (
      await ask(
        server.app.url,
        START,
        { input: { type: 'diagnostics.sleep', input: { steps: 0, stepMs: 0 } } },
        alice,
      )
    ).data?.startOperation;
    const [{ n: before }] = (await server.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "AuditEvent"`,
    )) as [{ n: number }];
    for (let i = 0; i < 30; i += 1) {
      const read = await ask(
        server.app.url,
        'query($id: ID!) { operation(id: $id) { id } }',
        { id: started.operation.id },
        bob,
      );
      expect(read.data).toEqual({ operation: null });
    }
    const [{ n: after }] = (await server.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "AuditEvent"`,
    )) as [{ n: number }];
    // The bound is 3 a minute (this file's config) and the first test used up to 2 already; a minute
    // boundary in the middle allows one more round of 3.
    expect(after - before).toBeLessThanOrEqual(6);
    const [{ total }] = (await server.db.query<{ total: number }>(
      `SELECT sum(count)::int AS total FROM "AuditEvent" WHERE action = 'ACCESS_DENIED' AND "operationId" = $1`,
      [uuidOf(started.operation.id)],
    )) as [{ total: number }];
    // Rows first recorded for this operation plus counts folded into earlier rows of the minute.
    const [{ counted }] = (await server.db.query<{ counted: number }>(
      `SELECT COALESCE(sum(count), 0)::int AS counted FROM "AuditEvent" WHERE action = 'ACCESS_DENIED'`,
    )) as [{ counted: number }];
    expect(counted).toBe(32);
    expect(total).toBeGreaterThanOrEqual(0);
    // The table refuses changes and deletions.
    await expect(server.db.query(`DELETE FROM "AuditEvent"`)).rejects.toThrow(/append-only/);
    await expect(server.db.query(`UPDATE "AuditEvent" SET "actorId" = gen_random_uuid()`)).rejects.toThrow(
      /append-only/,
    );
  });

  it('records a quota refusal after its rollback, with nothing else of the refused start', async () => {
    const token = await userWithCredits(server.db.url, 'hasty', 1000);
    let refused: Data | undefined;
    for (let i = 0; i < 41 && !refused; i += 1) {
      const answer = (
        await ask(server.app.url, START, { input: { type: 'diagnostics.echo', input: {} } }, token)
      ).data?.startOperation;
      if (answer.__typename !== 'StartOperationSuccess') refused = answer;
    }
    expect(refused?.__typename).toBe('QuotaExceededError');
    const rows = await server.db.query<{ action: string; n: number }>(
      `SELECT action::text AS action, count(*)::int AS n FROM "AuditEvent" a JOIN "User" u ON u.id = a."actorId"
        WHERE u.name = 'hasty' GROUP BY action ORDER BY action`,
    );
    expect(rows).toEqual([
      { action: 'OPERATION_STARTED', n: 40 },
      { action: 'QUOTA_EXCEEDED', n: 1 },
    ]);
  });

  it('records a denied read of a private collection by id', async () => {
    const [row] = await server.db.query<{ id: string }>(
      `INSERT INTO "Collection" (name, "ownerId") SELECT 'private-audit', id FROM "User" WHERE name = 'alice' RETURNING id`,
    );
    const id = encodeGlobalID('Collection', row!.id);
    // carol, not bob: bob used up this minute's refusal rows above (further ones are only counted).
    const carol = await userWithCredits(server.db.url, 'carol', 0);
    const read = await ask(server.app.url, 'query($id: ID!) { collection(id: $id) { id } }', { id }, carol);
    expect(read.data).toEqual({ collection: null });
    const mine = await events(carol, { collectionId: id });
    expect(mine).toMatchObject([{ action: 'ACCESS_DENIED', collectionId: id, data: { what: 'collection' } }]);
  });
});
