import { readFileSync } from 'node:fs';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { encodeGlobalID } from '@pothos/plugin-relay';
import {
  buildSchema,
  type GraphQLOutputType,
  getNamedType,
  isInterfaceType,
  isLeafType,
  isObjectType,
  isUnionType,
  parse,
} from 'graphql';
import { beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import { subscribeWs, tokenFor } from '../support/client.ts';
import { collectionFolders, createCollection, settle, startOk } from '../support/collections.ts';
import { useServer } from '../support/fixtures.ts';
import { uuidOf } from '../support/operations.ts';

/**
 * The schema walk (ISSUE-9 point 1): every field of the printed schema whose type is an
 * Operation, Collection, Document, User or Schedule — through lists, non-null, connections, interfaces and
 * unions — has a probe below that reaches it as bob, a user without access to alice's data, and
 * proves he gets null / empty / NotFound (for User: only the name). A field added later without a
 * probe fails here with "no probe for Type.field — add one".
 */

const GUARDED = new Set(['Operation', 'Collection', 'Document', 'User', 'Schedule']);
const schema = buildSchema(readFileSync(new URL('../../schema/schema.graphql', import.meta.url), 'utf8'));

/** The guarded type a field leads to, or null. */
function leadsTo(type: GraphQLOutputType, depth = 0): string | null {
  const named = getNamedType(type);
  if (GUARDED.has(named.name)) return named.name;
  if (isInterfaceType(named) || isUnionType(named)) {
    return schema.getPossibleTypes(named).some((member) => GUARDED.has(member.name)) ? named.name : null;
  }
  // A connection leads where its edges' nodes lead.
  if (isObjectType(named) && depth < 2) {
    const inner = named.getFields()[depth === 0 ? 'edges' : 'node'];
    if (inner) return leadsTo(inner.type, depth + 1);
  }
  return null;
}

/** Every `Type.field` (on every object type, roots and union members included) that leads to one. */
function guardedFields(): string[] {
  const found: string[] = [];
  for (const type of Object.values(schema.getTypeMap())) {
    if (type.name.startsWith('__') || !isObjectType(type)) continue;
    for (const field of Object.values(type.getFields())) {
      if (leadsTo(field.type)) found.push(`${type.name}.${field.name}`);
    }
  }
  return found.sort();
}

/** Every field of User, for the check that another user shows only a name. */
const userFields = () => {
  const user = schema.getType('User');
  if (!isObjectType(user)) throw new Error('User is not an object type');
  const fields = Object.values(user.getFields());
  for (const field of fields) {
    if (!isLeafType(getNamedType(field.type)) && !USER_SELECTIONS[field.name]) {
      throw new Error(`User.${field.name} is not a scalar: extend the User check in this test`);
    }
  }
  return fields.map((field) => field.name);
};
/** What the User check selects of User's non-scalar fields (each must be null for another user). */
const USER_SELECTIONS: Record<string, string> = {
  credits: 'credits { balance reserved }',
  creditLedger: 'creditLedger(first: 5) { edges { node { id kind amount } } }',
};
const USER = () =>
  `{ ${userFields()
    .map((name) => USER_SELECTIONS[name] ?? name)
    .join(' ')} }`;

const folders = collectionFolders();
// The reconciler leaves alone the jobless PENDING operation (opS) the probes cancel, however long
// the probes before take.
const server = useServer({
  sourcesRoot: folders.sourcesRoot,
  storageDir: folders.storageDir,
  reconcileMinAgeSeconds: 3600,
});

/** The queries here are built at run time from the schema, so their answers are loosely typed. */
// biome-ignore lint/suspicious/noExplicitAny: answers of queries built at run time
type Data = Record<string, any>;

interface Answer {
  data?: Data | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function ask(query: string, variables: Record<string, unknown>, token: string | null): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(server.app.url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as Answer;
}

/** Asks as bob and returns the data; any GraphQL error fails the probe (a stale query, a crash). */
async function asBob(query: string, variables: Record<string, unknown> = {}) {
  const answer = await ask(query, variables, server.tokens.bob);
  expect(answer.errors, JSON.stringify(answer.errors)).toBeUndefined();
  return answer.data as Data;
}

/** Another user's User as bob gets it: the name, every other field null. */
function onlyName(user: Record<string, unknown>, name: string) {
  const fields = userFields();
  expect(Object.keys(user).sort()).toEqual([...fields].sort());
  for (const field of fields) expect(user[field], `User.${field}`).toBe(field === 'name' ? name : null);
}

/** alice's things (global ids) bob must not reach, and the ones he may. */
const ids = {} as Record<
  | 'P' // alice's private collection, with a document
  | 'Q' // alice's public collection
  | 'T' // alice's public collection, busy with opP
  | 'S' // alice's public collection with a pending operation, made private during a test
  | 'docP'
  | 'opP' // alice's operation on P
  | 'opQ' // alice's operation on Q: visible to bob
  | 'opS'
  | 'batch' // alice's batch: item a on Q (visible to bob), item b on P
  | 'itemA'
  | 'itemB'
  | 'echo' // alice's diagnostics.echo started with idempotency key KEY
  | 'echoBatch' // alice's batch started with idempotency key BATCH_KEY
  | 'bobOnP' // bob's own operation acting on alice's private P
  | 'bobBatch' // bob's batch holding one item of alice's (on P)
  | 'bobRetry' // bob's operation retrying alice's opP
  | 'aliceRetry' // alice's own operation retrying opQ (visible to bob)
  | 'aliceSchedule' // alice's schedule (visible to nobody else)
  | 'bobScheduled' // bob's operation linked to alice's schedule
  | 'bobSchedule' // bob's schedule, linked to a private operation of alice's
  | 'alice'
  | 'bob',
  string
>;
const KEY = 'visibility-shared-key';
const BATCH_KEY = 'visibility-shared-batch-key';
const uuid = {} as Record<'alice' | 'bob', string>;

const inline = (collectionId: string, name: string, content: string) => ({
  collectionId,
  source: { kind: 'inline', name, documents: [{ externalId: `${name}-1`, content }] },
});

async function insertOperation(row: Record<string, unknown>): Promise<string> {
  const columns = Object.keys(row);
  const [inserted] = await server.db.query<{ id: string }>(
    `INSERT INTO "Operation" (${columns.map((c) => `"${c}"`).join(', ')})
     VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id`,
    Object.values(row),
  );
  await server.db.query(
    `INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent")
     VALUES ($1, 1, 'CREATED', $2, 0)`,
    [inserted!.id, row.status ?? 'PENDING'],
  );
  return encodeGlobalID('Operation', inserted!.id);
}

async function startBatch(token: string, input: Record<string, unknown>) {
  const answer = await ask(
    `mutation($input: StartBatchInput!) { startBatch(input: $input) { __typename
       ... on StartBatchSuccess { replayed batch { id owner { name } } } ... on ValidationError { problems { path message } } } }`,
    { input },
    token,
  );
  return answer.data!.startBatch;
}

const echoItems = [
  { id: 'one', type: 'diagnostics.echo', input: { value: 1 } },
  { id: 'two', type: 'diagnostics.echo', input: { value: '$ref:one.value' }, dependsOn: ['one'] },
];

beforeAll(async () => {
  const { alice, bob } = server.tokens;
  for (const [name, token] of [
    ['alice', alice],
    ['bob', bob],
  ] as const) {
    const me = await ask('{ viewer { id } }', {}, token);
    ids[name] = me.data!.viewer.id;
    uuid[name] = uuidOf(ids[name]);
  }
  ids.P = await createCollection(server.app.url, alice, { name: 'private-P', isPublic: false });
  ids.Q = await createCollection(server.app.url, alice, { name: 'public-Q', isPublic: true });
  ids.T = await createCollection(server.app.url, alice, { name: 'public-T', isPublic: true });
  ids.S = await createCollection(server.app.url, alice, { name: 'public-S', isPublic: true });
  ids.opP = (await startOk(server.app.url, alice, 'collection.append', inline(ids.P, 'p', 'heron'))).id;
  ids.opQ = (await startOk(server.app.url, alice, 'collection.append', inline(ids.Q, 'q', 'kingfisher'))).id;
  for (const id of [ids.opP, ids.opQ]) {
    expect((await settle(server.app.url, alice, id)).status).toBe('COMPLETED');
  }
  const batch = await startBatch(alice, {
    atomic: false,
    continueOnError: true,
    items: [
      { id: 'a', type: 'collection.append', input: inline(ids.Q, 'a', 'osprey') },
      { id: 'b', type: 'collection.append', input: inline(ids.P, 'b', 'bittern') },
    ],
  });
  expect(batch.__typename, JSON.stringify(batch)).toBe('StartBatchSuccess');
  ids.batch = batch.batch.id;
  const echo = await ask(
    `mutation($input: StartOperationInput!) { startOperation(input: $input) {
       ... on StartOperationSuccess { operation { id } } } }`,
    { input: { type: 'diagnostics.echo', input: { value: 'alice' }, idempotencyKey: KEY } },
    alice,
  );
  ids.echo = echo.data!.startOperation.operation.id;
  const echoBatch = await startBatch(alice, { items: echoItems, idempotencyKey: BATCH_KEY });
  expect(echoBatch.__typename, JSON.stringify(echoBatch)).toBe('StartBatchSuccess');
  ids.echoBatch = echoBatch.batch.id;
  for (const id of [ids.batch, ids.echoBatch]) {
    expect((await settle(server.app.url, alice, id)).status).toBe('COMPLETED');
  }
  const items = await server.db.query<{ id: string; batchItemId: string }>(
    `SELECT id, "batchItemId" FROM "Operation" WHERE "batchId" = $1`,
    [uuidOf(ids.batch)],
  );
  for (const item of items)
    ids[item.batchItemId === 'a' ? 'itemA' : 'itemB'] = encodeGlobalID('Operation', item.id);
  const [doc] = await server.db.query<{ id: string }>(`SELECT id FROM "Document" WHERE "collectionId" = $1`, [
    uuidOf(ids.P),
  ]);
  ids.docP = encodeGlobalID('Document', doc!.id);

  // States the API does not make on its own, each leading from something bob may see to
  // something he may not.
  await server.db.query(`UPDATE "Collection" SET status = 'BUSY', "busyOperationId" = $1 WHERE id = $2`, [
    uuidOf(ids.opP),
    uuidOf(ids.T),
  ]);
  ids.bobOnP = await insertOperation({
    type: 'collection.export',
    input: '{}',
    ownerId: uuid.bob,
    collectionId: uuidOf(ids.P),
    status: 'COMPLETED',
    sequence: 1,
  });
  ids.opS = await insertOperation({
    type: 'diagnostics.sleep',
    input: '{"steps":1,"stepMs":1}',
    ownerId: uuid.alice,
    collectionId: uuidOf(ids.S),
    status: 'PENDING',
    sequence: 1,
  });
  ids.bobBatch = await insertOperation({
    type: 'batch',
    input: JSON.stringify({ atomic: false, items: [{ id: 'mine' }, { id: 'theirs' }] }),
    ownerId: uuid.bob,
    status: 'COMPLETED',
    sequence: 1,
  });
  for (const [item, owner, collectionId, value] of [
    ['mine', uuid.bob, null, 'bob-data'],
    ['theirs', uuid.alice, uuidOf(ids.P), 'alice-secret'],
  ] as const) {
    await insertOperation({
      type: 'diagnostics.echo',
      input: '{}',
      ownerId: owner,
      collectionId,
      batchId: uuidOf(ids.bobBatch),
      batchItemId: item,
      status: 'COMPLETED',
      result: JSON.stringify({ value }),
      error: JSON.stringify({ code: 'X', message: `${value} error` }),
      sequence: 1,
    });
  }
  // Retries (issue 10): bob's retry of alice's private operation, alice's private retry of opQ.
  // Created long ago, so they stay off the first pages the statement count below reads.
  const OLD = new Date('2020-01-01T00:00:00Z');
  ids.bobRetry = await insertOperation({
    type: 'collection.append',
    input: '{}',
    ownerId: uuid.bob,
    retryOfId: uuidOf(ids.opP),
    status: 'FAILED',
    sequence: 1,
    createdAt: OLD,
  });
  ids.aliceRetry = await insertOperation({
    type: 'diagnostics.echo',
    input: '{}',
    ownerId: uuid.alice,
    retryOfId: uuidOf(ids.opQ),
    status: 'COMPLETED',
    sequence: 1,
    createdAt: OLD,
  });
  // Schedules (issue 10).
  const schedule = async (ownerId: string, name: string) => {
    const [row] = await server.db.query<{ id: string }>(
      `INSERT INTO "Schedule" ("ownerId", name, cron, timezone, type, input)
       VALUES ($1, $2, '0 3 * * *', 'UTC', 'diagnostics.echo', '{}') RETURNING id`,
      [ownerId, name],
    );
    return row!.id;
  };
  const aliceSchedule = await schedule(uuid.alice, 'alice-nightly');
  ids.aliceSchedule = encodeGlobalID('Schedule', aliceSchedule);
  ids.bobScheduled = await insertOperation({
    type: 'diagnostics.echo',
    input: '{}',
    ownerId: uuid.bob,
    scheduleId: aliceSchedule,
    status: 'COMPLETED',
    sequence: 1,
    createdAt: OLD,
  });
  const bobSchedule = await schedule(uuid.bob, 'bob-nightly');
  ids.bobSchedule = encodeGlobalID('Schedule', bobSchedule);
  await insertOperation({
    type: 'diagnostics.echo',
    input: '{}',
    ownerId: uuid.alice,
    scheduleId: bobSchedule,
    status: 'COMPLETED',
    sequence: 1,
    createdAt: OLD,
  });
});

const HIDDEN = () => [ids.opP, ids.batch, ids.itemB, ids.echo, ids.echoBatch];

async function listsNoHiddenOperations() {
  const all = await asBob('{ operations(first: 100) { totalCount edges { node { id } } } }');
  const listed = all.operations.edges.map((edge: Data) => edge.node.id);
  for (const id of HIDDEN()) expect(listed).not.toContain(id);
  expect(listed).toContain(ids.opQ);
  // The count obeys the same rule: it counts exactly what bob may list.
  expect(all.operations.totalCount).toBe(listed.length);
  const onP = await asBob(
    'query($c: ID!) { operations(filter: { collectionId: $c }) { totalCount edges { node { id } } } }',
    {
      c: ids.P,
    },
  );
  expect(onP.operations.edges.map((edge: Data) => edge.node.id)).toEqual([ids.bobOnP]);
  expect(onP.operations.totalCount).toBe(1);
  const ofBatch = await asBob(
    'query($b: ID!) { operations(filter: { batchId: $b }) { totalCount edges { node { id } } } }',
    {
      b: ids.batch,
    },
  );
  expect(ofBatch.operations.edges.map((edge: Data) => edge.node.id)).toEqual([ids.itemA]);
  expect(ofBatch.operations.totalCount).toBe(1);
}

async function listsNoHiddenCollections() {
  const data = await asBob('{ collections(first: 100) { totalCount edges { node { id } } } }');
  const listed = data.collections.edges.map((edge: Data) => edge.node.id);
  expect(listed).not.toContain(ids.P);
  expect(listed).toContain(ids.Q);
  expect(data.collections.totalCount).toBe(listed.length);
}

async function unreachableCollectionAndDocuments() {
  const data = await asBob(
    `query($p: ID!, $d: ID!) {
       collection(id: $p) { id documents(first: 10) { edges { node { id collection { id } } } } }
       node(id: $d) { id ... on Document { collection { id } } }
     }`,
    { p: ids.P, d: ids.docP },
  );
  expect(data).toEqual({ collection: null, node: null });
}

async function searchOfPrivate() {
  const data = await asBob(
    `query($c: ID!) { search(collectionId: $c, query: "heron") { __typename
       ... on SearchSuccess { collection { id } hits { document { id } } } } }`,
    { c: ids.P },
  );
  expect(data.search.__typename).toBe('NotFoundError');
}

const subscribe = (query: string, id: string, token: string) =>
  subscribeWs(server.app.url, parse(query) as TypedDocumentNode<Data, { id: string }>, { id }, token);
const codes = (errors: unknown[]) =>
  (errors.flat() as { extensions?: { code?: string } }[]).map((error) => error.extensions?.code);
const UPDATES = (field: string) =>
  `subscription($id: ID!) { ${field}(id: $id) { sequence event { kind } operation { id status owner { name } } } }`;

async function subscriptionPayloads() {
  for (const [field, id] of [
    ['operationUpdated', ids.opP],
    ['operationUpdated', ids.batch],
    ['batchUpdated', ids.batch],
    ['batchUpdated', ids.itemA], // visible, but not a batch: the same NOT_FOUND
  ] as const) {
    const sub = subscribe(UPDATES(field), id, server.tokens.bob);
    await sub.done;
    expect(sub.messages, `${field}(${id})`).toEqual([]);
    expect(codes(sub.errors)).toEqual(['NOT_FOUND']);
  }
  // A stream bob may see only through a public collection ends, undelivered, once it is not.
  const bob = subscribe(UPDATES('operationUpdated'), ids.opS, server.tokens.bob);
  const alice = subscribe(UPDATES('operationUpdated'), ids.opS, server.tokens.alice);
  await bob.waitFor(1);
  await alice.waitFor(1);
  await server.db.query(`UPDATE "Collection" SET "isPublic" = false WHERE id = $1`, [uuidOf(ids.S)]);
  const cancelled = await ask(
    'mutation($id: ID!) { cancelOperation(input: { id: $id }) { __typename } }',
    { id: ids.opS },
    server.tokens.alice,
  );
  expect(cancelled.data!.cancelOperation.__typename).toBe('CancelOperationSuccess');
  await alice.done;
  expect(alice.messages.at(-1)).toMatchObject({ operationUpdated: { operation: { status: 'CANCELLED' } } });
  await bob.done;
  expect(bob.messages).toHaveLength(1);
  expect(codes(bob.errors)).toEqual(['NOT_FOUND']);
}

const LIVE = `subscription($filter: OperationFilter, $after: String) {
  operationsUpdated(filter: $filter, after: $after) { cursor operation { id collection { id } owner { name } } } }`;
const live = (token: string, variables: Record<string, unknown>) =>
  subscribeWs(
    server.app.url,
    parse(LIVE) as TypedDocumentNode<Data, Record<string, unknown>>,
    variables,
    token,
  );

/** operationsUpdated as bob: nothing of alice's but what her public collection shows him. */
async function liveLists() {
  const hidden = live(server.tokens.bob, { filter: { collectionId: ids.P } });
  await hidden.done;
  expect(hidden.messages).toEqual([]);
  expect(codes(hidden.errors)).toEqual(['NOT_FOUND']);

  const own = live(server.tokens.bob, {});
  const onQ = live(server.tokens.bob, { filter: { collectionId: ids.Q } });
  const aliceOwn = live(server.tokens.alice, {});
  const { alice, bob } = server.tokens;
  const changed = (sub: typeof own, id: string) =>
    sub.waitUntil((m) => m.operationsUpdated.operation.id === id);
  // Each stream is proven live by a first change it shows (a stream starts at its subscribe).
  const warm = await startOk(server.app.url, bob, 'diagnostics.echo', { value: 'warm' });
  await changed(own, warm.id);
  const q1 = await startOk(server.app.url, alice, 'collection.append', inline(ids.Q, 'q2', 'tern'));
  await changed(onQ, q1.id);
  expect((await settle(server.app.url, alice, q1.id)).status).toBe('COMPLETED');
  await changed(aliceOwn, q1.id);
  const onP = await startOk(server.app.url, alice, 'collection.append', inline(ids.P, 'p3', 'crane'));
  expect((await settle(server.app.url, alice, onP.id)).status).toBe('COMPLETED');
  await changed(aliceOwn, onP.id);
  // Then later changes, awaited: whatever bob's streams had of alice's P operation is there by now.
  const q2 = await startOk(server.app.url, alice, 'collection.append', inline(ids.Q, 'q3', 'gull'));
  const mine = await startOk(server.app.url, bob, 'diagnostics.echo', { value: 'bob' });
  await changed(onQ, q2.id);
  await changed(own, mine.id);
  expect(new Set(own.messages.map((m) => m.operationsUpdated.operation.owner.name))).toEqual(
    new Set(['bob']),
  );
  const seenOnQ = new Set(onQ.messages.map((m) => m.operationsUpdated.operation.id));
  expect(seenOnQ.has(onP.id)).toBe(false);
  expect(new Set(onQ.messages.map((m) => m.operationsUpdated.operation.collection.id))).toEqual(
    new Set([ids.Q]),
  );
  // A cursor issued to alice is not bob's to resume: BAD_USER_INPUT, nothing replayed.
  const stolen = live(server.tokens.bob, { after: aliceOwn.messages.at(-1)!.operationsUpdated.cursor });
  await stolen.done;
  expect(stolen.messages).toEqual([]);
  expect(codes(stolen.errors)).toEqual(['BAD_USER_INPUT']);
  for (const sub of [own, onQ, aliceOwn]) sub.close();
  // Off the first pages, as the statement count below expects of operations made for probes.
  await server.db.query(`UPDATE "Operation" SET "createdAt" = '2020-01-01' WHERE id = ANY($1::uuid[])`, [
    [warm, q1, onP, q2, mine].map((operation) => uuidOf(operation.id)),
  ]);
}

async function cancelsNothing() {
  for (const [mutation, id, expected] of [
    ['cancelOperation', ids.opP, 'NotFoundError'],
    ['cancelOperation', ids.batch, 'NotFoundError'],
    ['cancelOperation', ids.opQ, 'ForbiddenError'],
  ] as const) {
    const data = await asBob(
      `mutation($id: ID!) { ${mutation}(input: { id: $id }) { __typename
      ... on CancelOperationSuccess { operation { id } } } }`,
      { id },
    );
    expect(data[mutation].__typename, `${mutation}(${id})`).toBe(expected);
  }
  const batch = await asBob(
    `mutation($id: ID!) { cancelBatch(input: { id: $id }) { __typename
       ... on NotFoundError { resource } ... on CancelBatchSuccess { batch { id } } } }`,
    { id: ids.batch },
  );
  expect(batch.cancelBatch).toEqual({ __typename: 'NotFoundError', resource: 'Batch' });
}

async function schedulesOfOthers() {
  const data = await asBob('{ schedules { totalCount edges { node { id name } } } }');
  const listed = data.schedules.edges.map((edge: { node: { id: string } }) => edge.node.id);
  expect(listed).toContain(ids.bobSchedule);
  expect(listed).not.toContain(ids.aliceSchedule);
  expect(data.schedules.totalCount).toBe(listed.length);
}

async function scheduleOperations() {
  // bob's own schedule, linked to a private operation of alice's: not listed.
  const data = await asBob(
    'query($id: ID!) { node(id: $id) { ... on Schedule { operations { totalCount edges { node { id input } } } } } }',
    { id: ids.bobSchedule },
  );
  expect(data.node).toEqual({ operations: { totalCount: 0, edges: [] } });
}

/** One probe per guarded field: each runs as bob against alice's data. */
const PROBES: Record<string, () => Promise<void>> = {
  'Query.operation': async () => {
    for (const id of HIDDEN()) {
      expect(await asBob('query($id: ID!) { operation(id: $id) { id } }', { id })).toEqual({
        operation: null,
      });
    }
  },
  'Query.operations': listsNoHiddenOperations,
  'OperationEdge.node': async () => {
    await listsNoHiddenOperations();
    await scheduleOperations();
  },
  'Query.collection': async () => {
    expect(await asBob('query($id: ID!) { collection(id: $id) { id } }', { id: ids.P })).toEqual({
      collection: null,
    });
  },
  'Query.collections': listsNoHiddenCollections,
  'CollectionEdge.node': listsNoHiddenCollections,
  'Query.node': async () => {
    for (const id of [...HIDDEN(), ids.P, ids.docP, ids.alice, ids.aliceSchedule]) {
      expect(await asBob('query($id: ID!) { node(id: $id) { id } }', { id }), id).toEqual({ node: null });
    }
    // Without a token not even what every user may see (an operation on a public collection).
    for (const id of [ids.opQ, ids.Q]) {
      expect(await ask('query($id: ID!) { node(id: $id) { id } }', { id }, null)).toEqual({
        data: { node: null },
      });
    }
  },
  'Query.nodes': async () => {
    const hidden = [...HIDDEN(), ids.P, ids.docP, ids.alice];
    const data = await asBob('query($ids: [ID!]!) { nodes(ids: $ids) { id } }', { ids: hidden });
    expect(data.nodes).toEqual(hidden.map(() => null));
  },
  'Query.viewer': async () => {
    expect(await ask('{ viewer { name } }', {}, null)).toEqual({ data: { viewer: null } });
    const data = await asBob(`{ viewer ${USER()} }`);
    expect(data.viewer).toMatchObject({ id: ids.bob, name: 'bob', isAdmin: false });
  },
  'Operation.batch': async () => {
    const data = await asBob('query($id: ID!) { operation(id: $id) { id batch { id input } } }', {
      id: ids.itemA,
    });
    expect(data.operation).toEqual({ id: ids.itemA, batch: null });
  },
  'Operation.collection': async () => {
    const data = await asBob('query($id: ID!) { operation(id: $id) { id collection { id name } } }', {
      id: ids.bobOnP,
    });
    expect(data.operation).toEqual({ id: ids.bobOnP, collection: null });
  },
  'Operation.owner': async () => {
    const data = await asBob(`query($id: ID!) { operation(id: $id) { owner ${USER()} } }`, { id: ids.opQ });
    onlyName(data.operation.owner, 'alice');
  },
  'Collection.owner': async () => {
    const data = await asBob(`query($id: ID!) { collection(id: $id) { owner ${USER()} } }`, { id: ids.Q });
    onlyName(data.collection.owner, 'alice');
  },
  'Collection.busyOperation': async () => {
    const data = await asBob('query($id: ID!) { collection(id: $id) { id busyOperation { id input } } }', {
      id: ids.T,
    });
    expect(data.collection).toEqual({ id: ids.T, busyOperation: null });
    // alice, who may see the operation, gets it: the null above is the rule, not missing data.
    const alice = await ask(
      'query($id: ID!) { collection(id: $id) { busyOperation { id } } }',
      { id: ids.T },
      server.tokens.alice,
    );
    expect(alice.data!.collection.busyOperation).toEqual({ id: ids.opP });
  },
  'Collection.documents': unreachableCollectionAndDocuments,
  'DocumentEdge.node': unreachableCollectionAndDocuments,
  'Document.collection': unreachableCollectionAndDocuments,
  'SearchSuccess.collection': searchOfPrivate,
  'SearchHit.document': searchOfPrivate,
  'StartOperationSuccess.operation': async () => {
    // alice used KEY first: bob's start with it is his own new operation, never hers.
    const data = await asBob(
      `mutation($input: StartOperationInput!) { startOperation(input: $input) { __typename
         ... on StartOperationSuccess { replayed operation { id owner { id } } } } }`,
      { input: { type: 'diagnostics.echo', input: { value: 'alice' }, idempotencyKey: KEY } },
    );
    expect(data.startOperation).toMatchObject({ replayed: false, operation: { owner: { id: ids.bob } } });
    expect(data.startOperation.operation.id).not.toBe(ids.echo);
  },
  'StartBatchSuccess.batch': async () => {
    const started = await startBatch(server.tokens.bob, { items: echoItems, idempotencyKey: BATCH_KEY });
    expect(started).toMatchObject({ replayed: false, batch: { owner: { name: 'bob' } } });
    expect(started.batch.id).not.toBe(ids.echoBatch);
  },
  'CancelOperationSuccess.operation': cancelsNothing,
  'CancelBatchSuccess.batch': cancelsNothing,
  'OperationUpdate.operation': subscriptionPayloads,
  'OperationChange.operation': liveLists,
  'Operation.retryOf': async () => {
    const data = await asBob('query($id: ID!) { operation(id: $id) { id retryOf { id input } } }', {
      id: ids.bobRetry,
    });
    expect(data.operation).toEqual({ id: ids.bobRetry, retryOf: null });
  },
  'Operation.retries': async () => {
    const query = 'query($id: ID!) { operation(id: $id) { retries { id } } }';
    expect((await asBob(query, { id: ids.opQ })).operation).toEqual({ retries: [] });
    const alice = await ask(query, { id: ids.opQ }, server.tokens.alice);
    expect(alice.data!.operation.retries).toEqual([{ id: ids.aliceRetry }]);
  },
  'Operation.schedule': async () => {
    const data = await asBob('query($id: ID!) { operation(id: $id) { id schedule { id name } } }', {
      id: ids.bobScheduled,
    });
    expect(data.operation).toEqual({ id: ids.bobScheduled, schedule: null });
  },
  'Query.schedules': schedulesOfOthers,
  'ScheduleEdge.node': schedulesOfOthers,
  'Schedule.operations': scheduleOperations,
  'CreateScheduleSuccess.schedule': async () => {
    // alice's schedule name is bob's to use: his own new schedule, never hers.
    const data = await asBob(
      `mutation($input: CreateScheduleInput!) { createSchedule(input: $input) { __typename
         ... on CreateScheduleSuccess { schedule { id name operations { edges { node { id } } } } } } }`,
      { input: { name: 'alice-nightly', cron: '0 3 * * *', type: 'diagnostics.echo', input: {} } },
    );
    expect(data.createSchedule).toMatchObject({
      schedule: { name: 'alice-nightly', operations: { edges: [] } },
    });
    expect(data.createSchedule.schedule.id).not.toBe(ids.aliceSchedule);
    const deleted = await asBob(
      `mutation($id: ID!) { deleteSchedule(input: { id: $id }) { __typename ... on NotFoundError { resource } } }`,
      { id: ids.aliceSchedule },
    );
    expect(deleted.deleteSchedule).toEqual({ __typename: 'NotFoundError', resource: 'Schedule' });
  },
  'RetryOperationSuccess.operation': async () => {
    for (const id of HIDDEN()) {
      const data = await asBob(
        `mutation($id: ID!) { retryOperation(input: { id: $id }) { __typename
           ... on NotFoundError { resource } ... on RetryOperationSuccess { operation { id } } } }`,
        { id },
      );
      expect(data.retryOperation, id).toEqual({ __typename: 'NotFoundError', resource: 'Operation' });
    }
  },
};

describe('the schema walk', () => {
  const fields = guardedFields();

  it('finds the fields that lead to operations, collections, documents and users', () => {
    expect(fields).toEqual(
      expect.arrayContaining(['Operation.batch', 'Query.node', 'OperationUpdate.operation']),
    );
  });

  it('has no probe for a field the schema no longer has', () => {
    expect(Object.keys(PROBES).filter((key) => !fields.includes(key))).toEqual([]);
  });

  it.each(fields)('%s gives a user without access null, empty or NotFound', async (key) => {
    const probe = PROBES[key];
    if (!probe) throw new Error(`no probe for ${key} — add one to test/security/visibility.test.ts`);
    await probe();
  });
});

describe('a batch outcome', () => {
  it('shows an item whose operation the viewer may not see only by its id and status', async () => {
    const data = await asBob(
      `query($id: ID!) { operation(id: $id) { batchOutcome { items {
         id status operationId data error { code } reason rootCause } } } }`,
      { id: ids.bobBatch },
    );
    const items = data.operation.batchOutcome.items;
    expect(items).toHaveLength(2);
    expect(items[0]).toMatchObject({ id: 'mine', status: 'COMPLETED', data: { value: 'bob-data' } });
    expect(items[0].operationId).toEqual(expect.any(String));
    expect(items[1]).toEqual({
      id: 'theirs',
      status: 'COMPLETED',
      operationId: null,
      data: null,
      error: null,
      reason: null,
      rootCause: null,
    });
  });

  it('shows its owner every item of their own batch, with results', async () => {
    const data = await ask(
      'query($id: ID!) { operation(id: $id) { batchOutcome { items { id operationId data } } } }',
      { id: ids.batch },
      server.tokens.alice,
    );
    const items = data.data!.operation.batchOutcome.items;
    expect(items.map((item: Data) => [item.id, item.operationId])).toEqual([
      ['a', ids.itemA],
      ['b', ids.itemB],
    ]);
  });
});

describe('users', () => {
  it("are shown in full to admins: another user's id and admin flag", async () => {
    const answer = await ask(
      `query($id: ID!) { operation(id: $id) { owner ${USER()} } }`,
      { id: ids.opQ },
      server.tokens.root,
    );
    expect(answer.data!.operation.owner).toMatchObject({
      id: ids.alice,
      name: 'alice',
      isAdmin: false,
    });
  });

  it('a new user sees the others only by name, in lists too', async () => {
    const carol = await tokenFor(server.db.url, 'carol');
    const answer = await ask(`{ collections(first: 100) { edges { node { owner ${USER()} } } } }`, {}, carol);
    const owners = answer.data!.collections.edges.map((edge: Data) => edge.node.owner);
    expect(owners.length).toBeGreaterThan(0);
    for (const owner of owners) onlyName(owner, 'alice');
  });
});

describe('relations through the rule', () => {
  it('are loaded in batches: a page of 12 operations costs the statements a page of 2 does', async () => {
    const statements: string[] = [];
    const counted = await startTestApp(
      server.db.url,
      { role: 'api' },
      { db: { onQuery: (sql) => statements.push(sql) } },
    );
    try {
      const page = async (first: number) => {
        const query = `{ operations(first: ${first}) { edges { node { id owner { name }
          batch { id owner { name } } collection { id owner { name } busyOperation { id } } retryOf { id } retries { id } } } } }`;
        const response = await fetch(counted.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${server.tokens.alice}` },
          body: JSON.stringify({ query }),
        });
        const answer = (await response.json()) as Answer;
        expect(answer.errors).toBeUndefined();
        return answer.data!.operations.edges.length as number;
      };
      await page(1); // the viewer lookup, cached from here on
      const cost = async (first: number) => {
        statements.length = 0;
        expect(await page(first)).toBe(first);
        return statements.length;
      };
      const small = await cost(2);
      const large = await cost(12);
      console.log(`statements for a page of 2: ${small}, of 12: ${large}`);
      expect(large).toBe(small);
    } finally {
      await counted.close();
    }
  });
});
