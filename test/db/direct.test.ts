import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { directTransaction } from '../../src/db/direct.ts';
import { ADMIN_DATABASE_URL } from '../support/services.ts';

/** One connection, so every transaction below and the checks after it share a session. */
const pool = new pg.Pool({ connectionString: ADMIN_DATABASE_URL, max: 1 });
afterAll(() => pool.end());

const setting = async (name: string) =>
  (await pool.query<{ value: string }>('SELECT current_setting($1) AS value', [name])).rows[0]!.value;

describe('directTransaction', () => {
  it('sets its statement timeout and, when asked, asynchronous commit for its transaction only', async () => {
    const sessionCommit = await setting('synchronous_commit');
    const sessionTimeout = await setting('statement_timeout');
    const inside = await directTransaction(pool, { timeoutMs: 4321, synchronousCommit: false }, (tx) =>
      tx.$queryRawUnsafe<{ commit: string; timeout: string }[]>(
        `SELECT current_setting('synchronous_commit') AS commit, current_setting('statement_timeout') AS timeout`,
      ),
    );
    expect(inside[0]).toEqual({ commit: 'off', timeout: '4321ms' });
    expect(await setting('synchronous_commit')).toBe(sessionCommit);
    expect(await setting('statement_timeout')).toBe(sessionTimeout);

    const synchronous = await directTransaction(pool, { timeoutMs: 1000 }, (tx) =>
      tx.$queryRawUnsafe<{ commit: string }[]>(`SELECT current_setting('synchronous_commit') AS commit`),
    );
    expect(synchronous[0]!.commit).toBe(sessionCommit);
  });

  it('commits what the body did, and rolls back when it throws', async () => {
    const table = `direct_test_${process.pid}_${Date.now()}`;
    await pool.query(`CREATE TEMP TABLE ${table} (n int)`);
    await directTransaction(pool, { timeoutMs: 1000, synchronousCommit: false }, (tx) =>
      tx.$executeRawUnsafe(`INSERT INTO ${table} VALUES (1)`),
    );
    await expect(
      directTransaction(pool, { timeoutMs: 1000, synchronousCommit: false }, async (tx) => {
        await tx.$executeRawUnsafe(`INSERT INTO ${table} VALUES (2)`);
        throw new Error('no');
      }),
    ).rejects.toThrow('no');
    expect((await pool.query(`SELECT n FROM ${table}`)).rows).toEqual([{ n: 1 }]);
  });
});
