import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ServerProcess, spawnServer } from '../support/app.ts';
import { gql, subscribeWs } from '../support/client.ts';
import { CancelOperation, GetOperation, OperationUpdated, StartOperation } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { REDIS_URL } from '../support/services.ts';

const server = useServer();

// GraphQL error codes (BAD_USER_INPUT) and masking are checked against the real program in its own
// process: under vitest the in-process server loads two copies of `graphql`, so its error masking
// cannot recognise any GraphQLError and reports every one as INTERNAL_SERVER_ERROR.
let api: ServerProcess;
beforeAll(async () => {
  api = await spawnServer({ DATABASE_URL: server.db.url, REDIS_URL, OPSGRAPH_ROLE: 'api' });
});
afterAll(() => api?.stop());

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

async function startResult(input: { type: string; input: unknown; idempotencyKey?: string }) {
  const response = await gql(server.app.url, StartOperation, { input }, server.tokens.alice);
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

  it('answers an unknown input field with a ValidationError naming it, creating nothing', async () => {
    const result = await changesNothing(() => startResult(sleep({ steps: 1, stepMs: 1, extra: true })));
    expect(result.__typename).toBe('ValidationError');
    if (result.__typename !== 'ValidationError') return;
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]!.path[0]).toBe('input');
    expect([...result.problems[0]!.path, result.problems[0]!.message].join(' ')).toContain('extra');
  });

  it('reports every problem of an input that has several', async () => {
    const input = { steps: -1, stepMs: 'x', failAtStep: 0, extra: 1 };
    const result = await changesNothing(() => startResult(sleep(input)));
    expect(result.__typename).toBe('ValidationError');
    if (result.__typename !== 'ValidationError') return;
    const paths = result.problems.map((problem) => problem.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['input.steps', 'input.stepMs', 'input.failAtStep']));
    expect(result.problems).toHaveLength(4);
    expect(result.message).toContain('steps');
    expect(result.message).toContain('stepMs');
  });

  it.each([
    ['256 characters', 'k'.repeat(256)],
    ['empty', ''],
  ])('answers an idempotencyKey that is %s with a ValidationError, creating nothing', async (_, key) => {
    const input = { ...sleep({ steps: 1, stepMs: 1 }), idempotencyKey: key };
    const result = await changesNothing(() => startResult(input));
    expect(result).toMatchObject({
      __typename: 'ValidationError',
      problems: [{ path: ['idempotencyKey'] }],
    });
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
    const response = await gql(api.url, GetOperation, { id }, server.tokens.alice);
    expect(response.data).toEqual({ operation: null });
    expect(response.errors).toHaveLength(1);
    expect(response.errors![0]!.extensions?.code).toBe('BAD_USER_INPUT');
    const text = JSON.stringify(response);
    expect(text).not.toContain('    at ');
    expect(text).not.toContain('stack');
  });

  it('answers a subscription to a malformed id with BAD_USER_INPUT and no data', async () => {
    const sub = subscribeWs(api.url, OperationUpdated, { id: 'nope' }, server.tokens.alice);
    await sub.done;
    expect(sub.messages).toEqual([]);
    const errors = sub.errors.flat() as { extensions?: { code?: string } }[];
    expect(errors.map((error) => error.extensions?.code)).toEqual(['BAD_USER_INPUT']);
    expect(JSON.stringify(sub.errors)).not.toContain('    at ');
  });
});

describe('cancelOperation reason', () => {
  it('answers a reason over 1000 characters with a ValidationError at ["reason"]; 1000 is accepted', async () => {
    const started = await startResult(sleep({ steps: 1, stepMs: 60_000 }));
    if (started.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
    const id = started.operation.id;
    // Wait for the worker's STARTED event, after which nothing is written for 60 s.
    await vi.waitFor(
      async () => {
        const read = await gql(server.app.url, GetOperation, { id }, server.tokens.alice);
        expect(read.data?.operation?.status).toBe('PROCESSING');
      },
      { timeout: 15_000, interval: 50 },
    );
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

  beforeAll(async () => {
    // A real database fault: inserting an operation raises an exception the API does not expect.
    await server.db.query(`
      CREATE FUNCTION test_refuse_insert() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION '${DETAIL}'; END $$;
      CREATE TRIGGER test_refuse_insert BEFORE INSERT ON "Operation"
        FOR EACH ROW EXECUTE FUNCTION test_refuse_insert();`);
  });
  afterAll(async () => {
    await server.db.query(
      `DROP TRIGGER test_refuse_insert ON "Operation"; DROP FUNCTION test_refuse_insert();`,
    );
  });

  it('is masked: a generic INTERNAL_SERVER_ERROR with no detail or stack, nothing written, the cause logged', async () => {
    const response = await changesNothing(() =>
      gql(api.url, StartOperation, { input: sleep({ steps: 1, stepMs: 1 }) }, server.tokens.alice),
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
    await vi.waitFor(() => expect(api.logs.join('\n')).toContain(DETAIL), { timeout: 5000 });
  });
});
