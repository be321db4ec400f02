import { randomUUID } from 'node:crypto';
import {
  type GraphQLArgument,
  type GraphQLInputType,
  getNamedType,
  isCompositeType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isUnionType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BUILT_IN_TYPES, withBatches } from '../../src/app.ts';
import { schema } from '../../src/graphql/schema.ts';
import { defineOperationType, NonRetryableError } from '../../src/operations/registry.ts';
import type { Resources } from '../../src/resources.ts';
import { startTestApp } from '../support/app.ts';
import { subscribeWs, tokenFor } from '../support/client.ts';
import { settle, startOk } from '../support/collections.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { capturingLogger } from './captured-logs.ts';

// Error hygiene (issue 9, point 9): malformed ids, NUL and unpaired surrogates anywhere in the
// arguments, over-deep JSON → BAD_USER_INPUT (or the ValidationError member of a result union)
// with the argument's path; never INTERNAL_SERVER_ERROR, never an error-level log; recorded
// operation errors never carry SQL, Prisma or parser internals.

const SQL_TEXT =
  'duplicate key value violates unique constraint; SELECT * FROM "User" WHERE "isAdmin" = true';

/** Handlers that fail the ways internals leak: a Prisma error, SQL in a plain error, SQL in a coded error. */
const failing = [
  defineOperationType({
    name: 'test.prisma-error',
    description: 'Runs invalid SQL.',
    input: z.strictObject({}),
    policy: { retryLimit: 0 },
    async run(_, ctx) {
      await ctx.db.$executeRawUnsafe('SELEC * FROM "Operation" WHERE secret = 1');
      return {};
    },
  }),
  defineOperationType({
    name: 'test.sql-text',
    description: 'Throws a plain error whose message holds SQL.',
    input: z.strictObject({}),
    policy: { retryLimit: 0 },
    async run() {
      throw new Error(SQL_TEXT);
    },
  }),
  defineOperationType({
    name: 'test.coded-sql-text',
    description: 'Throws a coded error whose message holds SQL.',
    input: z.strictObject({}),
    async run() {
      throw new NonRetryableError(SQL_TEXT, 'LEAKY');
    },
  }),
];

const logs = capturingLogger();
let db: TestDatabase;
let url: string;
let close: () => Promise<void>;
let alice: string;
let bob: string;
/** bob's long operation, running while every hostile request is sent. */
let bobs: { id: string };

beforeAll(async () => {
  db = await createTestDatabase();
  const late: { resources?: Resources } = {};
  const app = await startTestApp(
    db.url,
    {},
    {
      logger: logs.logger,
      types: withBatches([...BUILT_IN_TYPES, ...failing], () => late.resources as Resources),
    },
  );
  late.resources = app.resources;
  url = app.url;
  close = app.close;
  alice = await tokenFor(db.url, 'alice');
  bob = await tokenFor(db.url, 'bob');
  bobs = await startOk(url, bob, 'diagnostics.sleep', { steps: 40, stepMs: 200 });
});
afterAll(async () => {
  await close?.();
  await db?.drop();
});

interface Response {
  status: number;
  text: string;
  data?: Record<string, unknown> | null;
  errors?: {
    message: string;
    extensions?: { code?: string; problems?: { path: string[]; message: string }[] };
  }[];
}

/** POSTs a request; `variables` may be JSON text already (too deep for JSON.stringify here). */
async function post(query: string, variables: Record<string, unknown> | string = {}): Promise<Response> {
  const json = typeof variables === 'string' ? variables : JSON.stringify(variables);
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
    body: `{"query":${JSON.stringify(query)},"variables":${json}}`,
  });
  const text = await response.text();
  return { ...(JSON.parse(text) as Response), status: response.status, text };
}

