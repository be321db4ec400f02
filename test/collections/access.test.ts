import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { graphql } from '../gql/index.ts';
import { type Collected, gql, subscribeSse, subscribeWs, tokenFor } from '../support/client.ts';
import {
  collectionFolders,
  createCollection,
  GetCollection,
  ListCollections,
  Search,
  settle,
  startOk,
} from '../support/collections.ts';
import {
  CancelOperation,
  GetOperation,
  ListOperations,
  NodeQuery,
  OperationUpdated,
} from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { uuidOf } from '../support/operations.ts';

const AccessStart = graphql(`
  mutation AccessStart($input: StartOperationInput!) {
    startOperation(input: $input) {
      __typename
      ... on StartOperationSuccess { operation { id status owner { name } } }
      ... on NotFoundError { resource id }
      ... on ForbiddenError { action }
    }
  }
`);

const AccessBatch = graphql(`
  mutation AccessBatch($input: StartBatchInput!) {
    startBatch(input: $input) {
      __typename
      ... on StartBatchSuccess { batch { id } }
      ... on NotFoundError { resource id }
      ... on ForbiddenError { action }
      ... on ValidationError { problems { path message } }
    }
  }
`);

const folders = collectionFolders();
const server = useServer({ sourcesRoot: folders.sourcesRoot, storageDir: folders.storageDir });

type Actor = 'alice' | 'bob' | 'carol' | 'root';
const tokens = {} as Record<Actor, string>;
/** alice's private collection P and public collection Q, with one word each to search for. */
const collections = {} as Record<'P' | 'Q', { id: string; word: string }>;

const inline = (collectionId: string, name: string, content: string) => ({
  collectionId,
  source: { kind: 'inline', name, documents: [{ externalId: `${name}-1`, content }] },
});

beforeAll(async () => {
  Object.assign(tokens, server.tokens, { carol: await tokenFor(server.db.url, 'carol') });
  for (const [key, isPublic, word] of [
    ['P', false, 'heron'],
    ['Q', true, 'kingfisher'],
  ] as const) {
    const id = await createCollection(server.app.url, tokens.alice, { name: `notes-${key}`, isPublic });
    const op = await startOk(server.app.url, tokens.alice, 'collection.append', inline(id, 'seed', word));
    expect((await settle(server.app.url, tokens.alice, op.id)).status).toBe('COMPLETED');
    collections[key] = { id, word };
  }
});

/**
 * Keeps the next operation on the collection PROCESSING until released. A writer waits in its first
 * write to the collection's row, locked FOR NO KEY UPDATE (new operations may still reference it);
 * an export, which takes no lock and only reads, waits for the Document table, locked exclusively.
 */
async function hold(collectionId: string, type: Scenario['type']) {
  const client = new pg.Client({ connectionString: server.db.url });
  await client.connect();
  await client.query('BEGIN');
  if (type === 'collection.export') await client.query('LOCK TABLE "Document" IN ACCESS EXCLUSIVE MODE');
  else
    await client.query(`SELECT 1 FROM "Collection" WHERE id = $1 FOR NO KEY UPDATE`, [uuidOf(collectionId)]);
  let released: Promise<void> | undefined;
  return () => {
    released ??= client.query('ROLLBACK').then(() => client.end());
    return released;
  };
}

const poll = (check: () => Promise<void>) => vi.waitFor(check, { timeout: 15_000, interval: 50 });

const waitForStatus = (id: string, status: string) =>
  poll(async () => {
    const read = await gql(server.app.url, GetOperation, { id }, tokens.root);
    expect(read.data?.operation?.status).toBe(status);
  });

/** Waits until the operation's handler has taken and let go of the collection (it saw the cancel). */
const waitForRelease = (collectionId: string, operationId: string) =>
  poll(async () => {
    const [row] = await server.db.query(
      `SELECT "lastOperationId" = $2 AND "busyOperationId" IS NULL AS released FROM "Collection" WHERE id = $1`,
      [uuidOf(collectionId), uuidOf(operationId)],
    );
    expect(row?.released).toBe(true);
  });

