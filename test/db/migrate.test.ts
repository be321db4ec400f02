import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.ts';
import { ADMIN_DATABASE_URL, databaseUrl } from '../support/services.ts';

/** Every migration folder, in the order they apply, with the checksum Prisma records for it. */
const MIGRATIONS = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort()
  .map((name) => ({
    name,
    checksum: createHash('sha256')
      .update(readFileSync(join(MIGRATIONS_DIR, name, 'migration.sql')))
      .digest('hex'),
  }));

interface MigrationRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  applied_steps_count: number;
}

const created: string[] = [];

async function admin<T extends pg.QueryResultRow>(sql: string, url = ADMIN_DATABASE_URL): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** An empty database (not cloned from the migrated template), dropped after the file. */
async function emptyDatabase(): Promise<string> {
  // Not the opsgraph_t_ prefix: test/global-setup.ts drops those at the start of every run.
  const name = `opsgraph_migrate_${randomBytes(6).toString('hex')}`;
  await admin(`CREATE DATABASE "${name}"`);
  created.push(name);
  return databaseUrl(name);
}

const bookkeeping = (url: string) =>
  admin<MigrationRow>(
    `SELECT migration_name, checksum, finished_at, rolled_back_at, applied_steps_count
     FROM "_prisma_migrations" ORDER BY migration_name`,
    url,
  );

afterAll(async () => {
  for (const name of created) await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
});

describe('migrate', () => {
  it('applies every migration to an empty database and records it as prisma migrate deploy does', async () => {
    expect(MIGRATIONS.length).toBeGreaterThan(0);
    const url = await emptyDatabase();
    expect(await migrate(url)).toEqual(MIGRATIONS.map((m) => m.name));

    const rows = await bookkeeping(url);
    expect(rows).toHaveLength(MIGRATIONS.length);
    for (const [i, row] of rows.entries()) {
      expect(row).toMatchObject({
        migration_name: MIGRATIONS[i]!.name,
        checksum: MIGRATIONS[i]!.checksum,
        rolled_back_at: null,
        applied_steps_count: 1,
      });
      expect(row.finished_at).toBeInstanceOf(Date);
    }
    // The schema the migrations describe really exists.
    const tables = await admin<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
      url,
    );
    expect(tables.map((t) => t.table_name)).toEqual(
      expect.arrayContaining(['Operation', 'OperationEvent', 'User', '_prisma_migrations']),
    );
  });

  it('applies nothing on a second run', async () => {
    const url = await emptyDatabase();
    await migrate(url);
    const before = await bookkeeping(url);
    expect(await migrate(url)).toEqual([]);
    expect(await bookkeeping(url)).toEqual(before);
  });

  it('applies each migration exactly once when five processes migrate a fresh database at once', async () => {
    const url = await emptyDatabase();
    const results = await Promise.all(Array.from({ length: 5 }, () => migrate(url)));
    // Exactly one run applied everything; the others found it done.
    expect(results.flat().sort()).toEqual(MIGRATIONS.map((m) => m.name));
    expect(results.filter((applied) => applied.length > 0)).toHaveLength(1);
    const rows = await bookkeeping(url);
    expect(rows.map((row) => row.migration_name)).toEqual(MIGRATIONS.map((m) => m.name));
    expect(rows.every((row) => row.finished_at !== null)).toBe(true);
  });

  it('refuses to run while a migration is left failed, naming it', async () => {
    const url = await emptyDatabase();
    await migrate(url);
    await admin(
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
       VALUES ('00000000-0000-4000-8000-000000000001', '${'0'.repeat(64)}', '29991231000000_half_done', now(), NULL, 0)`,
      url,
    );
    await expect(migrate(url)).rejects.toThrow(
      /migration 29991231000000_half_done failed earlier; resolve it before migrating again/,
    );

    // Once resolved (marked rolled back, as `prisma migrate resolve --rolled-back` does), it runs again.
    await admin(
      `UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = '29991231000000_half_done'`,
      url,
    );
    expect(await migrate(url)).toEqual([]);
  });
});
