import { createHash } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';
import { inStatementTurn } from '../request-context.ts';

export type Db = PrismaClient;

/** Options for the database client. */
export interface DbOptions {
  /** Largest number of pooled connections. Default 10. */
  poolSize?: number;
  /**
   * Longest wait for a connection, in ms: opening a new one, or a free pooled one when all are
   * busy. A query that cannot get one in time fails with a connection error (reported to clients
   * as SERVICE_UNAVAILABLE) instead of hanging while the database is unreachable. Default 5000.
   */
  connectionTimeoutMs?: number;
  /** Pooled connections idle this long are closed, in ms. Default 10000. */
  idleTimeoutMs?: number;
  /**
   * PostgreSQL `statement_timeout` of every connection, in ms: a statement running longer is
   * cancelled by the server (error 57014, see src/db/timeout.ts). A transaction may lower or raise
   * it with `SET LOCAL`. Default: none (the server's setting).
   */
  statementTimeoutMs?: number;
  /**
   * Most statements one request (see src/request-context.ts) runs at once through this client; the
   * others wait their turn. Default: no limit.
   */
  statementsPerRequest?: number;
  /** Called with each SQL statement the client sends (used to count queries in tests). */
  onQuery?: (sql: string) => void;
  /**
   * Called when an idle pooled connection fails (e.g. the server restarted). The pool drops that
   * connection and opens a new one on the next query; nothing else needs doing. Default: ignored.
   */
  onIdleConnectionError?: (error: Error) => void;
}

const PREPARED = /^\/\* prepared (\w{1,63}) \*\//;

/**
 * Marks a hot-path statement to be prepared once per pooled connection under `name` (a different
 * text must never use the same name): each later run skips parsing and planning, ~1 ms for a
 * statement of many CTEs (the one that starts an operation). Only what is marked is prepared, so a
 * connection holds a few statements, not one per distinct query text.
 */
export const prepared = (name: string, sql: string): string => `/* prepared ${name} */ ${sql}`;

/**
 * `prepared` for statements built in code from a bounded number of shapes: each distinct text is
 * named `<kind>_` and a hash of it. At most `max` texts of a kind get a name; later ones are
 * returned unmarked (planned each time), so no caller can grow each connection's statement cache
 * without bound.
 */
export function preparedByText(kind: string, max: number): (sql: string) => string {
  const names = new Map<string, string>();
  return (sql) => {
    let name = names.get(sql);
    if (name === undefined) {
      if (names.size >= max) return sql;
      name = `${kind}_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
      names.set(sql, name);
    }
    return prepared(name, sql);
  };
}

/** The name `prepared` gave a statement; undefined for a statement it did not mark. */
export const preparedName = (sql: string): string | undefined => PREPARED.exec(sql)?.[1];

/**
 * Creates a Prisma client over a node-postgres pool for one database URL. The pool survives a
 * database restart without a process restart: broken connections are discarded (TCP keepalive
 * finds silent ones) and replaced on demand; queries meanwhile fail fast with connection errors.
 */
export function createDb(databaseUrl: string, options: DbOptions = {}): Db {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5000,
    idleTimeoutMillis: options.idleTimeoutMs ?? 10_000,
    keepAlive: true,
    ...(options.statementTimeoutMs
      ? { options: `-c statement_timeout=${Math.trunc(options.statementTimeoutMs)}` }
      : {}),
  });
  const adapter = new PrismaPg(pool, {
    onPoolError: options.onIdleConnectionError ?? (() => {}),
    disposeExternalPool: true,
    // Undefined (an unnamed statement, parsed and planned each time) unless marked by `prepared`.
    statementNameGenerator: (query) => preparedName(query.sql) as string,
  });
  const onQuery = options.onQuery;
  let client: Db;
  if (onQuery) {
    const logging = new PrismaClient({ adapter, log: [{ emit: 'event', level: 'query' }] });
    logging.$on('query', (event) => onQuery(event.query));
    client = logging as unknown as Db;
  } else client = new PrismaClient({ adapter });
  const max = options.statementsPerRequest;
  // Same client, every statement (models and raw) taking its request's turn.
  const db = max
    ? (client.$extends({
        query: { $allOperations: ({ args, query }) => inStatementTurn(max, () => query(args)) },
      }) as unknown as Db)
    : client;
  pools.set(db, pool);
  return db;
}

const pools = new WeakMap<Db, pg.Pool>();

/**
 * The node-postgres pool under a client made by `createDb`, for the few statements whose
 * parameters are too big for Prisma's raw query path (it serializes every parameter to JSON and
 * parses it back): the collection batch writes. Its statements bypass `onQuery` and
 * `statementsPerRequest`. Undefined for a client made otherwise (an inline type's transaction).
 */
export const poolOf = (db: Db): pg.Pool | undefined => pools.get(db);
