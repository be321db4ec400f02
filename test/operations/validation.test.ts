import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import type { App } from '../../src/app.ts';
import { defineOperationType } from '../../src/operations/registry.ts';
import { diagnosticsSleep } from '../../src/operations/types/diagnostics-sleep.ts';
import { type ServerProcess, spawnServer, startTestApp } from '../support/app.ts';
import { gql, subscribeWs } from '../support/client.ts';
import { CancelOperation, GetOperation, OperationUpdated, StartOperation } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { REDIS_URL } from '../support/services.ts';

const server = useServer();

const b64 = (text: string) => Buffer.from(text).toString('base64');
const MALFORMED_IDS = ['nope', b64(`User:${randomUUID()}`), b64('Operation:not-a-uuid')];

async function counts() {
  const [row] = await server.db.query(
    `SELECT (SELECT count(*) FROM "Operation") AS operations, (SELECT count(*) FROM "OperationEvent") AS events,
            (SELECT count(*) FROM pgboss.job) AS jobs`,
  );
  return row;
}

/** Runs `action` and checks that no operation, event or job was written meanwhile. */
async function changesNothing<T>(action: () => Promise<T>): Promise<T> {
  const before = await counts();
  const result = await action();
  expect(await counts()).toEqual(before);
  return result;
}

async function startResult(
  input: { type: string; input: unknown; idempotencyKey?: string },
  url = server.app.url,
) {
  const response = await gql(url, StartOperation, { input }, server.tokens.alice);
  expect(response.errors).toBeUndefined();
  return response.data!.startOperation;
}

const sleep = (input: unknown) => ({ type: 'diagnostics.sleep', input });

describe('startOperation', () => {
  it('answers an unknown type with UnknownOperationTypeError listing the known types, creating nothing', async () => {
    const result = await changesNothing(() => startResult({ type: 'no.such.type', input: {} }));
    expect(result).toMatchObject({ __typename: 'UnknownOperationTypeError', type: 'no.such.type' });
    if (result.__typename !== 'UnknownOperationTypeError') return;
    expect(result.knownTypes).toContain('diagnostics.sleep');
    expect(result.knownTypes).not.toContain('no.such.type');
  });

  it.each([
    ['a negative number', { steps: -1, stepMs: 1 }, ['input', 'steps']],
    ['a fraction where an integer is required', { steps: 1.5, stepMs: 1 }, ['input', 'steps']],
    ['a string where a number is required', { steps: 1, stepMs: 'x' }, ['input', 'stepMs']],
    ['a missing field', { steps: 1 }, ['input', 'stepMs']],
    ['an optional field out of range', { steps: 1, stepMs: 1, failAtStep: 0 }, ['input', 'failAtStep']],
    ['an input that is not an object', 5, ['input']],
  ])('answers %s with a ValidationError at its path, creating nothing', async (_, input, path) => {
    const result = await changesNothing(() => startResult(sleep(input)));
    expect(result.__typename).toBe('ValidationError');
    if (result.__typename !== 'ValidationError') return;
    expect(result.problems).toEqual([{ path, message: expect.any(String) }]);
  });

  it('answers an unknown input field with a ValidationError at its path, creating nothing', async () => {
    const result = await changesNothing(() => startResult(sleep({ steps: 1, stepMs: 1, extra: true })));
    expect(result.__typename).toBe('ValidationError');
    if (result.__typename !== 'ValidationError') return;
    expect(result.problems).toEqual([{ path: ['input', 'extra'], message: 'unknown field "extra"' }]);
  });

  it('reports every problem of an input that has several', async () => {
    const input = { steps: -1, stepMs: 'x', failAtStep: 0, extra: 1 };
    const result = await changesNothing(() => startResult(sleep(input)));
    expect(result.__typename).toBe('ValidationError');
    if (result.__typename !== 'ValidationError') return;
    const paths = result.problems.map((problem) => problem.path.join('.'));
    expect(paths.sort()).toEqual(['input.extra', 'input.failAtStep', 'input.stepMs', 'input.steps']);
    expect(result.message).toContain('steps');
    expect(result.message).toContain('stepMs');
  });

  it.each([
    ['256 characters', 'k'.repeat(256)],
    ['empty', ''],
    ['holding a NUL character', 'key\u0000nul'],
  ])('answers an idempotencyKey that is %s with a ValidationError, creating nothing', async (_, key) => {
    const input = { ...sleep({ steps: 1, stepMs: 1 }), idempotencyKey: key };
    const result = await changesNothing(() => startResult(input));
    expect(result).toEqual({
      __typename: 'ValidationError',
      message: expect.any(String),
      problems: [{ path: ['idempotencyKey'], message: expect.any(String) }],
    });
  });
});

