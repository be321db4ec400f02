import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { BUILT_IN_TYPES } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { migrate } from '../src/db/migrate.ts';
import { createLogger } from '../src/logger.ts';
import { ensureQueues, startBoss } from '../src/operations/queues.ts';
import { createRegistry } from '../src/operations/registry.ts';
import { adminQuery } from './support/db.ts';
import { ADMIN_DATABASE_URL, databaseUrl, REDIS_URL } from './support/services.ts';

/**
 * Runs once before the suite: fails (never skips) when PostgreSQL or Redis is missing, then builds
 * the template database (migrations + pg-boss schema + queues) that each test file clones.
 * Database names carry a per-run id, so concurrent runs on one server never touch each other's.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new Error(`Redis is required for the tests at ${REDIS_URL}: ${(error as Error).message}`);
  } finally {
    redis.disconnect();
  }

  const run = randomBytes(4).toString('hex');
  const template = `opsgraph_tpl_${run}`;
  // Inherited by the test workers; read by test/support/db.ts.
  process.env.OPSGRAPH_TEST_RUN = run;
  process.env.OPSGRAPH_TEST_TEMPLATE = template;
  try {
    await adminQuery(`CREATE DATABASE "${template}"`);
  } catch (error) {
    throw new Error(
      `PostgreSQL is required for the tests at ${ADMIN_DATABASE_URL}: ${(error as Error).message}`,
    );
  }

  const url = databaseUrl(template);
  await migrate(url);
  const config = loadConfig({ DATABASE_URL: url });
  const boss = await startBoss(config, url, createLogger({ level: 'error' }));
  await ensureQueues(boss, createRegistry(BUILT_IN_TYPES));
  await boss.stop({ graceful: false, close: true });

  return async function teardown() {
    const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await client.connect();
    try {
      const { rows } = await client.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2',
        [template, `opsgraph_t_${run}_%`],
      );
      for (const { datname } of rows) await client.query(`DROP DATABASE "${datname}" WITH (FORCE)`);
    } finally {
      await client.end();
    }
  };
}
