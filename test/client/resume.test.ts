import { createClient, type OperationUpdate } from '@opsgraph/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { gql, tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { GetOperation } from '../support/documents.ts';
import { startTcpProxy } from '../support/proxy.ts';
import { REDIS_URL } from '../support/services.ts';

// The client against a real server in its own process: SIGTERM and restart it on the same port,
// or cut its connections, while an operation is being watched; the client must deliver every
// event exactly once, in order, and end after the terminal state by itself.

let db: TestDatabase;
let server: ServerProcess | undefined;
let port: string;
let token: string;
const prefix = uniquePrefix();

const start = (env: Record<string, string> = {}) =>
  spawnServer({
    DATABASE_URL: db.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: prefix,
    OPSGRAPH_ROLE: 'all',
    OPSGRAPH_SHUTDOWN_GRACE_MS: '300',
    ...env,
  });

beforeAll(async () => {
  db = await createTestDatabase();
  server = await start();
  port = new URL(server.url).port;
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await server?.stop('SIGKILL');
  await db?.drop();
});

/** The sequences the server stored for the operation, from its audit trail. */
async function storedSequences(url: string, id: string): Promise<number[]> {
  const response = await gql(url, GetOperation, { id }, token);
  return response.data?.operation?.events.edges.map((edge) => edge.node.sequence) ?? [];
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.each(['ws', 'sse'] as const)('watchOperation over %s', (transport) => {
  it('delivers 1..N once each, in order, across a SIGTERM and a restart on the same port, and ends after COMPLETED', async () => {
    const url = server!.url;
    const client = createClient({ url, token, transport, retry: { baseDelayMs: 100, maxDelayMs: 1000 } });
    const started = await client.startOperation({
      type: 'diagnostics.sleep',
      input: { steps: 20, stepMs: 150 },
    });
    if (started.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
    const id = started.operation.id;
    const connections: boolean[] = [];
    const seen: OperationUpdate[] = [];
    let restarted: Promise<void> | undefined;
    for await (const update of client.watchOperation(id, {
      afterSequence: 0,
      onConnectionChange: (connected) => connections.push(connected),
    })) {
      seen.push(update);
      if (!restarted && update.event?.kind === 'PROGRESS') {
        // Mid-stream: stop the server (it ends the stream with SERVER_SHUTTING_DOWN), start it again.
        restarted = (async () => {
          const stopping = server!;
          const code = await stopping.stop('SIGTERM');
          // Restart either way, so a failed shutdown fails this test alone (with its logs).
          server = await start({ PORT: port });
          expect(code, stopping.logs.slice(-60).join('\n')).toBe(0);
        })();
      }
    }
    await restarted;
    client.close();

    const sequences = seen.map((update) => update.sequence);
    const last = seen.at(-1)!;
    expect(sequences).toEqual(range(1, last.sequence));
    expect(last.event?.status).toBe('COMPLETED');
    expect(sequences).toEqual(await storedSequences(server!.url, id));
    // It was cut and resumed: events from before the shutdown and after the restart.
    expect(seen.some((update) => update.event?.kind === 'RELEASED')).toBe(true);
    expect(connections.filter((connected) => connected).length).toBeGreaterThanOrEqual(2);
  }, 180_000); // a server restart, and the released operation taken up again: slow on a loaded machine

  it('delivers the current state, then every later event once, across connections cut mid-stream', async () => {
    const proxy = await startTcpProxy(server!.url);
    let tokenCalls = 0;
    const client = createClient({
      url: proxy.url,
      getToken: () => {
        tokenCalls += 1;
        return token;
      },
      transport,
      retry: { baseDelayMs: 50, maxDelayMs: 500 },
    });
    const started = await client.startOperation({
      type: 'diagnostics.sleep',
      input: { steps: 16, stepMs: 150 },
    });
    if (started.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
    const seen: OperationUpdate[] = [];
    let drops = 0;
    for await (const update of client.watchOperation(started.operation.id)) {
      seen.push(update);
      // Cut every connection after the 2nd and the 6th progress event.
      const progress = seen.filter((u) => u.event?.kind === 'PROGRESS').length;
      if (update.event?.kind === 'PROGRESS' && (progress === 2 || progress === 6)) {
        proxy.drop();
        drops += 1;
      }
    }
    client.close();
    await proxy.close();

    expect(drops).toBe(2);
    const [first, ...rest] = seen;
    expect(first?.event).toBeNull(); // the current state first
    const sequences = rest.map((update) => update.sequence);
    expect(sequences).toEqual(range(first!.sequence + 1, seen.at(-1)!.sequence));
    expect(seen.at(-1)?.event?.status).toBe('COMPLETED');
    const stored = await storedSequences(server!.url, started.operation.id);
    expect(sequences).toEqual(stored.filter((sequence) => sequence > first!.sequence));
    // A token for every (re)connect (SSE: every request), and at least one per drop.
    expect(tokenCalls).toBeGreaterThanOrEqual(3);
  });
});

describe('watchOperation over ws, on a connection that goes silent', () => {
  it('notices the missing pong, reconnects and delivers every event once', async () => {
    const proxy = await startTcpProxy(server!.url);
    const client = createClient({ url: proxy.url, token, pingIntervalMs: 400, retry: { baseDelayMs: 50 } });
    const started = await client.startOperation({
      type: 'diagnostics.sleep',
      input: { steps: 12, stepMs: 150 },
    });
    if (started.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(started));
    const seen: OperationUpdate[] = [];
    let stalled = false;
    for await (const update of client.watchOperation(started.operation.id, { afterSequence: 0 })) {
      seen.push(update);
      if (!stalled && update.event?.kind === 'PROGRESS') {
        stalled = true;
        proxy.stall();
      }
    }
    client.close();
    await proxy.close();
    const sequences = seen.map((update) => update.sequence);
    expect(sequences).toEqual(range(1, seen.at(-1)!.sequence));
    expect(seen.at(-1)?.event?.status).toBe('COMPLETED');
    expect(proxy.connections).toBeGreaterThanOrEqual(2);
  });
});
