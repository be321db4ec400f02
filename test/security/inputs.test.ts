import { print } from 'graphql';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { graphql } from '../gql/index.ts';
import { itemsById, settleBatch } from '../support/batches.ts';
import { gql } from '../support/client.ts';
import { useServer } from '../support/fixtures.ts';
import { uuidOf, waitForTerminal } from '../support/operations.ts';
import { amplifyingBatch, type Item, largeValue, problemBatch } from './worst-inputs.ts';

/**
 * Input limits (issue 9, point 4), with the default limits: each over-limit input is refused with
 * a ValidationError at its path before anything is stored (rows counted), messages never echo the
 * input back, `$ref`s cannot make a small request store a large one, and the server stays alive.
 */

const server = useServer();

const Start = graphql(`
  mutation SecurityStartOperation($input: StartOperationInput!) {
    startOperation(input: $input) {
      __typename
      ... on StartOperationSuccess { operation { id } }
      ... on ValidationError { message omittedProblems problems { path message } }
      ... on UnknownOperationTypeError { message type }
    }
  }
`);

const StartBatch = graphql(`
  mutation SecurityStartBatch($input: StartBatchInput!) {
    startBatch(input: $input) {
      __typename
      ... on StartBatchSuccess { plan { itemCount } batch { id } }
      ... on ValidationError { message omittedProblems problems { path message } }
    }
  }
`);

const Alive = graphql(`
  query SecurityAlive { viewer { name } }
`);

const MB = 1024 * 1024;

async function stored() {
  const [row] = await server.db.query<{ operations: string; events: string; jobs: string }>(
    `SELECT (SELECT count(*) FROM "Operation") AS operations, (SELECT count(*) FROM "OperationEvent") AS events,
            (SELECT count(*) FROM pgboss.job) AS jobs`,
  );
  return row;
}

/** Runs `action`, checks nothing was stored meanwhile and that the server still answers. */
async function refused<T>(action: () => Promise<T>): Promise<T> {
  const before = await stored();
  const result = await action();
  expect(await stored()).toEqual(before);
  const alive = await gql(server.app.url, Alive, {}, server.tokens.alice);
  expect(alive.data?.viewer?.name).toBe('alice');
  return result;
}

async function start(type: string, input: unknown) {
  const response = await gql(server.app.url, Start, { input: { type, input } }, server.tokens.alice);
  expect(response.errors).toBeUndefined();
  return response.data?.startOperation;
}

async function startBatch(items: Item[], options: Record<string, unknown> = {}) {
  const response = await gql(
    server.app.url,
    StartBatch,
    { input: { items, ...options } as never },
    server.tokens.alice,
  );
  expect(response.errors).toBeUndefined();
  return response.data?.startBatch;
}

const echo = (id: string, input: unknown = {}, dependsOn?: string[]): Item => ({
  id,
  type: 'diagnostics.echo',
  input,
  ...(dependsOn ? { dependsOn } : {}),
});

const nested = (depth: number): unknown => {
  let value: unknown = 1;
  for (let d = 0; d < depth; d += 1) value = [value];
  return value;
};

describe('input limits: defaults', () => {
  it('are 1 MB, 64 levels, 2 MB per batch, 1,000 / 10,000 dependencies, 10,000 refs, 100 problems', () => {
    expect(loadConfig({})).toMatchObject({
      inputMaxBytes: MB,
      inputMaxDepth: 64,
      batchInputMaxBytes: 2 * MB,
      batchMaxItems: 1000,
      batchMaxItemDependencies: 1000,
      batchMaxDependencies: 10_000,
      batchMaxRefs: 10_000,
      maxProblems: 100,
    });
    expect(loadConfig({ OPSGRAPH_INPUT_MAX_BYTES: '2048', OPSGRAPH_MAX_PROBLEMS: '5' })).toMatchObject({
      inputMaxBytes: 2048,
      maxProblems: 5,
    });
  });
});

