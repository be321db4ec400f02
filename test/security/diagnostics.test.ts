import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { useServer } from '../support/fixtures.ts';
import { REDIS_URL } from '../support/services.ts';
import { OPERATION_TYPES, post, start, startBatch } from './quota-support.ts';

const names = async (url: string, token?: string) =>
  (await post<{ operationTypes: { name: string }[] }>(url, OPERATION_TYPES, {}, token)).operationTypes.map(
    (type) => type.name,
  );

const diagnostics = (list: string[]) => list.filter((name) => name.startsWith('diagnostics.'));

describe('configuration', () => {
  it('offers diagnostics to everyone by default, to admins only when NODE_ENV=production', () => {
    expect(loadConfig({}).diagnostics).toBe('all');
    expect(loadConfig({ NODE_ENV: 'development' }).diagnostics).toBe('all');
    expect(loadConfig({ NODE_ENV: 'production' }).diagnostics).toBe('admins');
    expect(loadConfig({ NODE_ENV: 'production', OPSGRAPH_DIAGNOSTICS: 'all' }).diagnostics).toBe('all');
    expect(loadConfig({ OPSGRAPH_DIAGNOSTICS: 'off' }).diagnostics).toBe('off');
    expect(() => loadConfig({ OPSGRAPH_DIAGNOSTICS: 'everyone' })).toThrow(/OPSGRAPH_DIAGNOSTICS/);
  });
});

describe('a production process (NODE_ENV=production)', () => {
  let db: TestDatabase;
  let server: ServerProcess;
  let alice: string;
  let root: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    server = await spawnServer({
      DATABASE_URL: db.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      NODE_ENV: 'production',
    });
    alice = await tokenFor(db.url, 'alice');
    root = await tokenFor(db.url, 'root', true);
  });
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  it('lists diagnostics types to admins only', async () => {
    const forAdmin = await names(server.url, root);
    expect(diagnostics(forAdmin)).toEqual(['diagnostics.echo', 'diagnostics.flaky', 'diagnostics.sleep']);
    const forUser = await names(server.url, alice);
    expect(diagnostics(forUser)).toEqual([]);
    expect(forUser).toContain('collection.create');
    expect(diagnostics(await names(server.url))).toEqual([]);
  });

  it('refuses them to other users as unknown types, alone and in batches, storing nothing', async () => {
    const refused = await start(server.url, alice, 'diagnostics.sleep', { steps: 1, stepMs: 1 });
    expect(refused).toMatchObject({ __typename: 'UnknownOperationTypeError', type: 'diagnostics.sleep' });
    expect(diagnostics(refused.knownTypes)).toEqual([]);
    expect(refused.message).not.toMatch(/diagnostics\.(echo|flaky)/);

    const batch = await startBatch(server.url, alice, {
      atomic: false,
      items: [
        { id: 'a', type: 'collection.create', input: { name: 'notes' } },
        { id: 'b', type: 'diagnostics.echo', input: { value: 1 } },
      ],
    });
    expect(batch.__typename).toBe('ValidationError');
    expect(batch.problems).toEqual([
      { path: ['items', '1', 'type'], message: 'unknown operation type "diagnostics.echo"' },
    ]);
    const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM "Operation"');
    expect(row!.n).toBe(0);

    // The process is alive, and an admin may still use them.
    const allowed = await start(server.url, root, 'diagnostics.echo', { value: 1 });
    expect(allowed.__typename).toBe('StartOperationSuccess');
  });
});

describe('OPSGRAPH_DIAGNOSTICS=off', () => {
  const server = useServer({ diagnostics: 'off' });

  it('refuses them to admins too, and lists them to nobody', async () => {
    const { app, tokens } = server;
    expect(diagnostics(await names(app.url, tokens.root))).toEqual([]);
    const refused = await start(app.url, tokens.root, 'diagnostics.echo', { value: 1 });
    expect(refused.__typename).toBe('UnknownOperationTypeError');
    const batch = await startBatch(app.url, tokens.root, {
      items: [{ id: 'a', type: 'diagnostics.echo', input: {} }],
    });
    expect(batch.__typename).toBe('ValidationError');
    const created = await start(app.url, tokens.alice, 'collection.create', { name: 'still-works' });
    expect(created.__typename).toBe('StartOperationSuccess');
  });
});
