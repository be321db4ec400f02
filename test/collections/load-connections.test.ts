import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOAD_APPLICATION_NAME, LOAD_CONNECTIONS, onLoadConnection } from '../../src/collections/work.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

/**
 * Indexing loads send their batches on pipelined connections of their own, beside the workers'
 * pool: at most LOAD_CONNECTIONS per pool at once, so many loads cannot use up the database's
 * connections; a load beyond runs on the pool.
 */
let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const openLoadConnections = async () => {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`,
    [LOAD_APPLICATION_NAME],
  );
  return row!.n;
};

describe('load connections', () => {
  it(`are at most ${LOAD_CONNECTIONS} per pool; a load beyond runs on the pool, and a closed one frees its place`, async () => {
    const loads = LOAD_CONNECTIONS + 1;
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const ready: Promise<void>[] = [];
    const kinds: ('own' | 'pool')[] = [];
    const runs = Array.from({ length: loads }, () => {
      let started!: () => void;
      ready.push(new Promise<void>((resolve) => (started = resolve)));
      return onLoadConnection(
        pool,
        async (connection) => {
          // The session carries the batch settings.
          const [settings] = await connection.$queryRawUnsafe<{ sync: string; batches: string }[]>(
            `SELECT current_setting('synchronous_commit') AS sync, current_setting('opsgraph.batches') AS batches`,
          );
          expect(settings).toEqual({ sync: 'off', batches: '0' });
          kinds.push('own');
          started();
          await held;
        },
        async () => {
          kinds.push('pool');
          started();
          await held;
        },
      );
    });
    await Promise.all(ready);
    expect(kinds.filter((kind) => kind === 'own')).toHaveLength(LOAD_CONNECTIONS);
    expect(kinds.filter((kind) => kind === 'pool')).toHaveLength(loads - LOAD_CONNECTIONS);
    expect(await openLoadConnections()).toBe(LOAD_CONNECTIONS);

    release();
    await Promise.all(runs);
    // Every place is free again: the next load gets a connection of its own.
    const again = await onLoadConnection(
      pool,
      async () => 'own',
      async () => 'pool',
    );
    expect(again).toBe('own');
  });
});
