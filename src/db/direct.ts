import type pg from 'pg';

/**
 * What raw SQL needs of a connection: Prisma's raw query methods (a client or an interactive
 * transaction), or a node-postgres connection in `directTransaction`.
 */
export interface SqlExecutor {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>;
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<number>;
}

/** Raw SQL on one node-postgres connection (a pooled one, or a client of its own). */
export const executorOf = (client: pg.ClientBase): SqlExecutor => ({
  async $queryRawUnsafe<T>(query: string, ...values: unknown[]) {
    return (await client.query(query, values)).rows as T;
  },
  async $executeRawUnsafe(query: string, ...values: unknown[]) {
    return (await client.query(query, values)).rowCount ?? 0;
  },
});

const ignore = () => {};

/** How `directTransaction` runs its transaction. */
export interface DirectOptions {
  /** `statement_timeout` of each statement, in milliseconds. */
  timeoutMs: number;
  /**
   * false: the COMMIT returns without waiting for its WAL to reach the disk
   * (`synchronous_commit = off` for this transaction only). Only for a transaction whose loss in
   * a database crash a later synchronous commit would reveal and that can be done again (see
   * `batchTransaction` in src/collections/work.ts): any later synchronous commit flushes the WAL
   * up to its own record, this one's included.
   */
  synchronousCommit?: boolean;
  /**
   * SQL without parameters sent in one round trip with the COMMIT (`<sql>; COMMIT`): when it
   * fails, nothing commits and its error is thrown. A check the commit depends on, made last.
   */
  commitWith?: string;
}

/**
 * Runs `body` in one transaction on a connection of `pool`, each statement under `timeoutMs` of
 * `statement_timeout`: commits what it did when it returns, rolls back when it throws. Parameters
 * go to the driver as they are (strings unchanged), without Prisma's JSON round trip. Rows come
 * back as node-postgres parses them (int8 as strings): cast counts to int in SQL.
 */
export async function directTransaction<T>(
  pool: pg.Pool,
  options: DirectOptions,
  body: (tx: SqlExecutor) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // A connection that breaks while checked out emits 'error': the failing query reports it.
  client.on('error', ignore);
  let broken: Error | undefined;
  try {
    await client.query(
      `BEGIN; SET LOCAL statement_timeout = ${Math.trunc(options.timeoutMs)}${
        options.synchronousCommit === false ? '; SET LOCAL synchronous_commit = off' : ''
      }`,
    );
    const result = await body(executorOf(client));
    await client.query(options.commitWith ? `${options.commitWith}; COMMIT` : 'COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch((failure: Error) => {
      broken = failure; // not reusable: the pool closes it
    });
    throw error;
  } finally {
    client.removeListener('error', ignore);
    client.release(broken);
  }
}