const operationCount = async () =>
  Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM "Operation"`))[0]!.n);

/** Checks the server is alive and nothing was logged at error level. */
async function stillHealthy() {
  const { data } = await post('{ viewer { name } }');
  expect(data).toEqual({ viewer: { name: 'alice' } });
  expect(logs.errors()).toEqual([]);
}

/** The refusal of one field: its ValidationError member, or a BAD_USER_INPUT error. */
function problemsOf(response: Response, field: string, asData: boolean) {
  if (process.env.DEBUG_HYGIENE) console.log(response.text.slice(0, 600));
  expect(response.text).not.toMatch(/INTERNAL_SERVER_ERROR|\n\s+at |prisma|SELECT /i);
  type Problems = { path: (string | number)[]; message: string }[];
  const stringPaths = (problems: Problems) =>
    problems.map((problem) => ({ ...problem, path: problem.path.map(String) }));
  if (asData) {
    const result = response.data?.[field] as { __typename: string; problems: Problems };
    expect(result?.__typename).toBe('ValidationError');
    return stringPaths(result.problems);
  }
  expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  return stringPaths(response.errors?.[0]?.extensions?.problems ?? []);
}

// --- Every ID-taking argument of the schema, found by walking it ---

/** Paths (argument name, then input fields) to every ID inside an argument's type. */
function idPaths(type: GraphQLInputType, path: string[], seen = new Set<string>()): string[][] {
  const inner = isNonNullType(type) ? type.ofType : type;
  if (isListType(inner)) return idPaths(inner.ofType, [...path, '0'], seen);
  if (isInputObjectType(inner)) {
    if (seen.has(inner.name)) return [];
    return Object.values(inner.getFields()).flatMap((field) =>
      idPaths(field.type, [...path, field.name], new Set([...seen, inner.name])),
    );
  }
  return getNamedType(inner).name === 'ID' ? [path] : [];
}

/** A literal for `arg` that puts `$v` at `path` (lists get it as their one item). */
function literal(type: GraphQLInputType, path: string[]): string {
  const inner = isNonNullType(type) ? type.ofType : type;
  if (isListType(inner)) return `[${literal(inner.ofType, path[0] === '0' ? path.slice(1) : path)}]`;
  if (path.length === 0) return '$v';
  if (!isInputObjectType(inner)) throw new Error('unexpected path');
  // Required sibling fields get a dummy value, so only the id is wrong.
  const others = Object.values(inner.getFields())
    .filter((field) => field.name !== path[0] && isNonNullType(field.type))
    .map((field) => `, ${field.name}: ${dummyValue(getNamedType(field.type).name, field.name)}`);
  return `{ ${path[0]}: ${literal(inner.getFields()[path[0]!]!.type, path.slice(1))}${others.join('')} }`;
}

const dummyValue = (typeName: string, name: string) => {
  if (typeName === 'String') return '"x"';
  if (typeName === 'Int' || typeName === 'SafeInt') return '1';
  throw new Error(`no dummy for ${name}: ${typeName}`);
};

const dummy = (arg: GraphQLArgument) => dummyValue(getNamedType(arg.type).name, arg.name);

interface IdCase {
  root: 'query' | 'mutation' | 'subscription';
  field: string;
  path: string[];
  document: string;
  asData: boolean;
}

function idCases(): IdCase[] {
  const cases: IdCase[] = [];
  const roots = [
    ['query', schema.getQueryType()],
    ['mutation', schema.getMutationType()],
    ['subscription', schema.getSubscriptionType()],
  ] as const;
  for (const [root, type] of roots) {
    if (!type) continue;
    for (const field of Object.values(type.getFields())) {
      for (const arg of field.args) {
        for (const path of idPaths(arg.type, [])) {
          const others = field.args
            .filter((other) => other !== arg && isNonNullType(other.type))
            .map((other) => `${other.name}: ${dummy(other)}`);
          const args = [`${arg.name}: ${literal(arg.type, path)}`, ...others].join(', ');
          const named = getNamedType(field.type);
          const selection = isCompositeType(named) ? ' { __typename }' : '';
          const problemsSelection =
            isUnionType(named) && named.getTypes().some((member) => member.name === 'ValidationError')
              ? ' { __typename ... on ValidationError { problems { path message } } }'
              : selection;
          cases.push({
            root,
            field: field.name,
            // A lone `input` argument is elided from problem paths (src/graphql/arguments.ts).
            path:
              field.args.length === 1 && arg.name === 'input' && isInputObjectType(getNamedType(arg.type))
                ? path
                : [arg.name, ...path],
            document: `${root} ($v: ID!) { ${field.name}(${args})${problemsSelection} }`,
            asData: problemsSelection !== selection,
          });
        }
      }
    }
  }
  return cases;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const MALFORMED = [
  ['garbage', 'nope'],
  ['empty', ''],
  ['not a uuid', b64('Operation:not-a-uuid')],
  ['an unknown type', b64(`Secret:${randomUUID()}`)],
  ['a NUL', b64(`Operation:${randomUUID()}\u0000`)],
  ['an unpaired surrogate', '\ud800'],
  ['100,000 characters', 'A'.repeat(100_000)],
] as const;

describe('malformed global ids in every ID argument', () => {
  const cases = idCases();
  it('finds the ID arguments by walking the schema', () => {
    const found = cases.map((c) => `${c.field}(${c.path.join('.')})`);
    console.log(`ID arguments: ${found.join(', ')}`);
    expect(found).toEqual(
      expect.arrayContaining(['node(id)', 'nodes(ids.0)', 'operation(id)', 'operations(filter.batchId)']),
    );
    expect(found.length).toBeGreaterThanOrEqual(10);
  });

  it.each(cases.filter((c) => c.root !== 'subscription').map((c) => [`${c.field}(${c.path.join('.')})`, c]))(
    'refuses %s with its path for every malformed id, storing nothing',
    async (_, c) => {
      const before = await operationCount();
      for (const [, id] of MALFORMED) {
        const response = await post(c.document, { v: id });
        const problems = problemsOf(response, c.field, c.asData);
        expect(problems).toEqual([{ path: c.path, message: 'is not a valid ID' }]);
        expect(response.text.length).toBeLessThan(2000); // a large id is never echoed back
      }
      expect(await operationCount()).toBe(before);
      await stillHealthy();
    },
  );

  it.each(cases.filter((c) => c.root === 'subscription').map((c) => [c.field, c]))(
    'refuses a subscription %s to a malformed id over WebSocket with BAD_USER_INPUT at its path',
    async (_, c) => {
      for (const [, id] of MALFORMED) {
        const { parse } = await import('graphql');
        const sub = subscribeWs(url, parse(c.document) as never, { v: id } as never, alice);
        await sub.done;
        const errors = sub.errors.flat() as { extensions?: { code?: string; problems?: unknown } }[];
        expect(errors.map((error) => error.extensions?.code)).toEqual(['BAD_USER_INPUT']);
        const problems = errors[0]?.extensions?.problems as { path: unknown[] }[];
        expect(problems.map((problem) => problem.path.map(String))).toEqual([c.path]);
      }
      await stillHealthy();
    },
  );
});

// --- Strings and JSON ---

const START = `mutation ($input: StartOperationInput!) {
  startOperation(input: $input) { __typename ... on ValidationError { problems { path message } } }
}`;

describe('NUL, unpaired surrogates and over-deep JSON', () => {
  const NUL = 'must not contain NUL characters';
  const SURROGATE = 'must not contain unpaired surrogates (invalid UTF-16)';

  it.each([
    ['a lone high surrogate in a JSON string', { value: 'a\ud800b' }, [['input', 'value'], SURROGATE]],
    [
      'a lone low surrogate in a JSON key',
      { value: { '\udc00k': 1 } },
      [['input', 'value', '\udc00k'], SURROGATE],
    ],
    [
      'a NUL deep in a JSON array',
      { value: [[1, ['ok', 'x\u0000']]] },
      [['input', 'value', '0', '1', '1'], NUL],
    ],
  ])('refuses %s in an operation input with its path, storing nothing', async (_, input, [path, message]) => {
    const before = await operationCount();
    const response = await post(START, { input: { type: 'diagnostics.echo', input } });
    expect(problemsOf(response, 'startOperation', true)).toEqual([{ path, message }]);
    expect(await operationCount()).toBe(before);
    await stillHealthy();
  });

  it('accepts a well-formed surrogate pair (an emoji) in the same place', async () => {
    const operation = await startOk(url, alice, 'diagnostics.echo', { value: 'ok 😀' });
    expect((await settle(url, alice, operation.id)).result).toEqual({ value: 'ok 😀' });
  });

  it('refuses an unpaired surrogate in a plain string argument and in an input object field', async () => {
    const type = await post('query ($t: String) { operations(filter: { type: $t }) { edges { cursor } } }', {
      t: 'x\ud800',
    });
    expect(problemsOf(type, 'operations', false)).toEqual([{ path: ['filter', 'type'], message: SURROGATE }]);
    const key = await post(START, {
      input: { type: 'diagnostics.echo', input: {}, idempotencyKey: '\udfff' },
    });
    expect(problemsOf(key, 'startOperation', true)).toEqual([
      { path: ['idempotencyKey'], message: SURROGATE },
    ]);
    const batch = await post(
      'mutation ($input: StartBatchInput!) { startBatch(input: $input) { __typename ... on ValidationError { problems { path message } } } }',
      { input: { items: [{ id: 'a\u0000', type: 'diagnostics.echo', input: {} }] } },
    );
    expect(problemsOf(batch, 'startBatch', true)).toEqual([{ path: ['items', '0', 'id'], message: NUL }]);
    await stillHealthy();
  });

  it('refuses malformed cursors, at the root and in a nested connection', async () => {
    const root = await post('query ($a: String) { collections(first: 1, after: $a) { edges { cursor } } }', {
      a: 'not-a-cursor',
    });
    expect(problemsOf(root, 'collections', false)).toEqual([
      { path: ['after'], message: 'is not a valid cursor' },
    ]);
    const created = await startOk(url, alice, 'collection.create', { name: 'cursors' });
    const collectionId = (created.result as { collectionId: string }).collectionId;
    const nested = await post(
      'query ($id: ID!, $a: String) { collection(id: $id) { documents(first: 1, after: $a) { edges { cursor } } } }',
      { id: collectionId, a: b64('GPC:S:not-a-uuid') },
    );
    expect(problemsOf(nested, 'collection', false)).toEqual([
      { path: ['documents', 'after'], message: 'is not a valid cursor' },
    ]);
    expect(nested.text).not.toMatch(/invalid input syntax|uuid/i);
    await stillHealthy();
  });

  it.each([
    ['65 levels', 65],
    ['100,000 levels', 100_000],
  ])(
    'refuses JSON nested %s deep with BAD_USER_INPUT at its path; 64 levels are accepted',
    async (_, depth) => {
      const value = `${'['.repeat(depth)}1${']'.repeat(depth)}`;
      const before = await operationCount();
      const response = await post(START, `{"input":{"type":"diagnostics.echo","input":{"value":${value}}}}`);
      const problems = problemsOf(response, 'startOperation', true);
      expect(problems).toHaveLength(1);
      expect(problems[0]!.message).toBe('nests deeper than 64 levels');
      expect(problems[0]!.path.slice(0, 3)).toEqual(['input', 'value', '0']);
      expect(await operationCount()).toBe(before);

      let allowed: unknown = 1;
      for (let i = 0; i < 63; i += 1) allowed = [allowed];
      const ok = await post(START, { input: { type: 'diagnostics.echo', input: { value: allowed } } });
      expect(ok.data?.startOperation).toMatchObject({ __typename: 'StartOperationSuccess' });
      await stillHealthy();
    },
  );

  it('refuses a literal nested 100,000 levels deep in the query document without a crash', async () => {
    const value = `${'['.repeat(100_000)}1${']'.repeat(100_000)}`;
    const response = await post(
      `mutation { startOperation(input: { type: "diagnostics.echo", input: { value: ${value} } }) { __typename } }`,
    );
    // BAD_USER_INPUT here; a document limit before parsing may refuse it earlier with its own code.
    const code = response.errors?.[0]?.extensions?.code;
    expect(typeof code).toBe('string');
    expect(code).not.toBe('INTERNAL_SERVER_ERROR');
    expect(response.text.length).toBeLessThan(2000);
    await stillHealthy();
  });

  it('never echoes a large input back in an error message', async () => {
    const type = 'x'.repeat(200_000);
    const response = await post(START, { input: { type, input: {} } });
    expect(response.text.length).toBeLessThan(5000);
    const count = await post('query ($n: Int) { operations(first: $n) { edges { cursor } } }', { n: type });
    expect(count.text.length).toBeLessThan(2000);
    expect(count.errors?.[0]?.message).toMatch(/…$/);
    await stillHealthy();
  });
});

// --- Recorded handler errors ---

describe('Operation.error of a failing handler', () => {
  it.each([
    ['a Prisma error (invalid SQL)', 'test.prisma-error', 'DATABASE_ERROR'],
    ['a plain error carrying SQL', 'test.sql-text', 'HANDLER_ERROR'],
    ['a coded error carrying SQL', 'test.coded-sql-text', 'LEAKY'],
  ])(
    'records %s with a stable code and a safe message; details only in the server log',
    async (_, type, code) => {
      const operation = await startOk(url, alice, type, {});
      const done = await settle(url, alice, operation.id);
      expect(done.status).toBe('FAILED');
      expect(done.error?.code).toBe(code);
      expect(done.error?.message).not.toMatch(/SELEC|FROM|prisma|Raw query|\$executeRaw|secret|User/i);
      const events = await db.query<{ data: unknown }>(
        `SELECT e.data FROM "OperationEvent" e JOIN "Operation" o ON o.id = e."operationId" WHERE o.type = $1`,
        [type],
      );
      expect(JSON.stringify(events)).not.toMatch(/SELEC|prisma|secret/i);
      const withErrors = (_key: string, value: unknown) =>
        value instanceof Error ? { ...value, message: value.message } : value;
      const logged = logs.entries.find(
        (entry) => entry.level === 'warn' && JSON.stringify(entry.fields, withErrors).match(/SELEC|isAdmin/),
      );
      expect(logged).toBeDefined();
      await stillHealthy();
    },
  );
});

describe('another user', () => {
  it('ran an operation through all of the above undisturbed', async () => {
    const done = await settle(url, bob, bobs.id, 30_000);
    expect(done).toMatchObject({ status: 'COMPLETED', attempt: 1, error: null });
    expect(logs.errors()).toEqual([]);
  });
});
