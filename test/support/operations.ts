import { setTimeout as sleep } from 'node:timers/promises';
import type { StartOperationMutation } from '../gql/graphql.ts';
import { gql } from './client.ts';
import type { TestDatabase } from './db.ts';
import { StartOperation } from './documents.ts';

/** The database id inside an Operation's global ID ("Operation:<uuid>" in base64). */
export const uuidOf = (id: string) => Buffer.from(id, 'base64').toString().split(':')[1]!;

/** Starts an operation through the API; returns its global id and database id. */
export async function startOperation(
  url: string,
  token: string,
  type: string,
  input: Record<string, unknown>,
): Promise<{ id: string; uuid: string; operation: StartedOperation }> {
  const response = await gql(url, StartOperation, { input: { type, input } }, token);
  const started = response.data?.startOperation;
  if (started?.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(response));
  return { id: started.operation.id, uuid: uuidOf(started.operation.id), operation: started.operation };
}

type StartedOperation = Extract<
  NonNullable<StartOperationMutation['startOperation']>,
  { __typename: 'StartOperationSuccess' }
>['operation'];

/** Starts a diagnostics.sleep operation and returns it as the API answered. */
export const startSleep = async (url: string, token: string, input: Record<string, unknown>) =>
  (await startOperation(url, token, 'diagnostics.sleep', input)).operation;

export interface OperationRow {
  id: string;
  status: string;
  attempt: number;
  error: { code: string; message: string } | null;
  result: Record<string, unknown> | null;
  workerId: string | null;
  claimId: string | null;
  jobId: string | null;
  nextAttemptAt: Date | null;
}

export interface EventRow {
  sequence: number;
  kind: string;
  status: string;
  message: string | null;
  data: Record<string, unknown> | null;
  createdAt: Date;
}

/** The operation's row, read straight from the database. */
export async function operationRow(db: TestDatabase, uuid: string): Promise<OperationRow> {
  const [row] = await db.query<OperationRow>(
    `SELECT id, status::text AS status, attempt, error, result, "workerId", "claimId", "jobId", "nextAttemptAt"
       FROM "Operation" WHERE id = $1`,
    [uuid],
  );
  if (!row) throw new Error(`operation ${uuid} not found`);
  return row;
}

/** The operation's events in sequence order. */
export const eventsOf = (db: TestDatabase, uuid: string) =>
  db.query<EventRow>(
    `SELECT sequence, kind, status::text AS status, message, data, "createdAt"
       FROM "OperationEvent" WHERE "operationId" = $1 ORDER BY sequence`,
    [uuid],
  );

/** Polls the row until `done` holds; fails with the last row seen after `timeoutMs`. */
export async function waitForRow(
  db: TestDatabase,
  uuid: string,
  done: (row: OperationRow) => boolean,
  timeoutMs: number,
  what = 'the expected state',
): Promise<OperationRow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await operationRow(db, uuid);
    if (done(row)) return row;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; row: ${JSON.stringify(row)}`);
    }
    await sleep(50);
  }
}

export const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED'];

/** Waits until the operation is COMPLETED, FAILED or CANCELLED. */
export const waitForTerminal = (db: TestDatabase, uuid: string, timeoutMs: number) =>
  waitForRow(db, uuid, (row) => TERMINAL.includes(row.status), timeoutMs, 'a terminal status');
