import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { ADMIN_DATABASE_URL, databaseUrl } from './services.ts';

export interface TestDatabase {
  url: string;
  name: string;
  /** Runs SQL against the test database (for assertions only). */
  query<T extends pg.QueryResultRow>(sql: string, values?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A fresh database cloned from the migrated template: cheap isolation per test file. */
export async function createTestDatabase(): Promise<TestDatabase> {
  // Set by test/global-setup.ts for this run.
  const run = process.env.OPSGRAPH_TEST_RUN;
  const template = process.env.OPSGRAPH_TEST_TEMPLATE;
  if (!run || !template)
    throw new Error('createTestDatabase needs the vitest global setup (test/global-setup.ts)');
  const name = `opsgraph_t_${run}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // DROP … WITH (FORCE) may terminate idle connections that pool.end() has not closed yet.
  pool.on('error', () => {});
  return {
    url,
    name,
    query: async <T extends pg.QueryResultRow>(sql: string, values?: unknown[]) =>
      (await pool.query<T>(sql, values)).rows,
    async drop() {
      await pool.end();
      await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

/** Runs one statement on the admin connection (CREATE/DROP DATABASE). */
export async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
