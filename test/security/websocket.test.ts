import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { App } from '../../src/app.ts';
import { issueToken } from '../../src/auth/viewer.ts';
import { createDb } from '../../src/db/prisma.ts';
import { startTestApp, TEST_JWT_SECRET } from '../support/app.ts';
import { gql, subscribeSse, subscribeWs } from '../support/client.ts';
import { CancelOperation, OperationUpdated, StartOperation } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { runWs, wsClient } from './limits-client.ts';

const server = useServer();

/** A graphql-ws client that has connected (acknowledged), or the close event that refused it. */
function connect(url: string, token?: string | null) {
  let closed!: (event: { code: number; reason: string }) => void;
  const closedEvent = new Promise<{ code: number; reason: string }>((resolve) => {
    closed = resolve;
  });
  let connected!: () => void;
  const ready = new Promise<void>((resolve) => {
    connected = resolve;
  });
  const client = wsClient(url, token, (event) => {
    const { code, reason } = event as CloseEvent;
    closed({ code, reason });
  });
  client.on('connected', () => connected());
  // A lazy client connects on its first subscribe: a subscription that stays open holds it.
  const first = runWs(client, 'subscription($id: ID!) { operationUpdated(id: $id) { sequence } }', {
    id: 'unknown',
  });
  void first;
  return { client, ready, closed: closedEvent };
}

/** Starts a 60 s operation of `token`'s user and returns its id. */
async function longOperation(url: string, token: string) {
  const response = await gql(
    url,
    StartOperation,
    { input: { type: 'diagnostics.sleep', input: { steps: 1, stepMs: 60_000 } } },
    token,
  );
  const result = response.data?.startOperation;
  if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
  return result.operation.id;
}

/** A client whose connection is held open by a live subscription to a long operation. */
async function holding(url: string, token: string) {
  const id = await longOperation(url, token);
  let closedWith: { code: number; reason: string } | undefined;
  const client = wsClient(url, token, (event) => {
    const { code, reason } = event as CloseEvent;
    closedWith = { code, reason };
  });
  const connected = new Promise<void>((resolve) => client.on('connected', () => resolve()));
  const live = runWs(client, 'subscription($id: ID!) { operationUpdated(id: $id) { sequence } }', { id });
  await Promise.race([connected, live.then(() => Promise.reject(new Error(`refused: ${closedWith?.code}`)))]);
  return { client, live, id, closedWith: () => closedWith };
}

