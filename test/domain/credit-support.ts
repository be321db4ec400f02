import { issueToken } from '../../src/auth/viewer.ts';
import { checkLedger, type LedgerCheck } from '../../src/credits/invariant.ts';
import { createDb } from '../../src/db/prisma.ts';
import { TEST_JWT_SECRET } from '../support/app.ts';
import type { TestDatabase } from '../support/db.ts';

// biome-ignore lint/suspicious/noExplicitAny: answers of raw query strings
export type Data = Record<string, any>;

/** One GraphQL request as a raw query string; returns data (errors fail the caller's expectations). */
export async function ask(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  token: string,
): Promise<{ data?: Data; errors?: unknown[] }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as { data?: Data; errors?: unknown[] };
}

/** A new user with the given initial credits, and their token. */
export async function userWithCredits(databaseUrl: string, name: string, credits: number, admin = false) {
  const db = createDb(databaseUrl, { poolSize: 1 });
  try {
    return await issueToken(db, TEST_JWT_SECRET, name, admin, { initialCredits: credits });
  } finally {
    await db.$disconnect();
  }
}

/** The ledger invariant over the test database (src/credits/invariant.ts). */
export const ledgerCheck = (db: TestDatabase): Promise<LedgerCheck> =>
  checkLedger({
    $queryRawUnsafe: (<T>(sql: string, ...values: unknown[]) => db.query(sql, values) as Promise<T>) as never,
  });

/** An operation's ledger rows, oldest first. */
export const ledgerOf = (db: TestDatabase, operationId: string) =>
  db.query<{ kind: string; amount: string }>(
    `SELECT kind::text AS kind, amount::text AS amount FROM "CreditLedger" WHERE "operationId" = $1 ORDER BY id`,
    [operationId],
  );

export const START = `mutation($input: StartOperationInput!) { startOperation(input: $input) {
  __typename
  ... on StartOperationSuccess { operation { id status } }
  ... on InsufficientCreditsError { required available message }
  ... on QuotaExceededError { quota limit }
} }`;

export const START_BATCH = `mutation($input: StartBatchInput!) { startBatch(input: $input) {
  __typename
  ... on InsufficientCreditsError { required available }
  ... on ValidationError { message }
} }`;

export const CREDITS = `query { viewer { credits { balance reserved } creditLedger(first: 50) { edges { node { kind amount balanceAfter operationId reason } } } } }`;
