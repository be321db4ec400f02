import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClaimLostError, claimLost, heldCheck } from '../../src/collections/store.ts';
import { directTransaction } from '../../src/db/direct.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

/** The claim check a batch transaction sends with its COMMIT (`batchTransaction` in work.ts). */
let db: TestDatabase;
let pool: pg.Pool;
let operationId: string;
const claimId = randomUUID();

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 1 });
  const [user] = await db.query<{ id: string }>(`INSERT INTO "User" (name) VALUES ('held') RETURNING id`);
  const [operation] = await db.query<{ id: string }>(
    `INSERT INTO "Operation" (type, input, "ownerId", status, "claimId")
     VALUES ('test.held', '{}', $1::uuid, 'PROCESSING', $2::uuid) RETURNING id`,
    [user!.id, claimId],
  );
  operationId = operation!.id;
  await db.query('CREATE TABLE held_test (n int)');
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/** Inserts `n` in a transaction that commits only while the claim is held. */
const insertHeld = (n: number, claim: string) =>
  directTransaction(
    pool,
    { timeoutMs: 5000, synchronousCommit: false, commitWith: heldCheck(operationId, claim) },
    (tx) => tx.$executeRawUnsafe('INSERT INTO held_test VALUES ($1)', n),
  ).catch((error: unknown) => {
    throw claimLost(error);
  });

const stored = async () =>
  (await db.query<{ n: number }>('SELECT n FROM held_test ORDER BY n')).map((row) => row.n);

describe('heldCheck with the COMMIT', () => {
  it('commits while the attempt holds the operation', async () => {
    await insertHeld(1, claimId);
    expect(await stored()).toEqual([1]);
  });

  it('commits nothing and throws ClaimLostError for another claim, or once the operation has ended', async () => {
    await expect(insertHeld(2, randomUUID())).rejects.toBeInstanceOf(ClaimLostError);
    await db.query(`UPDATE "Operation" SET status = 'CANCELLED' WHERE id = $1::uuid`, [operationId]);
    await expect(insertHeld(3, claimId)).rejects.toBeInstanceOf(ClaimLostError);
    expect(await stored()).toEqual([1]);
    // The connection went back to the pool usable (rolled back, not left in a failed transaction).
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('refuses ids that are not UUIDs (they are written into the SQL)', () => {
    expect(() => heldCheck("x'; DROP TABLE held_test; --", claimId)).toThrow(/UUID/);
  });

  it('leaves other errors as they are', () => {
    const other = Object.assign(new Error('other'), { code: '23505' });
    expect(claimLost(other)).toBe(other);
  });
});
