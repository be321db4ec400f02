import { Redis } from 'ioredis';
import pg from 'pg';
import { BUILT_IN_TYPES } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { migrate } from '../src/db/migrate.ts';
import { createLogger } from '../src/logger.ts';
import { ensureQueues, startBoss } from '../src/operations/queues.ts';
import { createRegistry } from '../src/operations/registry.ts';
import { ADMIN_DATABASE_URL, databaseUrl, REDIS_URL, TEMPLATE_DATABASE } from './support/services.ts';

/**
 * Runs once before the suite: fails (never skips) when PostgreSQL or Redis is missing, then builds
 * the template database (migrations + pg-boss schema + queues) that each test file clones.
 */
export default async function setup(): Promise<void> {
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

  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is required for the tests at ${ADMIN_DATABASE_URL}: ${(error as Error).message}`,
    );
  }
  try {
    const stale = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'opsgraph_t\\_%' OR datname = $1",
      [TEMPLATE_DATABASE],
    );
    for (const { datname } of stale.rows) await admin.query(`DROP DATABASE "${datname}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${TEMPLATE_DATABASE}"`);
  } finally {
    await admin.end();
  }

  const url = databaseUrl(TEMPLATE_DATABASE);
  await migrate(url);
  const config = loadConfig({ DATABASE_URL: url });
  const boss = await startBoss(config, url, createLogger({}, true));
  await ensureQueues(boss, createRegistry(BUILT_IN_TYPES));
  await boss.stop({ graceful: false, close: true });
}
