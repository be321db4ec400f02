import { describe, expect, it } from 'vitest';
import { mayApply, type OperationStatus, TRANSITIONS } from '../../src/operations/status.ts';
import { apply } from '../../src/operations/transitions.ts';
import { useServer } from '../support/fixtures.ts';

const STATUSES: OperationStatus[] = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'];

/** The table as SPEC §3 and issue 10 state it, written out so a change to it is a visible diff. */
const EXPECTED: Record<OperationStatus, OperationStatus[]> = {
  PENDING: ['PENDING', 'PROCESSING', 'CANCELLED', 'FAILED'],
  PROCESSING: ['PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED', 'PENDING'],
  COMPLETED: ['COMPLETED'],
  FAILED: [],
  CANCELLED: [],
};

describe('the state machine in one place', () => {
  const f = useServer();

  it('has PENDING → FAILED and no way out of a terminal status', () => {
    expect(TRANSITIONS.PENDING).toContain('FAILED');
    for (const from of STATUSES) {
      for (const to of STATUSES)
        expect(mayApply(from, to), `${from} → ${to}`).toBe(EXPECTED[from].includes(to));
    }
  });

  it('applies exactly the table’s pairs in the database; any other pair changes nothing', async () => {
    const db = f.app.resources.db;
    const [alice] = await f.db.query<{ id: string }>(`SELECT id FROM "User" WHERE name = 'alice'`);
    const accepted: string[] = [];
    for (const from of STATUSES) {
      for (const to of STATUSES) {
        const [row] = await f.db.query<{ id: string }>(
          `INSERT INTO "Operation" (type, input, "ownerId", status, sequence) VALUES ('test.pair', '{}', $1, $2, 1) RETURNING id`,
          [alice?.id, from],
        );
        const id = row?.id as string;
        const applied = await apply(db, { operationId: id, from: [from], to, kind: 'PAIR_TEST' });
        const [after] = await f.db.query<{ status: string; sequence: number; events: number }>(
          `SELECT status::text AS status, sequence, (SELECT count(*)::int FROM "OperationEvent" WHERE "operationId" = o.id) AS events
             FROM "Operation" o WHERE id = $1`,
          [id],
        );
        if (applied) {
          accepted.push(`${from}→${to}`);
          expect(after).toEqual({ status: to, sequence: 2, events: 1 });
        } else {
          expect(after, `${from} → ${to} refused but changed`).toEqual({
            status: from,
            sequence: 1,
            events: 0,
          });
        }
      }
    }
    const expected = STATUSES.flatMap((from) => EXPECTED[from].map((to) => `${from}→${to}`));
    expect(accepted.sort()).toEqual(expected.sort());
  });

  it('a source the table does not allow is dropped even when listed with allowed ones', async () => {
    const [alice] = await f.db.query<{ id: string }>(`SELECT id FROM "User" WHERE name = 'alice'`);
    const [row] = await f.db.query<{ id: string }>(
      `INSERT INTO "Operation" (type, input, "ownerId", status, sequence) VALUES ('test.pair', '{}', $1, 'FAILED', 1) RETURNING id`,
      [alice?.id],
    );
    const applied = await apply(f.app.resources.db, {
      operationId: row?.id as string,
      from: ['PENDING', 'FAILED'],
      to: 'PROCESSING',
      kind: 'PAIR_TEST',
    });
    expect(applied).toBeNull();
    const [after] = await f.db.query(`SELECT status::text AS status FROM "Operation" WHERE id = $1`, [
      row?.id,
    ]);
    expect(after).toEqual({ status: 'FAILED' });
  });
});
