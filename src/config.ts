import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { z } from 'zod';

/** Which parts of opsgraph a process runs. */
export type Role = 'all' | 'api' | 'worker';

/** Everything a process needs to know, parsed once at boot from the environment. */
export interface Config {
  /** PostgreSQL URL. Default: none, which starts an embedded PostgreSQL under `dataDir`. */
  databaseUrl: string | undefined;
  /** Redis URL for cross-instance pub/sub. Default: none, which uses in-process pub/sub. */
  redisUrl: string | undefined;
  /** Prefix of every Redis channel, so several deployments can share one Redis. Default `opsgraph:`. */
  channelPrefix: string;
  /** HTTP port. Default 4000; 0 picks a free port. */
  port: number;
  /** Interface to listen on. Default `0.0.0.0`. */
  host: string;
  /** HS256 secret for bearer tokens. Default: a fixed development secret (printed as a warning). */
  jwtSecret: string;
  /** `all` (default), `api` (GraphQL only) or `worker` (jobs only). */
  role: Role;
  /** Folder for the embedded PostgreSQL and other local state. Default `./.opsgraph`. */
  dataDir: string;
  /** Port of the embedded PostgreSQL. Default 54329. */
  embeddedPostgresPort: number;
  /** Jobs each worker process runs at once, per operation type. Default 8. */
  workerConcurrency: number;
  /** Slowest pg-boss poll when LISTEN/NOTIFY is active, in seconds. Default 30. */
  bossNotifyPollingSeconds: number;
  /** pg-boss poll interval when LISTEN/NOTIFY is unavailable, in seconds (min 0.5). Default 2. */
  bossPollingSeconds: number;
  /** pg-boss schema name. Default `pgboss`. */
  bossSchema: string;
  /** Minimum time between persisted progress events of one operation, in ms. Default 100. */
  progressIntervalMs: number;
  /** How long SIGTERM waits for running operations before exiting, in ms. Default 30000. */
  shutdownGraceMs: number;
  /** How often each worker process compares unfinished operations with their jobs, in ms. Default 5000. */
  reconcileIntervalMs: number;
  /** Operations changed more recently than this (seconds) are left to their worker. Default 5. */
  reconcileMinAgeSeconds: number;
  /** This process's identity in the cluster (cancel routing). Default: a random id. */
  instanceId: string;
  /**
   * Live updates that may wait in memory for one slow subscriber before its subscription is ended
   * with an error telling it to resubscribe with `afterSequence`. Default 1000.
   */
  subscriptionMaxBacklog: number;
  /** The only folder collection sources may be read from (recursively). Default `<dataDir>/sources`. */
  sourcesRoot: string;
  /**
   * Where `collection.export` writes and `collection.import` reads: one folder per owner,
   * `<storageDir>/<user id>/<file>`. Default `<dataDir>/exports`.
   */
  storageDir: string;
  /** Documents per batch (and per transaction) in collection operations. Default 100. */
  collectionBatchSize: number;
  /** Most items one startBatch may hold. Default 1000. */
  batchMaxItems: number;
  // Exports (issue 9, point 2).
  /**
   * Longest line (uncompressed bytes: the header, or one document) accepted when an export file is
   * read; a longer one fails the read with BAD_EXPORT_FILE. Default 16 MiB.
   */
  exportMaxLineBytes: number;
  /** Deepest nesting of JSON (document metadata) accepted in an export file read. Default 64. */
  exportMaxJsonDepth: number;
}

