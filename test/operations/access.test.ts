import { randomUUID } from 'node:crypto';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse } from 'graphql';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TEST_JWT_SECRET } from '../support/app.ts';
import { type Collected, gql, subscribeSse, subscribeWs } from '../support/client.ts';
import {
  CancelOperation,
  GetOperation,
  ListOperations,
  NodeQuery,
  OperationUpdated,
  StartOperation,
  Viewer,
} from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';

const server = useServer();

const OperationOwner = parse(
  'query OperationOwner($id: ID!) { operation(id: $id) { owner { id name isAdmin } } }',
) as TypedDocumentNode<{ operation: { owner: Record<string, unknown> } | null }, { id: string }>;

const sleepInput = (input: Record<string, unknown>) => ({ input: { type: 'diagnostics.sleep', input } });

async function start(token: string) {
  const response = await gql(server.app.url, StartOperation, sleepInput({ steps: 1, stepMs: 60_000 }), token);
  const result = response.data?.startOperation;
  if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
  return result.operation;
}

/** Starts an operation and waits until a worker runs it (then nothing changes for 60 s). */
async function startProcessing(token: string) {
  const operation = await start(token);
  await vi.waitFor(
    async () => {
      const read = await gql(server.app.url, GetOperation, { id: operation.id }, token);
      expect(read.data?.operation?.status).toBe('PROCESSING');
    },
    { timeout: 15_000, interval: 50 },
  );
  return operation;
}

const read = (id: string, token: string | null) => gql(server.app.url, GetOperation, { id }, token);
const errorCodes = (sub: Collected<unknown>) =>
  (sub.errors.flat() as { extensions?: { code?: string } }[]).map((error) => error.extensions?.code);

async function counts() {
  const [row] = await server.db.query(
    `SELECT (SELECT count(*) FROM "Operation") AS operations, (SELECT count(*) FROM "OperationEvent") AS events,
            (SELECT count(*) FROM pgboss.job) AS jobs`,
  );
  return row;
}

describe('another user', () => {
  let target: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    target = await startProcessing(server.tokens.alice);
  });
  afterAll(() => gql(server.app.url, CancelOperation, { id: target.id }, server.tokens.alice));

  it('gets null and no error for operation(id) and node(id) where the owner gets the operation', async () => {
    // toStrictEqual: the response has no `errors` key at all.
    const bobRead = await read(target.id, server.tokens.bob);
    expect(bobRead).toStrictEqual({ status: 200, data: { operation: null } });
    const bobNode = await gql(server.app.url, NodeQuery, { id: target.id }, server.tokens.bob);
    expect(bobNode).toStrictEqual({ status: 200, data: { node: null } });

    expect((await read(target.id, server.tokens.alice)).data?.operation?.id).toBe(target.id);
    const aliceNode = await gql(server.app.url, NodeQuery, { id: target.id }, server.tokens.alice);
    expect(aliceNode).toStrictEqual({ status: 200, data: { node: { id: target.id, status: 'PROCESSING' } } });
  });

  it('gets null and no error for node(id) of a User (not a Node); the user themself gets theirs as viewer', async () => {
    const alice = await gql(server.app.url, Viewer, {}, server.tokens.alice);
    const aliceId = alice.data!.viewer!.id!;
    expect(alice.data?.viewer).toEqual({ id: aliceId, name: 'alice', isAdmin: false });
    for (const token of [server.tokens.bob, server.tokens.alice]) {
      const node = await gql(server.app.url, NodeQuery, { id: aliceId }, token);
      expect(node).toStrictEqual({ status: 200, data: { node: null } });
    }
  });

  it('does not see the operation in the operations list, and sees only their own', async () => {
    const own = await start(server.tokens.bob);
    const bobList = await gql(server.app.url, ListOperations, { first: 100 }, server.tokens.bob);
    const bobIds = bobList.data!.operations.edges.map((edge) => edge.node.id);
    expect(bobIds).toContain(own.id);
    expect(bobIds).not.toContain(target.id);
    expect(bobList.data!.operations.edges.every((edge) => edge.node.owner.name === 'bob')).toBe(true);

    const aliceList = await gql(server.app.url, ListOperations, { first: 100 }, server.tokens.alice);
    const aliceIds = aliceList.data!.operations.edges.map((edge) => edge.node.id);
    expect(aliceIds).toContain(target.id);
    expect(aliceIds).not.toContain(own.id);
    await gql(server.app.url, CancelOperation, { id: own.id }, server.tokens.bob);
  });

  it('cannot subscribe over WebSocket or SSE: NOT_FOUND and no data', async () => {
    for (const subscribe of [subscribeWs, subscribeSse]) {
      const sub = subscribe(server.app.url, OperationUpdated, { id: target.id }, server.tokens.bob);
      await sub.done;
      expect(sub.messages).toEqual([]);
      expect(errorCodes(sub)).toEqual(['NOT_FOUND']);
    }
  });

  it('gets NotFoundError when cancelling, and the operation stays as it was', async () => {
    const before = await read(target.id, server.tokens.alice);
    const { data } = await gql(server.app.url, CancelOperation, { id: target.id }, server.tokens.bob);
    expect(data?.cancelOperation).toMatchObject({ __typename: 'NotFoundError', id: target.id });
    const after = await read(target.id, server.tokens.alice);
    expect(after.data).toEqual(before.data);
    expect(after.data?.operation?.status).toBe('PROCESSING');
  });
});