async function counts() {
  const [row] = await server.db.query(
    `SELECT (SELECT count(*) FROM "Operation") AS operations, (SELECT count(*) FROM "OperationEvent") AS events,
            (SELECT count(*) FROM pgboss.job) AS jobs`,
  );
  return row;
}

const errorCodes = (sub: Collected<unknown>) =>
  (sub.errors.flat() as { extensions?: { code?: string } }[]).map((error) => error.extensions?.code);

/** What an actor may do with an operation (the test names read "<actor> (<role>) may <this>"). */
const CANCEL = 'see and cancel it';
const SEE = 'see it but not cancel it';
const NOTHING = 'neither see nor cancel it';
type May = typeof CANCEL | typeof SEE | typeof NOTHING;

interface Scenario {
  title: string;
  collection: 'P' | 'Q';
  starter: Actor;
  type: 'collection.append' | 'collection.export';
  actors: [Actor, string, May][];
}

const scenarios: Scenario[] = [
  {
    title: "root's append to alice's private collection",
    collection: 'P',
    starter: 'root',
    type: 'collection.append',
    actors: [
      ['root', 'operation owner, an admin', CANCEL],
      ['alice', 'collection owner', CANCEL],
      ['bob', 'another user', NOTHING],
    ],
  },
  {
    title: "alice's append to her private collection",
    collection: 'P',
    starter: 'alice',
    type: 'collection.append',
    actors: [
      ['alice', 'operation and collection owner', CANCEL],
      ['root', 'admin', CANCEL],
      ['carol', 'another user', NOTHING],
    ],
  },
  {
    title: "carol's export of alice's public collection",
    collection: 'Q',
    starter: 'carol',
    type: 'collection.export',
    actors: [
      ['carol', 'operation owner', CANCEL],
      ['alice', 'collection owner', CANCEL],
      ['root', 'admin', CANCEL],
      ['bob', 'another user', SEE],
    ],
  },
];

/** Starts the scenario's operation on its held collection, runs `check`, then cancels and lets go. */
async function whileProcessing(
  scenario: Scenario,
  check: (id: string, collectionId: string) => Promise<void>,
) {
  const collectionId = collections[scenario.collection].id;
  const release = await hold(collectionId, scenario.type);
  try {
    const input =
      scenario.type === 'collection.export' ? { collectionId } : inline(collectionId, 'extra', 'more');
    const op = await startOk(server.app.url, tokens[scenario.starter], scenario.type, input);
    await waitForStatus(op.id, 'PROCESSING');
    await check(op.id, collectionId);
    // The starter cancels what the actor did not (an IllegalTransitionError when already cancelled).
    await gql(server.app.url, CancelOperation, { id: op.id }, tokens[scenario.starter]);
    await waitForStatus(op.id, 'CANCELLED');
    await release();
    if (scenario.type !== 'collection.export') await waitForRelease(collectionId, op.id);
  } finally {
    await release();
  }
}

/** operation(id) and node(id): the operation, or null and no error. */
async function expectRead(id: string, token: string, owner: Actor | null) {
  const read = await gql(server.app.url, GetOperation, { id }, token);
  const node = await gql(server.app.url, NodeQuery, { id }, token);
  if (owner) {
    expect(read.data?.operation).toMatchObject({ id, status: 'PROCESSING', owner: { name: owner } });
    expect(node).toStrictEqual({ status: 200, data: { node: { id, status: 'PROCESSING' } } });
  } else {
    expect(read).toStrictEqual({ status: 200, data: { operation: null } });
    expect(node).toStrictEqual({ status: 200, data: { node: null } });
  }
}

/** operations, unfiltered and filtered by the collection. */
async function expectListed(id: string, collectionId: string, token: string, sees: boolean) {
  const list = async (filter?: { collectionId: string }) => {
    const { data } = await gql(server.app.url, ListOperations, { first: 100, filter }, token);
    return data!.operations.edges.map((edge) => edge.node.id);
  };
  expect((await list()).includes(id)).toBe(sees);
  // Hidden: nothing on the (private) collection shows, not even other users' operations on it.
  if (sees) expect(await list({ collectionId })).toContain(id);
  else expect(await list({ collectionId })).toEqual([]);
}

