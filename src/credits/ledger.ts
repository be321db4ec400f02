import type { Db } from '../db/prisma.ts';

/**
 * The credits ledger in SQL. Whole credits in BIGINT. A user's "CreditAccount" row is changed only
 * together with the "CreditLedger" row that records the movement, in one statement:
 * - GRANT: balance += amount (openAccount, grantCredits);
 * - RESERVE at a start: balance -= cost, reserved += cost (reserveCtes, with the quota check);
 * - CONSUME when an operation completes, REFUND when it fails or is cancelled: reserved -= cost,
 *   and a refund puts it back in the balance (SETTLE_CTES, inside the status transition).
 * So for every user: granted = balance + reserved + consumed.
 */

type Executor = Pick<Db, '$queryRawUnsafe'>;

/**
 * CTEs that admit a start and reserve its credits, for user `user` (SQL expressions throughout):
 * `costs` (SQL yielding `id`, `cost` and `root`: the started operation first, then its batch items;
 * see {@link costsOf}), `need` (their total), `admitted` (`rank`: the quota check `admit(total)`
 * builds, src/quotas/quotas.ts, which raises on a refusal, so nothing below happens), `reservation`
 * (balance -= total, reserved += total) and `reserve_rows` (a RESERVE row per operation). Nothing
 * is admitted or reserved when `costs` is empty (an idempotent replay wrote no row). The balance
 * is not checked here: admit checked it under the owner's lock, and the account's CHECK
 * (balance >= 0) refuses anything else.
 */
export const reserveCtes = (user: string, costs: string, admit: (total: string) => string) => `
  costs AS (${costs}), need AS (
    SELECT COALESCE(sum(cost), 0)::bigint AS total FROM costs
  ), admitted AS (
    SELECT ${admit('need.total')} AS rank FROM need WHERE EXISTS (SELECT 1 FROM costs)
  ), reservation AS (
    UPDATE "CreditAccount" a SET balance = a.balance - need.total, reserved = a.reserved + need.total, "updatedAt" = now()
      FROM need, admitted WHERE a."userId" = ${user}
    RETURNING a.balance + need.total AS before
  ), reserve_rows AS (
    INSERT INTO "CreditLedger" ("userId", "operationId", kind, amount, "balanceAfter")
    SELECT ${user}, c.id, 'RESERVE', c.cost,
           r.before - sum(c.cost) OVER (ORDER BY NOT c.root, c.id ROWS UNBOUNDED PRECEDING)
      FROM costs c, reservation r
  )`;

/** `costs` for {@link reserveCtes}: the operation `root` and its batch items, as the statement sees them. */
export const costsOf = (root: string) =>
  `SELECT id, "creditCost"::bigint AS cost, id = ${root} AS root FROM "Operation" WHERE id = ${root} OR "batchId" = ${root}`;

/**
 * CTEs that settle the reservation of the operations in the CTE `updated` (just moved to a terminal
 * status): consumed when COMPLETED, refunded otherwise. Part of the transition's own statement, so
 * no path can end an operation without settling it, nor settle it twice (and the unique index
 * "CreditLedger_settle_once" refuses a second settlement outright). `updated` may hold several
 * operations (the worker ends the attempts that finish together in one statement,
 * src/operations/grouped.ts): each owner's account row is updated once with the sums, and each
 * ledger row's balanceAfter is the balance after it, refunds counted in id order.
 */
export const SETTLE_CTES = `
  settle_totals AS (
    SELECT "ownerId", sum("creditCost")::bigint AS released,
           sum(CASE WHEN status = 'COMPLETED' THEN 0 ELSE "creditCost" END)::bigint AS refunded
      FROM updated GROUP BY "ownerId"
  ), settled AS (
    UPDATE "CreditAccount" a
       SET reserved = a.reserved - t.released, balance = a.balance + t.refunded, "updatedAt" = now()
      FROM settle_totals t WHERE a."userId" = t."ownerId"
    RETURNING a."userId", a.balance - t.refunded AS before
  ), settle_rows AS (
    INSERT INTO "CreditLedger" ("userId", "operationId", kind, amount, "balanceAfter")
    SELECT u."ownerId", u.id, (CASE WHEN u.status = 'COMPLETED' THEN 'CONSUME' ELSE 'REFUND' END)::"CreditKind",
           u."creditCost",
           s.before + sum(CASE WHEN u.status = 'COMPLETED' THEN 0 ELSE u."creditCost" END)
                        OVER (PARTITION BY u."ownerId" ORDER BY u.id ROWS UNBOUNDED PRECEDING)
      FROM updated u JOIN settled s ON s."userId" = u."ownerId"
     ORDER BY u.id
  )`;