describe('WebSocket connections', () => {
  it('refuses the 11th connection of one user with 4429, which graphql-ws does not retry; others are unaffected', async () => {
    const held = await Promise.all(
      Array.from({ length: 10 }, () => holding(server.app.url, server.tokens.alice)),
    );
    const eleventh = connect(server.app.url, server.tokens.alice);
    const refusal = await eleventh.closed;
    expect(refusal).toMatchObject({ code: 4429, reason: 'Too many connections for this user (limit 10)' });
    // Another user still connects, and alice's ten still work.
    const bob = await holding(server.app.url, server.tokens.bob);
    expect(await runWs(held[0]!.client, '{ viewer { name } }')).toEqual({
      results: [{ data: { viewer: { name: 'alice' } } }],
    });
    // Closing one frees its place.
    await held.pop()!.client.dispose();
    const again = await holding(server.app.url, server.tokens.alice);
    for (const { client } of [...held, bob, again]) await client.dispose();
    await eleventh.client.dispose();
  });

  it('closes an anonymous socket after connection_init with 4401', async () => {
    const anonymous = connect(server.app.url, null);
    expect(await anonymous.closed).toMatchObject({ code: 4401 });
    const bad = connect(server.app.url, 'not-a-token');
    expect(await bad.closed).toMatchObject({ code: 4401, reason: 'The bearer token is invalid or expired' });
    await anonymous.client.dispose();
    await bad.client.dispose();
  });

  it('fails only the subscription with a bad document; the socket and its other subscription go on', async () => {
    const { client, live, id, closedWith } = await holding(server.app.url, server.tokens.alice);
    const bad = [
      ['subscription { operationUpdated(id: ', 'GRAPHQL_PARSE_FAILED'],
      ['subscription { noSuchField }', 'GRAPHQL_VALIDATION_FAILED'],
      [`{ ${Array.from({ length: 60 }, (_, i) => `a${i}: viewer { name }`).join(' ')} }`, 'TOO_MANY_ALIASES'],
      [`{ viewer { name } } # ${'z'.repeat(100_000)}`, 'QUERY_TOO_LARGE'],
    ] as const;
    for (const [query, code] of bad) {
      const { error } = await runWs(client, query);
      const errors = error as { message: string; extensions?: { code?: string } }[];
      expect(Array.isArray(errors)).toBe(true);
      expect(errors[0]?.extensions?.code).toBe(code);
      expect(errors[0]!.message.length).toBeLessThan(300);
      expect(errors[0]!.message).not.toMatch(/at \w+ \(|node_modules/);
    }
    expect(closedWith()).toBeUndefined();
    // The live subscription is still there: cancelling its operation ends it normally.
    await gql(server.app.url, CancelOperation, { id, reason: 'test' }, server.tokens.alice);
    const ended = await live;
    expect(ended.error).toBeUndefined();
    expect(ended.results.length).toBeGreaterThanOrEqual(2);
    await client.dispose();
  });

  it('closes a connection with 4401 when its token expires, reaching the graphql-ws client within 1 s', async () => {
    const db = createDb(server.db.url, { poolSize: 1 });
    const token = await issueToken(db, TEST_JWT_SECRET, 'alice', undefined, { expiresIn: '2s' });
    await db.$disconnect();
    const expiresAt = (decodeJwt(token).exp as number) * 1000;
    const id = await longOperation(server.app.url, server.tokens.alice);
    const updates = subscribeWs(server.app.url, OperationUpdated, { id }, token);
    await updates.waitFor(1);
    await updates.done;
    const late = Date.now() - expiresAt;
    console.log(`expired token reached the client ${late} ms after exp`);
    const { code, reason } = updates.errors[0] as CloseEvent;
    expect({ code, reason }).toEqual({ code: 4401, reason: 'The bearer token expired' });
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(1000);
    // A new connection with it is refused at once, over WebSocket and HTTP alike.
    const again = connect(server.app.url, token);
    expect(await again.closed).toMatchObject({ code: 4401 });
    await again.client.dispose();
  });
});

describe('configured small limits', () => {
  let app: App & { url: string };
  beforeAll(async () => {
    app = await startTestApp(server.db.url, {
      wsMaxConnections: 3,
      wsMaxSubscriptionsPerConnection: 2,
      wsKeepAliveMs: 300,
      sseMaxStreamsPerUser: 2,
    });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('refuses sockets above the instance limit with 1013 and a reason', async () => {
    const held = [
      await holding(app.url, server.tokens.alice),
      await holding(app.url, server.tokens.bob),
      await holding(app.url, server.tokens.root),
    ];
    const fourth = connect(app.url, server.tokens.bob);
    expect(await fourth.closed).toMatchObject({
      code: 1013,
      reason: 'Server at its connection limit (3); retry later',
    });
    for (const { client } of held) await client.dispose();
    await fourth.client.dispose();
  });

  it('refuses a subscription above the per-connection limit, and only that one', async () => {
    const { client, id, closedWith } = await holding(app.url, server.tokens.alice);
    const second = runWs(client, 'subscription($id: ID!) { operationUpdated(id: $id) { sequence } }', { id });
    const third = await runWs(client, 'subscription($id: ID!) { operationUpdated(id: $id) { sequence } }', {
      id,
    });
    expect((third.error as { extensions: unknown }[])[0]?.extensions).toMatchObject({
      code: 'TOO_MANY_SUBSCRIPTIONS',
      limit: 2,
      measured: 3,
    });
    expect(closedWith()).toBeUndefined();
    void second;
    await client.dispose();
  });

  it('drops a peer that does not answer pings', async () => {
    const socket = new WebSocket(app.url.replace(/^http/, 'ws'), 'graphql-transport-ws', { autoPong: false });
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(
      JSON.stringify({
        type: 'connection_init',
        payload: { authorization: `Bearer ${server.tokens.alice}` },
      }),
    );
    const opened = Date.now();
    const code = await new Promise<number>((resolve) => socket.once('close', resolve));
    expect(code).toBe(1006); // terminated without a close frame
    expect(Date.now() - opened).toBeLessThan(3000);
  });

  it('refuses an SSE stream above the per-user limit with TOO_MANY_STREAMS', async () => {
    const id = await longOperation(app.url, server.tokens.alice);
    const streams = [
      subscribeSse(app.url, OperationUpdated, { id }, server.tokens.alice),
      subscribeSse(app.url, OperationUpdated, { id }, server.tokens.alice),
    ];
    await Promise.all(streams.map((stream) => stream.waitFor(1)));
    const third = subscribeSse(app.url, OperationUpdated, { id }, server.tokens.alice);
    await third.done;
    expect(JSON.stringify(third.errors)).toContain('TOO_MANY_STREAMS');
    // Another user is not counted against alice, and a closed stream frees its place.
    const bob = subscribeSse(
      app.url,
      OperationUpdated,
      { id: await longOperation(app.url, server.tokens.bob) },
      server.tokens.bob,
    );
    await bob.waitFor(1);
    streams.pop()!.close();
    await expect
      .poll(async () => {
        const next = subscribeSse(app.url, OperationUpdated, { id }, server.tokens.alice);
        const ok = await Promise.race([next.waitFor(1).then(() => true), next.done.then(() => false)]);
        next.close();
        return ok;
      })
      .toBe(true);
    for (const stream of [...streams, bob]) stream.close();
  });
});