/** operationUpdated over WebSocket and SSE: the current state first, or NOT_FOUND and no data. */
async function expectSubscription(id: string, token: string, sees: boolean) {
  for (const subscribe of [subscribeWs, subscribeSse]) {
    const sub = subscribe(server.app.url, OperationUpdated, { id }, token);
    if (sees) {
      const [first] = await sub.waitFor(1);
      sub.close();
      expect(sub.errors).toEqual([]);
      expect(first!.operationUpdated.event).toBeNull();
      expect(first!.operationUpdated.operation).toMatchObject({ id, status: 'PROCESSING' });
    } else {
      await sub.done;
      expect(sub.messages).toEqual([]);
      expect(errorCodes(sub)).toEqual(['NOT_FOUND']);
    }
  }
}

/** cancelOperation: done, ForbiddenError (may see it), or NotFoundError (may not); refused leaves it running. */
async function expectCancel(id: string, actor: Actor, may: May) {
  const { data } = await gql(server.app.url, CancelOperation, { id }, tokens[actor]);
  if (may === CANCEL) {
    expect(data?.cancelOperation).toMatchObject({
      __typename: 'CancelOperationSuccess',
      operation: { id, status: 'CANCELLED', error: { message: `cancelled by ${actor}` } },
    });
    return;
  }
  const refusal = may === SEE ? { __typename: 'ForbiddenError' } : { __typename: 'NotFoundError', id };
  expect(data?.cancelOperation).toMatchObject(refusal);
  const after = await gql(server.app.url, GetOperation, { id }, tokens.root);
  expect(after.data?.operation?.status).toBe('PROCESSING');
}

describe.each(scenarios)('$title', (scenario) => {
  it.each(scenario.actors)('%s (%s) may %s', async (actor, _, may) => {
    await whileProcessing(scenario, async (id, collectionId) => {
      await expectRead(id, tokens[actor], may === NOTHING ? null : scenario.starter);
      await expectListed(id, collectionId, tokens[actor], may !== NOTHING);
      await expectSubscription(id, tokens[actor], may !== NOTHING);
      await expectCancel(id, actor, may);
    });
  });
});

describe('a collection: collection(id), node(id), collections and search', () => {
  const cells: [string, Actor, 'P' | 'Q', boolean][] = [
    ['alice sees her private collection', 'alice', 'P', true],
    ['alice sees her public collection', 'alice', 'Q', true],
    ["root (admin) sees alice's private collection", 'root', 'P', true],
    ["bob sees alice's public collection", 'bob', 'Q', true],
    ["bob does not see alice's private collection", 'bob', 'P', false],
    ["carol does not see alice's private collection", 'carol', 'P', false],
  ];

  it.each(cells)('%s', async (_, actor, key, visible) => {
    const { url } = server.app;
    const token = tokens[actor];
    const { id, word } = collections[key];
    const one = await gql(url, GetCollection, { id }, token);
    const node = await gql(url, NodeQuery, { id }, token);
    const list = await gql(url, ListCollections, { first: 100 }, token);
    const found = await gql(url, Search, { collectionId: id, query: word }, token);
    const listed = list.data!.collections.edges.map((edge) => edge.node.id);
    expect(listed.includes(id)).toBe(visible);
    if (visible) {
      expect(one.data?.collection).toMatchObject({ id, owner: { name: 'alice' }, isPublic: key === 'Q' });
      expect(node).toStrictEqual({ status: 200, data: { node: { id } } });
      expect(found.data?.search).toMatchObject({
        __typename: 'SearchSuccess',
        hits: [{ document: { source: 'seed' } }],
      });
    } else {
      expect(one).toStrictEqual({ status: 200, data: { collection: null } });
      expect(node).toStrictEqual({ status: 200, data: { node: null } });
      expect(found.data?.search).toEqual({
        __typename: 'NotFoundError',
        message: expect.any(String),
        resource: 'Collection',
      });
    }
  });
});