describe('startOperation with NUL characters in the input', () => {
  // PostgreSQL's text and jsonb refuse U+0000. diagnostics.sleep takes no strings, so a second
  // instance on the same database also knows `test.text`, whose input holds strings and free keys.
  // Paths give array indexes as strings (ValidationProblem.path is [String!]!).
  const text = defineOperationType({
    name: 'test.text',
    description: 'Returns its input.',
    input: z.strictObject({
      name: z.string(),
      tags: z.array(z.string()).optional(),
      labels: z.record(z.string(), z.string()).optional(),
    }),
    run: async (input) => input,
  });
  let other: App & { url: string };
  beforeAll(async () => {
    other = await startTestApp(server.db.url, {}, { types: [diagnosticsSleep, text] });
  });
  afterAll(() => other?.close());

  const NUL = (paths: string[][]) =>
    paths.map((path) => ({ path, message: 'must not contain NUL characters' }));

  it.each([
    ['a string value', { name: 'a\u0000b' }, [['input', 'name']]],
    ['a string that is only NUL', { name: '\u0000' }, [['input', 'name']]],
    ['an array item', { name: 'n', tags: ['ok', 'b\u0000'] }, [['input', 'tags', '1']]],
    ['a value in a map', { name: 'n', labels: { env: 'p\u0000' } }, [['input', 'labels', 'env']]],
    ['a key in a map', { name: 'n', labels: { 'e\u0000nv': 'prod' } }, [['input', 'labels', 'e\u0000nv']]],
    [
      'several places',
      { name: '\u0000', tags: ['\u0000'], labels: { k: '\u0000' } },
      [
        ['input', 'name'],
        ['input', 'tags', '0'],
        ['input', 'labels', 'k'],
      ],
    ],
  ])('answers a NUL in %s with a ValidationError at its path, creating nothing', async (_, input, paths) => {
    const result = await changesNothing(() => startResult({ type: 'test.text', input }, other.url));
    expect(result).toEqual({
      __typename: 'ValidationError',
      message: expect.any(String),
      problems: NUL(paths),
    });
  });

  it('answers a NUL in an idempotencyKey of an otherwise valid request the same way', async () => {
    const request = { type: 'test.text', input: { name: 'n' }, idempotencyKey: '\u0000' };
    const result = await changesNothing(() => startResult(request, other.url));
    expect(result).toEqual({
      __typename: 'ValidationError',
      message: expect.any(String),
      problems: NUL([['idempotencyKey']]),
    });
  });

  it('accepts the same input without NUL characters', async () => {
    const input = { name: 'a b', tags: ['ok', 'b'], labels: { env: 'prod' } };
    const result = await startResult({ type: 'test.text', input }, other.url);
    expect(result).toMatchObject({ __typename: 'StartOperationSuccess', operation: { input } });
    if (result.__typename !== 'StartOperationSuccess') return;
    // Let it finish, so later tests' row counts are not changed by its events.
    await vi.waitFor(
      async () => {
        const read = await gql(other.url, GetOperation, { id: result.operation.id }, server.tokens.alice);
        expect(read.data?.operation).toMatchObject({ status: 'COMPLETED', result: input });
      },
      { timeout: 15_000, interval: 50 },
    );
  });
});

describe('operation ids', () => {
  it.each(MALFORMED_IDS)(
    'answers cancelOperation(%s) with a ValidationError at ["id"], changing nothing',
    async (id) => {
      const { data } = await changesNothing(() =>
        gql(server.app.url, CancelOperation, { id }, server.tokens.alice),
      );
      expect(data?.cancelOperation).toEqual({
        __typename: 'ValidationError',
        message: expect.any(String),
        problems: [{ path: ['id'], message: expect.any(String) }],
      });
    },
  );

  it.each(MALFORMED_IDS)('answers operation(%s) with BAD_USER_INPUT and no stack trace', async (id) => {
    const response = await gql(server.app.url, GetOperation, { id }, server.tokens.alice);
    expect(response.data).toEqual({ operation: null });
    expect(response.errors).toHaveLength(1);
    expect(response.errors![0]!.extensions?.code).toBe('BAD_USER_INPUT');
    const text = JSON.stringify(response);
    expect(text).not.toContain('    at ');
    expect(text).not.toContain('stack');
  });

  it('answers a subscription to a malformed id with BAD_USER_INPUT and no data', async () => {
    const sub = subscribeWs(server.app.url, OperationUpdated, { id: 'nope' }, server.tokens.alice);
    await sub.done;
    expect(sub.messages).toEqual([]);
    const errors = sub.errors.flat() as { extensions?: { code?: string } }[];
    expect(errors.map((error) => error.extensions?.code)).toEqual(['BAD_USER_INPUT']);
    expect(JSON.stringify(sub.errors)).not.toContain('    at ');
  });
});

