import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Db = PrismaClient;

/** Options for the database client. */
export interface DbOptions {
  /** Largest number of pooled connections. Default 10. */
  poolSize?: number;
  /** Called with each SQL statement the client sends (used to count queries in tests). */
  onQuery?: (sql: string) => void;
}

/** Creates a Prisma client over node-postgres for one database URL. */
export function createDb(databaseUrl: string, options: DbOptions = {}): Db {
  const adapter = new PrismaPg({ connectionString: databaseUrl, max: options.poolSize ?? 10 });
  if (!options.onQuery) return new PrismaClient({ adapter });
  const client = new PrismaClient({ adapter, log: [{ emit: 'event', level: 'query' }] });
  const onQuery = options.onQuery;
  client.$on('query', (event) => onQuery(event.query));
  return client;
}