describe('an admin', () => {
  let target: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    target = await startProcessing(server.tokens.alice);
  });

  it("reads, finds by node(id) and lists another user's operation", async () => {
    const rootRead = await read(target.id, server.tokens.root);
    expect(rootRead.data?.operation).toMatchObject({ id: target.id, owner: { name: 'alice' } });
    const rootNode = await gql(server.app.url, NodeQuery, { id: target.id }, server.tokens.root);
    expect(rootNode).toStrictEqual({ status: 200, data: { node: { id: target.id, status: 'PROCESSING' } } });
    const list = await gql(server.app.url, ListOperations, { first: 100 }, server.tokens.root);
    expect(list.data!.operations.edges.map((edge) => edge.node.id)).toContain(target.id);
  });

  it("sees another user's id and admin flag as the owner of their operation", async () => {
    const alice = await gql(server.app.url, Viewer, {}, server.tokens.alice);
    const owner = await gql(server.app.url, OperationOwner, { id: target.id }, server.tokens.root);
    expect(owner).toStrictEqual({
      status: 200,
      data: { operation: { owner: { id: alice.data!.viewer!.id, name: 'alice', isAdmin: false } } },
    });
  });

  it("subscribes to another user's operation over WebSocket and SSE", async () => {
    for (const subscribe of [subscribeWs, subscribeSse]) {
      const sub = subscribe(server.app.url, OperationUpdated, { id: target.id }, server.tokens.root);
      const [first] = await sub.waitFor(1);
      sub.close();
      expect(sub.errors).toEqual([]);
      expect(first!.operationUpdated.event).toBeNull();
      expect(first!.operationUpdated.operation).toMatchObject({ id: target.id, status: 'PROCESSING' });
    }
  });

  it("cancels another user's operation", async () => {
    const { data } = await gql(server.app.url, CancelOperation, { id: target.id }, server.tokens.root);
    expect(data?.cancelOperation).toMatchObject({
      __typename: 'CancelOperationSuccess',
      operation: {
        id: target.id,
        status: 'CANCELLED',
        error: { code: 'CANCELLED', message: 'cancelled by root' },
      },
    });
    expect((await read(target.id, server.tokens.alice)).data?.operation?.status).toBe('CANCELLED');
  });
});

describe('a request without a token', () => {
  it('gets UNAUTHENTICATED and no data from operation, operations and startOperation', async () => {
    const operation = await startProcessing(server.tokens.alice);
    const before = await counts();
    const single = await gql(server.app.url, GetOperation, { id: operation.id }, null);
    const list = await gql(server.app.url, ListOperations, { first: 10 }, null);
    const started = await gql(server.app.url, StartOperation, sleepInput({ steps: 1, stepMs: 1 }), null);
    for (const response of [single, list, started]) {
      expect(response.errors?.map((error) => error.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    }
    expect(single.data).toEqual({ operation: null });
    expect(list.data).toBeNull();
    expect(started.data).toBeNull();
    expect(await counts()).toEqual(before);
    await gql(server.app.url, CancelOperation, { id: operation.id }, server.tokens.alice);
  });

  it('sees viewer as null', async () => {
    expect(await gql(server.app.url, Viewer, {}, null)).toEqual({ status: 200, data: { viewer: null } });
    const alice = await gql(server.app.url, Viewer, {}, server.tokens.alice);
    expect(alice.data?.viewer).toMatchObject({ name: 'alice', isAdmin: false });
  });
});

describe('a bad token', () => {
  const badTokens: Record<string, string> = {};
  beforeAll(async () => {
    const [alice] = await server.db.query<{ id: string }>(`SELECT id FROM "User" WHERE name = 'alice'`);
    const sign = (secret: string, subject: string, expires: number) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(subject)
        .setIssuedAt(expires - 3600)
        .setExpirationTime(expires)
        .sign(new TextEncoder().encode(secret));
    const now = Math.floor(Date.now() / 1000);
    badTokens.garbage = 'garbage';
    badTokens.wrongSignature = await sign('a-different-secret-0123456789', alice!.id, now + 3600);
    badTokens.expired = await sign(TEST_JWT_SECRET, alice!.id, now - 60);
    badTokens.unknownUser = await sign(TEST_JWT_SECRET, randomUUID(), now + 3600);
  });

  it('gets HTTP 401 with UNAUTHENTICATED and no data, and starts nothing', async () => {
    const before = await counts();
    for (const [name, token] of Object.entries(badTokens)) {
      const response = await gql(server.app.url, StartOperation, sleepInput({ steps: 1, stepMs: 1 }), token);
      expect({ name, status: response.status, data: response.data ?? null }).toEqual({
        name,
        status: 401,
        data: null,
      });
      expect(response.errors?.map((error) => error.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    }
    expect(await counts()).toEqual(before);
  });

  it('has its WebSocket connection refused with no data', async () => {
    const operation = await start(server.tokens.alice);
    for (const [name, token] of Object.entries(badTokens)) {
      const sub = subscribeWs(server.app.url, OperationUpdated, { id: operation.id }, token);
      await sub.done;
      expect({ name, messages: sub.messages }).toEqual({ name, messages: [] });
      // 4401: graphql-ws clients do not retry it, so the app hears of the bad token at once.
      expect(sub.errors).toMatchObject([{ code: 4401 }]);
    }
    await gql(server.app.url, CancelOperation, { id: operation.id }, server.tokens.alice);
  });

  it('gets HTTP 401 and no data over SSE', async () => {
    const operation = await start(server.tokens.alice);
    for (const [name, token] of Object.entries(badTokens)) {
      const sub = subscribeSse(server.app.url, OperationUpdated, { id: operation.id }, token);
      await sub.done;
      expect({ name, messages: sub.messages }).toEqual({ name, messages: [] });
      expect(sub.errors).toHaveLength(1);
      expect((sub.errors[0] as { response?: Response }).response?.status).toBe(401);
    }
    await gql(server.app.url, CancelOperation, { id: operation.id }, server.tokens.alice);
  });
});
