import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer, uniquePrefix } from './support/app.ts';
import { gql, subscribeSse, subscribeWs, tokenFor } from './support/client.ts';
import { createTestDatabase, type TestDatabase } from './support/db.ts';
import { OperationUpdated, StartOperation } from './support/documents.ts';
import { REDIS_URL } from './support/services.ts';

let db: TestDatabase;
let server: ServerProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await server?.stop('SIGKILL');
  await db?.drop();
});

interface ShutdownError {
  extensions?: { code?: string; retryable?: boolean; afterSequence?: number };
}

describe('shutdown', () => {
  it('ends open subscriptions with SERVER_SHUTTING_DOWN and the sequence to resume after, over WebSocket and SSE', async () => {
    server = await spawnServer({
      DATABASE_URL: db.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      OPSGRAPH_ROLE: 'all',
      OPSGRAPH_SHUTDOWN_GRACE_MS: '300',
    });
    const token = await tokenFor(db.url, 'alice');
    const response = await gql(
      server.url,
      StartOperation,
      { input: { type: 'diagnostics.sleep', input: { steps: 100, stepMs: 100 } } },
      token,
    );
    const result = response.data?.startOperation;
    if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
    const ws = subscribeWs(server.url, OperationUpdated, { id: result.operation.id }, token);
    const sse = subscribeSse(server.url, OperationUpdated, { id: result.operation.id }, token);
    await ws.waitUntil((m) => m.operationUpdated.event?.kind === 'PROGRESS');
    await sse.waitUntil((m) => m.operationUpdated.event?.kind === 'PROGRESS');

    expect(await server.stop('SIGTERM')).toBe(0);
    await Promise.all([ws.done, sse.done]);

    for (const sub of [ws, sse]) {
      // A protocol-level error for the subscription, not a cut connection.
      const [errors] = sub.errors as ShutdownError[][];
      expect(Array.isArray(errors), JSON.stringify(sub.errors)).toBe(true);
      const extensions = errors?.[0]?.extensions;
      expect(extensions?.code).toBe('SERVER_SHUTTING_DOWN');
      expect(extensions?.retryable).toBe(true);
      expect(extensions?.afterSequence).toBe(sub.messages.at(-1)?.operationUpdated.sequence);
      // The operation was released for another worker, and subscribers saw that before the end.
      expect(sub.messages.at(-1)?.operationUpdated.event?.kind).toBe('RELEASED');
    }
  });
});