describe('cancelOperation reason', () => {
  let id: string;
  beforeAll(async () => {
    const started = await startResult(sleep({ steps: 1, stepMs: 60_000 }));
    if (started.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
    id = started.operation.id;
    // Wait for the worker's STARTED event, after which nothing is written for 60 s.
    await vi.waitFor(
      async () => {
        const read = await gql(server.app.url, GetOperation, { id }, server.tokens.alice);
        expect(read.data?.operation?.status).toBe('PROCESSING');
      },
      { timeout: 15_000, interval: 50 },
    );
  });

  it('answers a reason holding a NUL character with a ValidationError at ["reason"], changing nothing', async () => {
    const { data, errors } = await changesNothing(() =>
      gql(server.app.url, CancelOperation, { id, reason: 'stop\u0000now' }, server.tokens.alice),
    );
    expect(errors).toBeUndefined();
    expect(data?.cancelOperation).toEqual({
      __typename: 'ValidationError',
      message: expect.any(String),
      problems: [{ path: ['reason'], message: 'must not contain NUL characters' }],
    });
    const read = await gql(server.app.url, GetOperation, { id }, server.tokens.alice);
    expect(read.data?.operation?.status).toBe('PROCESSING');
  });

  it('answers a reason over 1000 characters with a ValidationError at ["reason"]; 1000 is accepted', async () => {
    const tooLong = await changesNothing(() =>
      gql(server.app.url, CancelOperation, { id, reason: 'r'.repeat(1001) }, server.tokens.alice),
    );
    expect(tooLong.data?.cancelOperation).toMatchObject({
      __typename: 'ValidationError',
      problems: [{ path: ['reason'] }],
    });
    const read = await gql(server.app.url, GetOperation, { id }, server.tokens.alice);
    expect(read.data?.operation?.status).toBe('PROCESSING');

    const reason = 'r'.repeat(1000);
    const { data } = await gql(server.app.url, CancelOperation, { id, reason }, server.tokens.alice);
    expect(data?.cancelOperation).toMatchObject({
      __typename: 'CancelOperationSuccess',
      operation: { status: 'CANCELLED', error: { code: 'CANCELLED', message: reason } },
    });
  });
});

describe('an unexpected internal error', () => {
  const DETAIL = 'opsgraph-test-internal-detail';

  // The real program in its own process, so the first test can read the log it writes.
  let api: ServerProcess;
  beforeAll(async () => {
    api = await spawnServer({ DATABASE_URL: server.db.url, REDIS_URL, OPSGRAPH_ROLE: 'api' });
    // A real database fault: inserting an operation raises an exception the API does not expect.
    await server.db.query(`
      CREATE FUNCTION test_refuse_insert() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION '${DETAIL}'; END $$;
      CREATE TRIGGER test_refuse_insert BEFORE INSERT ON "Operation"
        FOR EACH ROW EXECUTE FUNCTION test_refuse_insert();`);
  });
  afterAll(async () => {
    await api?.stop();
    await server.db.query(
      `DROP TRIGGER test_refuse_insert ON "Operation"; DROP FUNCTION test_refuse_insert();`,
    );
  });

  const maskedStart = (url: string) =>
    changesNothing(async () => {
      const response = await gql(
        url,
        StartOperation,
        { input: sleep({ steps: 1, stepMs: 1 }) },
        server.tokens.alice,
      );
      expect(response.data).toBeNull();
      expect(response.errors).toHaveLength(1);
      expect(response.errors![0]).toMatchObject({
        message: 'Unexpected error.',
        extensions: { code: 'INTERNAL_SERVER_ERROR' },
      });
      const text = JSON.stringify(response);
      for (const secret of [DETAIL, '    at ', 'stack', 'Prisma', 'start.ts'])
        expect(text).not.toContain(secret);
    });

  it('is masked: a generic INTERNAL_SERVER_ERROR with no detail or stack, nothing written, the cause logged', async () => {
    await maskedStart(api.url);
    await vi.waitFor(() => expect(api.logs.join('\n')).toContain(DETAIL), { timeout: 5000 });
  });

  it('is masked the same way by the in-process server, which logs the cause', async () => {
    // The in-process server's logger writes errors to this process's stderr: capture them.
    const logged: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(String(chunk));
      return true;
    });
    try {
      await maskedStart(server.app.url);
      await vi.waitFor(() => expect(logged.join('')).toContain(DETAIL), { timeout: 5000 });
    } finally {
      write.mockRestore();
    }
  });
});
