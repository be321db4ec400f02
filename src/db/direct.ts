import type pg from 'pg';

/**
 * What raw SQL needs of a connection: Prisma's raw query methods (a client or an interactive
 * transaction), or a node-postgres connection in `directTransaction`.
 */
export interface SqlExecutor {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>;
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<number>;
}

const executorOf = (client: pg.PoolClient): SqlExecutor => ({
  async $queryRawUnsafe<T>(query: string, ...values: unknown[]) {
    return (await client.query(query, values)).rows as T;
  },
  async $executeRawUnsafe(query: string, ...values: unknown[]) {
    return (await client.query(query, values)).rowCount ?? 0;
  },
});

const ignore = () => {};

/**
 * Runs `body` in one transaction on a connection of `pool`, each statement under `timeoutMs` of
 * `statement_timeout`: commits what it did when it returns, rolls back when it throws. Parameters
 * go to the driver as they are (strings unchanged), without Prisma's JSON round trip. Rows come
 * back as node-postgres parses them (int8 as strings): cast counts to int in SQL.
 */
export async function directTransaction<T>(
  pool: pg.Pool,
  timeoutMs: number,
  body: (tx: SqlExecutor) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // A connection that breaks while checked out emits 'error': the failing query reports it.
  client.on('error', ignore);
  let broken: Error | undefined;
  try {
    await client.query(`BEGIN; SET LOCAL statement_timeout = ${Math.trunc(timeoutMs)}`);
    const result = await body(executorOf(client));
    await client.query('COMMIT');
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