describe('startOperation input limits', () => {
  it('refuses an input over 1 MB as JSON at its path, without echoing it, storing nothing', async () => {
    const result = await refused(() => start('diagnostics.echo', { value: largeValue(MB + 20_000) }));
    expect(result).toMatchObject({
      __typename: 'ValidationError',
      omittedProblems: 0,
      problems: [{ path: ['input'], message: `is larger than ${MB} bytes as JSON` }],
    });
    if (result?.__typename === 'ValidationError') expect(result.message.length).toBeLessThan(200);
  });

  it('accepts an input just under 1 MB, and stores it whole', async () => {
    const result = await start('diagnostics.echo', { value: largeValue(MB - 2000) });
    if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(result).slice(0, 500));
    const uuid = uuidOf(result.operation.id);
    // Let it end, so that it writes nothing while later tests count rows.
    expect((await waitForTerminal(server.db, uuid, 30_000)).status).toBe('COMPLETED');
    const [row] = await server.db.query<{ bytes: number }>(
      `SELECT octet_length(input::text) AS bytes FROM "Operation" WHERE id = $1::uuid`,
      [uuid],
    );
    expect(row?.bytes).toBeGreaterThan(0.99 * MB);
  });

  it('refuses an input nested deeper than 64 levels at the path where it passes the limit', async () => {
    const expected = [
      // { value: [ … ] }: the object is level 1, the 64th array is level 65.
      {
        path: ['input', 'value', ...Array.from({ length: 63 }, () => '0')],
        message: 'nests deeper than 64 levels',
      },
    ];
    const result = await refused(() => start('diagnostics.echo', { value: nested(64) }));
    expect(result).toMatchObject({ __typename: 'ValidationError', problems: expected });
    // 100,000 levels: written by hand (JSON.stringify would overflow this side's stack).
    const depth = 100_000;
    const body = `{"query":${JSON.stringify(print(Start))},"variables":{"input":{"type":"diagnostics.echo","input":{"value":${'['.repeat(depth)}1${']'.repeat(depth)}}}}}`;
    const response = await refused(async () => {
      const answer = await fetch(server.app.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${server.tokens.alice}` },
        body,
      });
      return (await answer.json()) as { data?: { startOperation?: unknown }; errors?: unknown };
    });
    expect(response.errors).toBeUndefined();
    expect(response.data?.startOperation).toMatchObject({
      __typename: 'ValidationError',
      problems: expected,
    });
  });

  it('cuts a huge unknown type name in its error', async () => {
    const result = await refused(() => start('x'.repeat(100_000), {}));
    expect(result?.__typename).toBe('UnknownOperationTypeError');
    if (result?.__typename === 'UnknownOperationTypeError') {
      expect(result.type.length).toBeLessThanOrEqual(101);
      expect(result.message.length).toBeLessThan(1000);
    }
  });
});

describe('startBatch input limits', () => {
  it('refuses an item input over 1 MB at its path, storing nothing', async () => {
    const result = await refused(() =>
      startBatch([echo('a'), echo('b', { value: largeValue(MB + 20_000) })]),
    );
    expect(result).toMatchObject({
      __typename: 'ValidationError',
      problems: [{ path: ['items', '1', 'input'], message: `is larger than ${MB} bytes as JSON` }],
    });
  });

  it('refuses item inputs over 2 MB together', async () => {
    // 3 × ~800 KB: over the 2 MB batch limit, under the 4 MiB request body limit (checked first).
    const items = Array.from({ length: 3 }, (_, i) => echo(`i${i}`, { value: largeValue(800_000) }));
    const result = await refused(() => startBatch(items));
    expect(result).toMatchObject({
      __typename: 'ValidationError',
      problems: [
        { path: ['items'], message: `the item inputs take more than ${2 * MB} bytes as JSON together` },
      ],
    });
  });

  it('refuses an item input nested deeper than 64 levels', async () => {
    const result = await refused(() => startBatch([echo('a', { value: nested(70) })]));
    expect(result).toMatchObject({
      __typename: 'ValidationError',
      problems: [{ path: ['items', '0', 'input', 'value', ...Array.from({ length: 63 }, () => '0')] }],
    });
  });

  it('refuses more than 10,000 dependencies in a batch, and more than 1,000 on one item', async () => {
    const many = Array.from({ length: 1000 }, (_, i) =>
      echo(`i${i}`, {}, i === 0 ? [] : Array.from({ length: 11 }, (_, k) => `i${k % i}`)),
    );
    expect(await refused(() => startBatch(many))).toMatchObject({
      __typename: 'ValidationError',
      problems: [{ path: ['items'], message: 'at most 10000 dependencies in a batch (got 10989)' }],
    });
    const wide = [
      ...Array.from({ length: 1001 }, (_, i) => echo(`i${i}`)),
      echo(
        'join',
        {},
        Array.from({ length: 1001 }, (_, i) => `i${i}`),
      ),
    ].slice(-1000);
    const result = await refused(() => startBatch(wide));
    expect(result).toMatchObject({
      __typename: 'ValidationError',
      problems: expect.arrayContaining([
        { path: ['items', '999', 'dependsOn'], message: 'at most 1000 dependencies (got 1001)' },
      ]),
    });
  });

  it('refuses more than 10,000 references in a batch', async () => {
    const refs = Array.from({ length: 10_001 }, () => '$ref:a.value');
    const result = await refused(() =>
      startBatch([echo('a', { value: 1 }), echo('b', { value: refs }, ['a'])]),
    );
    expect(result).toMatchObject({
      __typename: 'ValidationError',
      problems: [{ path: ['items'], message: 'at most 10000 references ($ref:) in a batch' }],
    });
  });

  it('lists at most 100 problems and counts the rest', async () => {
    const result = await refused(() => startBatch(problemBatch()));
    expect(result?.__typename).toBe('ValidationError');
    if (result?.__typename !== 'ValidationError') return;
    expect(result.problems).toHaveLength(100);
    expect(result.omittedProblems).toBe(9900);
    expect(result.problems[0]).toEqual({
      path: ['items', '0', 'dependsOn', '0'],
      message: 'unknown item "ghost0"',
    });
    expect(result.message).toMatch(/and 9900 more problems$/);
  });

  it('never echoes a huge id or reference back', async () => {
    const huge = 'g'.repeat(200_000);
    const result = await refused(() =>
      startBatch([
        echo('a', { value: `$ref:${huge}` }),
        echo('b', {}, [huge]),
        { id: 'c', type: huge, input: {} },
      ]),
    );
    expect(result?.__typename).toBe('ValidationError');
    if (result?.__typename !== 'ValidationError') return;
    expect(result.problems).toHaveLength(3);
    expect(result.message.length).toBeLessThan(1000);
  });
});

describe('$ref resolution limits', () => {
  it('fails an item whose references would copy a 1 MB result 2,000 times, storing nothing large', async () => {
    const before = await stored();
    const result = await startBatch(amplifyingBatch(), { atomic: false });
    if (result?.__typename !== 'StartBatchSuccess' || !result.batch) throw new Error(JSON.stringify(result));
    const batch = await settleBatch(server.app.url, server.tokens.alice, result.batch.id);
    const items = itemsById(batch);
    expect(items.big?.status).toBe('COMPLETED');
    expect(items.copy).toMatchObject({
      status: 'FAILED',
      error: {
        code: 'INPUT_TOO_LARGE',
        message: `with its references resolved, the input would be larger than ${MB} bytes as JSON or nest deeper than 64 levels`,
      },
    });
    // The batch, its two items and their events: nothing else, and no input over 1 MB.
    expect(Number((await stored())?.operations)).toBe(Number(before?.operations) + 3);
    const [largest] = await server.db.query<{ bytes: number }>(
      `SELECT max(octet_length(input::text)) AS bytes FROM "Operation" WHERE "batchId" IS NOT NULL`,
    );
    expect(largest?.bytes).toBeLessThan(1.1 * MB);
    expect((await gql(server.app.url, Alive, {}, server.tokens.alice)).data?.viewer?.name).toBe('alice');
  });

  it("stops resolving a batch's items once their inputs would pass 2 MB together", async () => {
    const copies = Array.from({ length: 6 }, (_, i) =>
      echo(`copy${i}`, { value: '$ref:big.value' }, ['big']),
    );
    const items = [echo('big', { value: largeValue(900_000) }), ...copies];
    const result = await startBatch(items, { atomic: false, continueOnError: true });
    if (result?.__typename !== 'StartBatchSuccess' || !result.batch) throw new Error(JSON.stringify(result));
    const batch = await settleBatch(server.app.url, server.tokens.alice, result.batch.id);
    const outcome = Object.values(itemsById(batch));
    // big (~0.9 MB) and one copy fit in 2 MB; the other five are refused.
    expect(outcome.filter((item) => item.status === 'COMPLETED')).toHaveLength(2);
    const failed = outcome.filter((item) => item.status === 'FAILED');
    expect(failed).toHaveLength(5);
    for (const item of failed) {
      expect(item.error).toEqual({
        code: 'INPUT_TOO_LARGE',
        message: `with its references resolved, the batch's item inputs would take more than ${2 * MB} bytes as JSON together`,
      });
    }
    const [total] = await server.db.query<{ bytes: string }>(
      `SELECT sum(octet_length(input::text)) AS bytes FROM "Operation" WHERE "batchId" = (
         SELECT "batchId" FROM "Operation" WHERE "batchItemId" = 'copy0' ORDER BY "createdAt" DESC LIMIT 1)`,
    );
    expect(Number(total?.bytes)).toBeLessThan(2.2 * MB);
  });
});