const DEV_SECRET = 'opsgraph-development-secret-change-me';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const env = z.object({
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  OPSGRAPH_CHANNEL_PREFIX: z.string().min(1).default('opsgraph:'),
  PORT: int(0, 65535).default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  JWT_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  OPSGRAPH_ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  OPSGRAPH_DATA_DIR: z.string().min(1).default('./.opsgraph'),
  OPSGRAPH_EMBEDDED_PG_PORT: int(1, 65535).default(54329),
  OPSGRAPH_WORKER_CONCURRENCY: int(1, 1000).default(8),
  OPSGRAPH_BOSS_NOTIFY_POLLING_SECONDS: z.coerce.number().min(0.5).max(3600).default(30),
  OPSGRAPH_BOSS_POLLING_SECONDS: z.coerce.number().min(0.5).max(3600).default(2),
  OPSGRAPH_BOSS_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower-case SQL identifier')
    .default('pgboss'),
  OPSGRAPH_PROGRESS_INTERVAL_MS: int(0, 60_000).default(100),
  OPSGRAPH_SHUTDOWN_GRACE_MS: int(0, 3_600_000).default(30_000),
  OPSGRAPH_RECONCILE_INTERVAL_MS: int(100, 3_600_000).default(5000),
  OPSGRAPH_RECONCILE_MIN_AGE_SECONDS: z.coerce.number().min(0).max(86_400).default(5),
  OPSGRAPH_INSTANCE_ID: z.string().min(1).max(100).optional(),
  OPSGRAPH_SUBSCRIPTION_MAX_BACKLOG: int(1, 1_000_000).default(1000),
  OPSGRAPH_SOURCES_ROOT: z.string().min(1).optional(),
  OPSGRAPH_STORAGE_DIR: z.string().min(1).optional(),
  OPSGRAPH_COLLECTION_BATCH_SIZE: int(1, 10_000).default(100),
  OPSGRAPH_BATCH_MAX_ITEMS: int(1, 100_000).default(1000),
  // Exports (issue 9, point 2).
  OPSGRAPH_EXPORT_MAX_LINE_BYTES: int(1024, 1024 ** 3).default(16 * 1024 * 1024),
  OPSGRAPH_EXPORT_MAX_JSON_DEPTH: int(1, 10_000).default(64),
});

/** A configuration problem, reported as one line. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment into a Config, or throws a ConfigError naming each bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const blanksRemoved = Object.fromEntries(
    Object.entries(source).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = env.safeParse(blanksRemoved);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    channelPrefix: e.OPSGRAPH_CHANNEL_PREFIX,
    port: e.PORT,
    host: e.HOST,
    jwtSecret: e.JWT_SECRET ?? DEV_SECRET,
    role: e.OPSGRAPH_ROLE,
    dataDir: e.OPSGRAPH_DATA_DIR,
    embeddedPostgresPort: e.OPSGRAPH_EMBEDDED_PG_PORT,
    workerConcurrency: e.OPSGRAPH_WORKER_CONCURRENCY,
    bossNotifyPollingSeconds: e.OPSGRAPH_BOSS_NOTIFY_POLLING_SECONDS,
    bossPollingSeconds: e.OPSGRAPH_BOSS_POLLING_SECONDS,
    bossSchema: e.OPSGRAPH_BOSS_SCHEMA,
    progressIntervalMs: e.OPSGRAPH_PROGRESS_INTERVAL_MS,
    shutdownGraceMs: e.OPSGRAPH_SHUTDOWN_GRACE_MS,
    reconcileIntervalMs: e.OPSGRAPH_RECONCILE_INTERVAL_MS,
    reconcileMinAgeSeconds: e.OPSGRAPH_RECONCILE_MIN_AGE_SECONDS,
    instanceId: e.OPSGRAPH_INSTANCE_ID ?? randomUUID(),
    subscriptionMaxBacklog: e.OPSGRAPH_SUBSCRIPTION_MAX_BACKLOG,
    sourcesRoot: resolve(e.OPSGRAPH_SOURCES_ROOT ?? join(e.OPSGRAPH_DATA_DIR, 'sources')),
    storageDir: resolve(e.OPSGRAPH_STORAGE_DIR ?? join(e.OPSGRAPH_DATA_DIR, 'exports')),
    collectionBatchSize: e.OPSGRAPH_COLLECTION_BATCH_SIZE,
    batchMaxItems: e.OPSGRAPH_BATCH_MAX_ITEMS,
    // Exports (issue 9, point 2).
    exportMaxLineBytes: e.OPSGRAPH_EXPORT_MAX_LINE_BYTES,
    exportMaxJsonDepth: e.OPSGRAPH_EXPORT_MAX_JSON_DEPTH,
  };
}

/** True when the JWT secret is the built-in development one. */
export const usesDevelopmentSecret = (config: Config): boolean => config.jwtSecret === DEV_SECRET;
