import type { Resources } from '../resources.ts';
import { type Check, fixEach } from './finding.ts';
import { scanPages } from './scan.ts';

interface AccountDrift {
  userId: string;
  name: string;
  balance: string;
  reserved: string;
  /** From the ledger: granted − consumed − open reservations. */
  ledgerBalance: string;
  /** From the ledger: reservations not yet consumed or refunded. */
  open: string;
  /** balanceAfter of the user's latest ledger row (null without rows). */
  lastBalanceAfter: string | null;
  /** This user's operations without exactly one RESERVE, or settled not exactly once when (and only when) ended. */
  badOperations: number;
}

/** Sums of one user's ledger (index CreditLedger (userId, id)): granted, consumed, open, last balanceAfter. */
const SUMS = (user: string) => `
  SELECT COALESCE(sum(amount) FILTER (WHERE kind = 'GRANT'), 0)
         - COALESCE(sum(amount) FILTER (WHERE kind = 'CONSUME'), 0)
         - (COALESCE(sum(amount) FILTER (WHERE kind = 'RESERVE'), 0)
            - COALESCE(sum(amount) FILTER (WHERE kind IN ('CONSUME', 'REFUND')), 0)) AS "ledgerBalance",
         COALESCE(sum(amount) FILTER (WHERE kind = 'RESERVE'), 0)
         - COALESCE(sum(amount) FILTER (WHERE kind IN ('CONSUME', 'REFUND')), 0) AS open,
         (SELECT "balanceAfter" FROM "CreditLedger" WHERE "userId" = ${user} ORDER BY id DESC LIMIT 1) AS "lastBalanceAfter"
    FROM "CreditLedger" WHERE "userId" = ${user}`;

/**
 * One keyset page of credit accounts (by user), unchanged for `minAgeSeconds`, whose balance or
 * reserved disagree with their ledger: granted = balance + reserved + consumed, reserved = open
 * reservations. For each, how many of the user's operations break the per-operation rule.
 */
async function accountPage(r: Resources, after: string | null, size: number, minAgeSeconds: number) {
  const [row] = await r.db.$queryRawUnsafe<{ end: string | null; found: AccountDrift[] }[]>(
    `WITH page AS (
       SELECT "userId", balance, reserved, "updatedAt" FROM "CreditAccount"
        WHERE $1::uuid IS NULL OR "userId" > $1::uuid ORDER BY "userId" LIMIT $2
     ), drift AS (
       SELECT p."userId", p.balance, p.reserved, s.*
         FROM page p CROSS JOIN LATERAL (${SUMS('p."userId"')}) s
        WHERE p."updatedAt" < now() - make_interval(secs => $3)
          AND (p.balance <> s."ledgerBalance" OR p.reserved <> s.open)
     )
     SELECT (SELECT max("userId"::text) FROM page) AS "end",
            COALESCE((SELECT json_agg(d) FROM (
              SELECT d."userId", u.name, d.balance::text AS balance, d.reserved::text AS reserved,
                     d."ledgerBalance"::text AS "ledgerBalance", d.open::text AS open,
                     d."lastBalanceAfter"::text AS "lastBalanceAfter",
                     (SELECT count(*)::int FROM "Operation" o
                       WHERE o."ownerId" = d."userId"
                         AND ((SELECT count(*) FROM "CreditLedger" l WHERE l."operationId" = o.id AND l.kind = 'RESERVE') <> 1
                           OR (SELECT count(*) FROM "CreditLedger" l WHERE l."operationId" = o.id AND l.kind IN ('CONSUME', 'REFUND'))
                              <> (CASE WHEN o.status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN 1 ELSE 0 END))) AS "badOperations"
                FROM drift d JOIN "User" u ON u.id = d."userId"
            ) d), '[]'::json) AS found`,
    after,
    size,
    minAgeSeconds,
  );
  return { end: row?.end ?? null, found: row?.found ?? [] };
}

/**
 * Whether the ledger can be trusted to repair the account: every operation of the user is reserved
 * once and settled once exactly when it ended (so the open reservations are right), and the ledger
 * agrees with itself — its sums give the balance its latest row recorded. Then only the account row
 * drifted, and setting it from the ledger restores what every movement recorded.
 */
const ledgerTrusted = (d: AccountDrift) =>
  d.badOperations === 0 &&
  d.lastBalanceAfter !== null &&
  BigInt(d.lastBalanceAfter) === BigInt(d.ledgerBalance) &&
  BigInt(d.ledgerBalance) >= 0n &&
  BigInt(d.open) >= 0n;

/**
 * Sets the account's balance and reserved from its ledger in one statement, only if the account has
 * not changed since it was read (every movement changes the account and adds its ledger row in one
 * statement, so an unchanged account means an unchanged ledger).
 */
async function restoreAccount(r: Resources, d: AccountDrift): Promise<string> {
  const rows = await r.db.$queryRawUnsafe<{ balance: string; reserved: string }[]>(
    `UPDATE "CreditAccount" a SET balance = s."ledgerBalance", reserved = s.open, "updatedAt" = now()
       FROM (${SUMS('$1::uuid')}) s
      WHERE a."userId" = $1::uuid AND a.balance = $2::bigint AND a.reserved = $3::bigint
        AND s."ledgerBalance" = s."lastBalanceAfter" AND s."ledgerBalance" >= 0 AND s.open >= 0
      RETURNING a.balance::text AS balance, a.reserved::text AS reserved`,
    d.userId,
    d.balance,
    d.reserved,
  );
  const done = rows[0];
  return done
    ? `account set from the ledger: balance ${done.balance}, reserved ${done.reserved}`
    : 'changed meanwhile; left alone';
}

/**
 * Credit accounts whose balance / reserved disagree with their ledger. `--fix` sets the account from
 * the ledger only when the ledger is provably intact (`ledgerTrusted`); otherwise — a ledger row
 * missing or altered, an operation reserved or settled the wrong number of times — it only reports:
 * which side is wrong cannot be told from the data, and credits are never made up or taken away.
 */
export const creditLedger: Check = {
  kind: 'credit-ledger',
  description:
    'credit accounts whose balance / reserved disagree with their ledger (--fix only when the ledger is intact)',
  async run(r, options) {
    const drifts = await scanPages<string, AccountDrift>(
      (after, size) => accountPage(r, after, size, options.minAgeSeconds),
      options,
    );
    const finding = (d: AccountDrift) => {
      const trusted = ledgerTrusted(d);
      const why =
        d.badOperations > 0
          ? `${d.badOperations} of the user's operations are not reserved once and settled once when ended`
          : `the ledger's sums give balance ${d.ledgerBalance} but its latest row recorded ${d.lastBalanceAfter ?? 'nothing'}`;
      return {
        kind: 'credit-ledger',
        subject: `CreditAccount ${d.userId}`,
        problem: `${JSON.stringify(d.name)}: balance ${d.balance}, reserved ${d.reserved}; ledger says balance ${d.ledgerBalance}, reserved ${d.open}`,
        action: trusted
          ? `set balance ${d.ledgerBalance}, reserved ${d.open} from the intact ledger`
          : `not fixable: ${why}`,
        fixable: trusted,
      };
    };
    if (!options.fix) return drifts.map(finding);
    return fixEach(drifts, finding, (d) => restoreAccount(r, d));
  },
};