/**
 * Creates a user's account with its initial grant (one GRANT row), if it has none yet. Returns
 * whether it was created.
 */
export async function openAccount(db: Executor, userId: string, amount: number): Promise<boolean> {
  const rows = await db.$queryRawUnsafe<{ id: string }[]>(
    `WITH account AS (
       INSERT INTO "CreditAccount" ("userId", balance) VALUES ($1::uuid, $2::bigint)
       ON CONFLICT ("userId") DO NOTHING RETURNING "userId"
     )
     INSERT INTO "CreditLedger" ("userId", kind, amount, "balanceAfter", reason)
     SELECT "userId", 'GRANT', $2::bigint, $2::bigint, 'initial grant' FROM account
     RETURNING id::text`,
    userId,
    amount,
  );
  return rows.length > 0;
}

/** A grant's ledger row, as grantCredits returns it. */
export interface LedgerRow {
  id: string;
  userId: string;
  operationId: string | null;
  kind: 'GRANT' | 'RESERVE' | 'CONSUME' | 'REFUND';
  amount: number;
  balanceAfter: number;
  reason: string | null;
  actorId: string | null;
  createdAt: Date;
}

export const LEDGER_COLUMNS = `id::text, "userId", "operationId", kind::text, amount::float8 AS amount,
  "balanceAfter"::float8 AS "balanceAfter", reason, "actorId", "createdAt"`;

/**
 * Adds `amount` to a user's balance with a GRANT row naming the admin and the reason (opening the
 * account when it has none). Null when the user does not exist; throws when the sum would pass
 * 2^53 - 1 (the account's CHECK).
 */
export async function grant(
  db: Executor,
  grant: { userId: string; amount: number; reason: string; actorId: string },
): Promise<LedgerRow | null> {
  const rows = await db.$queryRawUnsafe<LedgerRow[]>(
    `WITH target AS (SELECT id FROM "User" WHERE id = $1::uuid),
     account AS (
       INSERT INTO "CreditAccount" ("userId", balance) SELECT id, $2::bigint FROM target
       ON CONFLICT ("userId") DO UPDATE SET balance = "CreditAccount".balance + $2::bigint, "updatedAt" = now()
       RETURNING "userId", balance
     ), row AS (
       INSERT INTO "CreditLedger" ("userId", kind, amount, "balanceAfter", reason, "actorId")
       SELECT "userId", 'GRANT', $2::bigint, balance, $3, $4::uuid FROM account
       RETURNING *
     )
     SELECT ${LEDGER_COLUMNS} FROM row`,
    grant.userId,
    grant.amount,
    grant.reason,
    grant.actorId,
  );
  return rows[0] ?? null;
}

/** A user's balance and reserved credits (zeros without an account). */
export async function accountOf(
  db: Executor,
  userId: string,
): Promise<{ balance: number; reserved: number }> {
  const rows = await db.$queryRawUnsafe<{ balance: number; reserved: number }[]>(
    `SELECT balance::float8 AS balance, reserved::float8 AS reserved FROM "CreditAccount" WHERE "userId" = $1::uuid`,
    userId,
  );
  return rows[0] ?? { balance: 0, reserved: 0 };
}

/** A page of a user's ledger, newest first, after the row with id `after` (exclusive). */
export async function ledgerPage(
  db: Executor,
  userId: string,
  page: { after: string | null; before: string | null; limit: number; inverted: boolean },
): Promise<LedgerRow[]> {
  return db.$queryRawUnsafe<LedgerRow[]>(
    `SELECT ${LEDGER_COLUMNS} FROM "CreditLedger"
      WHERE "userId" = $1::uuid AND ($2::bigint IS NULL OR id < $2::bigint) AND ($3::bigint IS NULL OR id > $3::bigint)
      ORDER BY id ${page.inverted ? 'ASC' : 'DESC'} LIMIT $4`,
    userId,
    page.after,
    page.before,
    page.limit,
  );
}

/** How many ledger entries of a user {@link ledgerPage} pages through, counting at most `cap`. */
export async function ledgerCount(db: Executor, userId: string, cap: number): Promise<number> {
  const [row] = await db.$queryRawUnsafe<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM "CreditLedger" WHERE "userId" = $1::uuid LIMIT $2) AS capped`,
    userId,
    cap,
  );
  return row?.n ?? 0;
}