describe('starting an operation on a collection', () => {
  const inputs: Record<string, (collectionId: string) => Record<string, unknown>> = {
    'collection.append': (id) => inline(id, 'intruder', 'planted text'),
    'collection.index': (id) => inline(id, 'intruder', 'planted text'),
    'collection.reindex': (id) => ({ collectionId: id, chunkSize: 500 }),
    'collection.removeSource': (id) => ({ collectionId: id, source: 'seed' }),
    'collection.delete': (id) => ({ collectionId: id }),
    'collection.export': (id) => ({ collectionId: id }),
  };
  const writes = Object.keys(inputs).filter((type) => type !== 'collection.export');
  const refusals = [
    ...Object.keys(inputs).map((type) => [type, 'P', 'NotFoundError'] as const),
    ...writes.map((type) => [type, 'Q', 'ForbiddenError'] as const),
  ];

  it.each(refusals)('refuses bob %s on collection %s with %s, creating nothing', async (type, key, error) => {
    const { id } = collections[key];
    const before = await counts();
    const { data } = await gql(
      server.app.url,
      AccessStart,
      { input: { type, input: inputs[type]!(id) } },
      tokens.bob,
    );
    expect(data?.startOperation).toEqual(
      error === 'NotFoundError'
        ? { __typename: error, resource: 'Collection', id }
        : { __typename: error, action: expect.stringContaining(type) },
    );
    expect(await counts()).toEqual(before);
  });

  it.each(refusals)(
    'refuses bob a batch with a %s item on collection %s with the same %s, creating nothing',
    async (type, key, error) => {
      const { id } = collections[key];
      const before = await counts();
      const items = [
        { id: 'first', type: 'diagnostics.echo', input: { value: 'fine' } },
        { id: 'second', type, input: inputs[type]!(id), dependsOn: ['first'] },
      ];
      // Not atomic: some of these types have no compensation step, which an atomic batch refuses.
      const input = { items, atomic: false };
      const { data, errors } = await gql(server.app.url, AccessBatch, { input }, tokens.bob);
      expect(errors).toBeUndefined();
      expect(data?.startBatch).toEqual(
        error === 'NotFoundError'
          ? { __typename: error, resource: 'Collection', id }
          : { __typename: error, action: expect.stringContaining(type) },
      );
      expect(await counts()).toEqual(before);
    },
  );

  it("answers bob's start on a private collection exactly as on one that does not exist", async () => {
    const start = async (collectionId: string) => {
      const input = { type: 'collection.export', input: { collectionId } };
      return (await gql(server.app.url, AccessStart, { input }, tokens.bob)).data?.startOperation;
    };
    const missing = Buffer.from(`Collection:${randomUUID()}`).toString('base64');
    const notFound = (id: string) => ({ __typename: 'NotFoundError', resource: 'Collection', id });
    expect(await start(collections.P.id)).toEqual(notFound(collections.P.id));
    expect(await start(missing)).toEqual(notFound(missing));
  });

  it("lets bob export alice's public collection (a read)", async () => {
    const op = await startOk(server.app.url, tokens.bob, 'collection.export', {
      collectionId: collections.Q.id,
    });
    const done = await settle(server.app.url, tokens.bob, op.id);
    expect(done).toMatchObject({ status: 'COMPLETED', owner: { name: 'bob' }, result: { documentCount: 1 } });
  });

  it("takes no writer's lock for another user's export, so the owner's writes are never blocked", async () => {
    const release = await hold(collections.Q.id, 'collection.export');
    try {
      const exported = await startOk(server.app.url, tokens.bob, 'collection.export', {
        collectionId: collections.Q.id,
      });
      await waitForStatus(exported.id, 'PROCESSING');
      const [row] = await server.db.query(
        `SELECT status::text AS status, "busyOperationId" FROM "Collection" WHERE id = $1`,
        [uuidOf(collections.Q.id)],
      );
      expect(row).toEqual({ status: 'READY', busyOperationId: null });
      await release();
      const done = await settle(server.app.url, tokens.bob, exported.id);
      expect(done.status).toBe('COMPLETED');
    } finally {
      await release();
    }
  });
});
