import type { Db } from '../db/prisma.ts';

type Executor = Pick<Db, '$queryRawUnsafe'>;

interface UserFigures {
  userId: string;
  granted: number;
  balance: number;
  reserved: number;
  consumed: number;
}

/** What checkLedger found: the users and operations that break the ledger's invariant. */
export interface LedgerCheck {
  users: number;
  operations: number;
  /** Users whose granted ≠ balance + reserved + consumed, or whose reserved ≠ open reservations. */
  badUsers: UserFigures[];
  /** Every user's figures (the first 10), for printing. */
  balances: UserFigures[];
  /** Terminal operations without exactly one CONSUME or REFUND, unfinished ones with any, or any without one RESERVE. */
  badOperations: { operationId: string; status: string; reserves: number; settlements: number }[];
}

/**
 * Checks the ledger invariant over the whole database: for every user, granted = balance +
 * reserved + consumed, and reserved = what unfinished operations hold; every operation has exactly
 * one RESERVE, and exactly one CONSUME or REFUND once (and only once) it is terminal.
 */
export async function checkLedger(db: Executor): Promise<LedgerCheck> {
  const users = await db.$queryRawUnsafe<(LedgerCheck['badUsers'][number] & { ok: boolean })[]>(
    `WITH sums AS (
       SELECT "userId",
              sum(amount) FILTER (WHERE kind = 'GRANT') AS granted,
              sum(amount) FILTER (WHERE kind = 'CONSUME') AS consumed,
              sum(amount) FILTER (WHERE kind = 'RESERVE') - COALESCE(sum(amount) FILTER (WHERE kind IN ('CONSUME', 'REFUND')), 0) AS open
         FROM "CreditLedger" GROUP BY "userId"
     )
     SELECT a."userId", COALESCE(s.granted, 0)::float8 AS granted, a.balance::float8 AS balance,
            a.reserved::float8 AS reserved, COALESCE(s.consumed, 0)::float8 AS consumed,
            (COALESCE(s.granted, 0) = a.balance + a.reserved + COALESCE(s.consumed, 0)
              AND a.reserved = COALESCE(s.open, 0)) AS ok
       FROM "CreditAccount" a LEFT JOIN sums s USING ("userId")`,
  );
  const operations = await db.$queryRawUnsafe<LedgerCheck['badOperations']>(
    `SELECT o.id AS "operationId", o.status::text AS status,
            count(l.id) FILTER (WHERE l.kind = 'RESERVE')::int AS reserves,
            count(l.id) FILTER (WHERE l.kind IN ('CONSUME', 'REFUND'))::int AS settlements
       FROM "Operation" o LEFT JOIN "CreditLedger" l ON l."operationId" = o.id
      GROUP BY o.id`,
  );
  const terminal = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
  return {
    users: users.length,
    operations: operations.length,
    badUsers: users.filter((u) => !u.ok).map(({ ok: _, ...u }) => u),
    balances: users.slice(0, 10).map(({ ok: _, ...u }) => u),
    badOperations: operations.filter(
      (o) => o.reserves !== 1 || o.settlements !== (terminal.has(o.status) ? 1 : 0),
    ),
  };
}
