import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, REDACTED } from '../../src/logger.ts';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { uuidOf, waitForTerminal } from '../support/operations.ts';
import { REDIS_URL } from '../support/services.ts';

/** One pino JSON line. */
interface PinoLine {
  level: number;
  time: number;
  msg: string;
  pid: number;
  [field: string]: unknown;
}

const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 };

/** Every log line of a process, parsed; fails on a line that is not pino JSON. */
function parsed(server: ServerProcess): PinoLine[] {
  return server.logs.map((raw) => {
    const line = JSON.parse(raw) as PinoLine;
    expect(typeof line.level, raw).toBe('number');
    expect(typeof line.msg, raw).toBe('string');
    expect(typeof line.time, raw).toBe('number');
    return line;
  });
}

async function waitForLine(server: ServerProcess, match: (line: PinoLine) => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = parsed(server).find(match);
    if (found) return found;
    if (Date.now() > deadline)
      throw new Error(`no matching log line within ${timeoutMs} ms:\n${server.logs.join('\n')}`);
    await sleep(50);
  }
}

/** A GraphQL request with its own `x-request-id`. */
async function post(url: string, token: string, requestId: string, query: string, variables: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${token}`,
      'x-request-id': requestId,
    },
    body: JSON.stringify({ query, variables }),
  });
  expect(response.headers.get('x-request-id')).toBe(requestId);
  return (await response.json()) as { data?: Record<string, { __typename: string; [key: string]: unknown }> };
}

/** The database id of what a start mutation created; throws with the answer when it refused. */
function createdId(answer: Awaited<ReturnType<typeof post>>, field: string, key: string): string {
  const created = answer.data?.[field]?.[key] as { id: string } | undefined;
  if (!created) throw new Error(JSON.stringify(answer));
  return uuidOf(created.id);
}

const START = `mutation ($input: StartOperationInput!) {
  startOperation(input: $input) { __typename ... on StartOperationSuccess { operation { id } } }
}`;
const START_BATCH = `mutation ($input: StartBatchInput!) {
  startBatch(input: $input) {
    __typename
    ... on StartBatchSuccess { batch { id } }
    ... on ValidationError { problems { path message } }
  }
}`;

let db: TestDatabase;
let token: string;
const shared = () => ({ DATABASE_URL: db.url, REDIS_URL, OPSGRAPH_CHANNEL_PREFIX: uniquePrefix() });

beforeAll(async () => {
  db = await createTestDatabase();
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await db?.drop();
});

describe('logs of real processes', () => {
  let api: ServerProcess | undefined;
  let worker: ServerProcess | undefined;

  beforeAll(async () => {
    const env = { ...shared(), LOG_LEVEL: 'debug' };
    [api, worker] = await Promise.all([
      spawnServer({ ...env, OPSGRAPH_ROLE: 'api' }),
      spawnServer({ ...env, OPSGRAPH_ROLE: 'worker' }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([api?.stop(), worker?.stop()]);
  });

  it('are pino JSON lines, and a request shows its authorization header redacted', async () => {
    const requestId = 'logs-test-redaction';
    const answer = await post(api!.url, token, requestId, '{ viewer { name } }', {});
    expect(answer.data?.viewer).toMatchObject({ name: 'alice' });
    const request = await waitForLine(api!, (line) => line.msg === 'request' && line.requestId === requestId);
    expect(request.level).toBe(LEVEL.debug);
    expect(request).toMatchObject({ req: { method: 'POST', headers: { authorization: REDACTED } } });
    for (const server of [api!, worker!]) {
      parsed(server);
      expect(server.logs.join('\n')).not.toContain(token);
    }
  });

  it('the worker logs an operation a request started with that request id', async () => {
    const requestId = 'logs-test-operation';
    const answer = await post(api!.url, token, requestId, START, {
      input: { type: 'diagnostics.sleep', input: { steps: 3, stepMs: 10, failAtStep: 2 } },
    });
    const operationId = createdId(answer, 'startOperation', 'operation');
    await waitForTerminal(db, operationId, 15_000);
    const started = await waitForLine(
      worker!,
      (line) => line.msg === 'attempt started' && line.operationId === operationId,
    );
    expect(started).toMatchObject({ requestId, operationId, type: 'diagnostics.sleep', role: 'worker' });
    const failed = await waitForLine(
      worker!,
      (line) => line.msg === 'attempt failed' && line.operationId === operationId,
    );
    expect(failed).toMatchObject({ requestId, level: LEVEL.warn });
  });

  it('the worker logs a batch and its items with the request id and the batch id', async () => {
    const requestId = 'logs-test-batch';
    const answer = await post(api!.url, token, requestId, START_BATCH, {
      input: {
        atomic: false,
        items: [
          { id: 'a', type: 'diagnostics.sleep', input: { steps: 1, stepMs: 10 } },
          { id: 'b', type: 'diagnostics.sleep', input: { steps: 1, stepMs: 10 }, dependsOn: ['a'] },
        ],
      },
    });
    const batchId = createdId(answer, 'startBatch', 'batch');
    await waitForTerminal(db, batchId, 20_000);
    const items = await db.query<{ id: string }>('SELECT id FROM "Operation" WHERE "batchId" = $1', [
      batchId,
    ]);
    expect(items).toHaveLength(2);
    for (const item of items) {
      const line = await waitForLine(
        worker!,
        (l) => l.msg === 'attempt started' && l.operationId === item.id,
      );
      expect(line).toMatchObject({ requestId, batchId });
    }
    const coordinator = await waitForLine(
      worker!,
      (l) => l.msg === 'attempt started' && l.operationId === batchId,
    );
    expect(coordinator).toMatchObject({ requestId, type: 'batch' });
  });
});

describe('LOG_LEVEL', () => {
  it('warn silences info and debug lines, and warnings still appear', async () => {
    const server = await spawnServer({ ...shared(), LOG_LEVEL: 'warn' });
    let exited = false;
    try {
      const answer = await post(server.url, token, 'logs-test-level', START, {
        input: { type: 'diagnostics.sleep', input: { steps: 2, stepMs: 10, failAtStep: 1 } },
      });
      const operationId = createdId(answer, 'startOperation', 'operation');
      await waitForLine(server, (line) => line.msg === 'attempt failed' && line.operationId === operationId);
      // SIGTERM logs "draining" at info: absent once the process has exited.
      expect(await server.stop()).toBe(0);
      exited = true;
      const lines = parsed(server);
      expect(lines.filter((line) => line.level < LEVEL.warn)).toEqual([]);
      expect(lines.some((line) => line.msg === 'draining')).toBe(false);
    } finally {
      if (!exited) await server.stop('SIGKILL');
    }
  });

  it('a bad value stops the process naming LOG_LEVEL', async () => {
    await expect(spawnServer({ ...shared(), LOG_LEVEL: 'loud' })).rejects.toThrow(/LOG_LEVEL/);
  });
});

describe('redaction', () => {
  it('replaces credentials and URL passwords in any entry', () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (chunk) => chunks.push(String(chunk)));
    const logger = createLogger({ format: 'json', destination: out, bindings: { component: 'test' } });
    logger.info('config', {
      token: 'tok-secret',
      connectionParams: { authorization: 'Bearer ws-secret' },
      config: { jwtSecret: 'jwt-secret-value', databaseUrl: 'postgresql://u:db-secret@h:5432/x' },
      REDIS_URL: 'redis://:redis-secret@h:6379',
      url: 'http://localhost:4000/graphql',
    });
    logger.child({ requestId: 'r1' }).error('failed', { error: new Error('boom') });
    const [config, failed] = chunks
      .join('')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const text = chunks.join('');
    for (const secret of ['tok-secret', 'ws-secret', 'jwt-secret-value', 'db-secret', 'redis-secret'])
      expect(text).not.toContain(secret);
    expect(config).toMatchObject({
      msg: 'config',
      component: 'test',
      token: REDACTED,
      connectionParams: { authorization: REDACTED },
      config: { jwtSecret: REDACTED, databaseUrl: `postgresql://u:${REDACTED}@h:5432/x` },
      REDIS_URL: `redis://:${REDACTED}@h:6379`,
      url: 'http://localhost:4000/graphql',
    });
    // Errors go through pino's err serializer under `err`.
    expect(failed).toMatchObject({
      level: LEVEL.error,
      requestId: 'r1',
      err: { type: 'Error', message: 'boom' },
    });
    expect(failed.err.stack).toContain('boom');
  });
});
