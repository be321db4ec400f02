import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { App } from '../../src/app.ts';
import type { Config } from '../../src/config.ts';
import { type ServerProcess, spawnServer, startTestApp, uniquePrefix } from './app.ts';
import { tokenFor } from './client.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { REDIS_URL } from './services.ts';

export interface Fixture {
  db: TestDatabase;
  app: App & { url: string };
  /** Tokens for alice and bob (users) and root (admin). */
  tokens: { alice: string; bob: string; root: string };
}

/**
 * One database and one in-process server per test file, started before its tests and torn down
 * after. Read the returned object's fields inside tests (they are filled in beforeAll).
 */
export function useServer(overrides: Partial<Config> = {}): Fixture {
  const fixture = {} as Fixture;
  beforeAll(async () => {
    fixture.db = await createTestDatabase();
    fixture.app = await startTestApp(fixture.db.url, overrides);
    fixture.tokens = {
      alice: await tokenFor(fixture.db.url, 'alice'),
      bob: await tokenFor(fixture.db.url, 'bob'),
      root: await tokenFor(fixture.db.url, 'root', true),
    };
  });
  afterAll(async () => {
    await fixture.app?.close();
    await fixture.db?.drop();
  });
  return fixture;
}

export interface ApiOnlyApp {
  db: TestDatabase;
  /** An in-process app with OPSGRAPH_ROLE=api: no worker takes the jobs, they stay as written. */
  app: App & { url: string };
  /** alice's user id. */
  ownerId: string;
}

/**
 * One database and an in-process API-only app per test file, for tests that write operations and
 * jobs through the modules themselves and read the rows back. Fields are filled in beforeAll.
 */
export function useApiOnlyApp(): ApiOnlyApp {
  const fixture = {} as ApiOnlyApp;
  beforeAll(async () => {
    fixture.db = await createTestDatabase();
    fixture.app = await startTestApp(fixture.db.url, { role: 'api' });
    await tokenFor(fixture.db.url, 'alice');
    const [alice] = await fixture.db.query<{ id: string }>(`SELECT id FROM "User" WHERE name = 'alice'`);
    fixture.ownerId = alice!.id;
  });
  afterAll(async () => {
    await fixture.app?.close();
    await fixture.db?.drop();
  });
  return fixture;
}

export interface Cluster {
  db: TestDatabase;
  /** An API-only process (OPSGRAPH_ROLE=api). */
  api: ServerProcess;
  /** alice's token. */
  token: string;
  /**
   * Starts a worker process (OPSGRAPH_ROLE=worker) whose reconciler looks every second; it is
   * SIGKILLed after the test that started it.
   */
  spawnWorker(name: string): Promise<{ id: string; process: ServerProcess }>;
}

/**
 * One database, an API process and worker processes started by each test, all real separate OS
 * processes sharing PostgreSQL and Redis: for tests that kill workers.
 */
export function useApiAndWorkers(): Cluster {
  const cluster = {} as Cluster;
  const workers: ServerProcess[] = [];
  let shared: Record<string, string>;
  beforeAll(async () => {
    cluster.db = await createTestDatabase();
    shared = { DATABASE_URL: cluster.db.url, REDIS_URL, OPSGRAPH_CHANNEL_PREFIX: uniquePrefix() };
    cluster.api = await spawnServer({ ...shared, OPSGRAPH_ROLE: 'api' });
    cluster.token = await tokenFor(cluster.db.url, 'alice');
  });
  afterEach(async () => {
    // Whatever a test leaves running is stopped before the next starts its own workers.
    await Promise.all(workers.splice(0).map((worker) => worker.stop('SIGKILL')));
  });
  afterAll(async () => {
    await cluster.api?.stop();
    await cluster.db?.drop();
  });
  cluster.spawnWorker = async (name) => {
    const id = `${name}-${randomBytes(4).toString('hex')}`;
    const process = await spawnServer({
      ...shared,
      OPSGRAPH_ROLE: 'worker',
      OPSGRAPH_INSTANCE_ID: id,
      // Heartbeats are per type (10 s minimum); the reconciler looks every second.
      OPSGRAPH_RECONCILE_INTERVAL_MS: '1000',
      OPSGRAPH_RECONCILE_MIN_AGE_SECONDS: '1',
    });
    workers.push(process);
    return { id, process };
  };
  return cluster;
}
