import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { type MetricsSettings, metricsEnv, metricsSettings } from './config-metrics.ts';
import { type RequestLimits, requestLimits, requestLimitsEnv } from './config-requests.ts';
import { LOG_LEVELS, type LogLevel } from './logger.ts';

/** Which parts of opsgraph a process runs. */
export type Role = 'all' | 'api' | 'worker';

/** Everything a process needs to know, parsed once at boot from the environment. */
export interface Config extends RequestLimits, MetricsSettings {
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
  /**
   * Most operations one `cancelOperations` call cancels; more matching ones are left for the next
   * call (`hasMore`). Default 1000.
   */
  bulkCancelMax: number;
  /** This process's identity in the cluster (cancel routing). Default: a random id. */
  instanceId: string;
  /**
   * Live updates that may wait in memory for one slow subscriber before its subscription is ended
   * with an error telling it to resubscribe with `afterSequence`. Default 1000.
   */
  subscriptionMaxBacklog: number;
  /**
   * Changed operations one `operationsUpdated` replay (a resume with `after`, or a reconciliation
   * of a live stream) may deliver; beyond it the stream ends with RESYNC_REQUIRED (re-list, then
   * subscribe without `after`). Default 1000.
   */
  liveListMaxReplay: number;
  /**
   * Age in seconds beyond which an `operationsUpdated` cursor is refused with RESYNC_REQUIRED
   * (its replay would scan every event since). Default 3600.
   */
  liveListCursorMaxAgeSeconds: number;
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

  // Operator side (issue 12): logs, health and readiness.
  /** Lowest log level written (pino's levels, or `silent`). Default `info`. */
  logLevel: LogLevel;
  /** How long each readiness check (PostgreSQL, Redis, pg-boss) may take, in ms. Default 1000. */
  readyTimeoutMs: number;
  /**
   * Port on which a worker-only process (`role` `worker`) serves `/health` and `/ready`. Default
   * none: no listener. API processes serve them on `port`.
   */
  workerPort: number | undefined;
  // --- Input limits (issue 9, point 4) ---
  /**
   * Most bytes an operation's input may take, as UTF-8 JSON: checked on startOperation, on each
   * batch item at submission, and on each batch item after its `$ref`s are resolved. Default 1 MB
   * (1048576).
   */
  inputMaxBytes: number;
  /** Deepest nesting of arrays and objects in an operation's input. Default 64. */
  inputMaxDepth: number;
  /**
   * Most bytes all item inputs of one batch may take together, as UTF-8 JSON: at submission and as
   * their `$ref`s are resolved. Default 2 MB (2097152).
   */
  batchInputMaxBytes: number;
  /** Most `dependsOn` entries of one batch item. Default 1000. */
  batchMaxItemDependencies: number;
  /** Most `dependsOn` entries of one batch, all items together. Default 10000. */
  batchMaxDependencies: number;
  /** Most `$ref:` references in the item inputs of one batch, all items together. Default 10000. */
  batchMaxRefs: number;
  /** Most problems one ValidationError lists; the rest are counted in `omittedProblems`. Default 100. */
  maxProblems: number;
  // --- Database protection and error hygiene (issue 9, points 6 and 9) ---
  /**
   * Longest a single SQL statement of the GraphQL API may run, in ms (PostgreSQL
   * `statement_timeout` on every connection of the API pool); a request that hits it gets a
   * STATEMENT_TIMEOUT error. 0 disables it. Default 5000.
   */
  apiStatementTimeoutMs: number;
  /** Connections of the GraphQL API's pool, separate from the workers' pool. Default 10. */
  /** Statements one GraphQL request runs at once on the API pool; the others wait. Default 3. */
  apiStatementsPerRequest: number;
  apiPoolSize: number;
  /** Connections of the workers' pool (handlers, coordinators, reconciler). Default 10. */
  workerPoolSize: number;
  /** Longest one search may run, in ms (its own statement timeout); over it: SearchTimeoutError. Default 2000. */
  searchTimeoutMs: number;
  /** Most characters in a search query. Default 1000. */
  searchMaxQueryLength: number;
  /** Most words in a search query, quoted ones included. Default 32. */
  searchMaxTerms: number;
  /** Most "quoted phrases" in a search query. Default 4. */
  searchMaxPhrases: number;
  // Retry, scheduling and retention (issue 10, points 3–5).
  /** How far ahead a start's `runAt` may be, in days. Default 30. */
  runAtMaxDays: number;
  /** Schedules one user may have. Default 20. */
  schedulesPerUser: number;
  /**
   * Shortest time between two firings of one schedule, in seconds (pg-boss's scheduler fires at
   * most once a minute, so below 60 a cron would skip ticks). Default 60.
   */
  scheduleMinIntervalSeconds: number;
  /** How often each process's pg-boss looks for due schedules, in seconds (1–45). Default 30. */
  cronMonitorIntervalSeconds: number;
  /** Days terminal operations are kept, for types that declare no retention of their own. Default 30. */
  retentionDays: number;
  /** Operations the retention job removes per statement. Default 500. */
  retentionBatchSize: number;
  /** When the retention job runs (cron, UTC). Default `17 * * * *` (hourly). */
  retentionCron: string;
  // Quotas, fair share and diagnostics types (issue 9, points 7 and 11).
  /**
   * Unfinished (PENDING or PROCESSING) operations one user may have at once. A batch's items
   * count; the batch operation itself (its coordinator) does not. Default 1000, so the largest
   * batch fits.
   */
  quotaMaxActive: number;
  /**
   * Operations one user may start in any 60 s window (inline ones and a batch's items included;
   * the batch operation itself not). Default 6000.
   */
  quotaStartsPerMinute: number;
  /**
   * Worker slots per type and process, on top of `workerConcurrency`, that only take jobs queued
   * while their owner had nothing else unfinished: a user's first operation starts at once however
   * long other users' queues are. 0 turns them off. Default 2.
   */
  fairShareSlots: number;
  /**
   * Who may start the `diagnostics.*` types: `all`, `admins` or `off` (nobody). Default `admins`
   * when NODE_ENV is `production`, else `all`.
   */
  diagnostics: DiagnosticsAccess;
  // Exports (issue 9, point 2).
  /**
   * Longest line (uncompressed bytes: the header, or one document) accepted when an export file is
   * read; a longer one fails the read with BAD_EXPORT_FILE. Default 16 MiB.
   */
  exportMaxLineBytes: number;
  /** Deepest nesting of JSON (document metadata) accepted in an export file read. Default 64. */
  exportMaxJsonDepth: number;
  // Credits and audit (issue 10, points 1 and 2).
  /** Credits a new user is granted when created (one GRANT in their ledger). Default 1,000,000. */
  defaultCredits: number;
  /** Most credits one grantCredits call may add. Default 1,000,000,000. */
  maxGrantCredits: number;
  /**
   * Access-denied and quota-refusal audit rows per user per minute and action: further ones in the
   * same minute only raise the last row's count. Default 20.
   */
  auditDenialsPerMinute: number;
  // Dashboard (issue 11, point 5).
  /**
   * Folder of the built dashboard (Vite's output), served at `/ui`. Default `dashboard/dist` of
   * this installation; when it holds no `index.html`, `/ui` shows how to build it.
   */
  dashboardDir: string;
}

/** Who may start the diagnostics types (see Config.diagnostics). */
export type DiagnosticsAccess = 'all' | 'admins' | 'off';

/** Credits a new user starts with unless OPSGRAPH_DEFAULT_CREDITS says otherwise. */
export const DEFAULT_CREDITS = 1_000_000;

/** `dashboard/dist` next to `src/` (or `dist/` in a compiled build). */
const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../dashboard/dist', import.meta.url));

const DEV_SECRET = 'opsgraph-development-secret-change-me';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const env = z.object({
  ...requestLimitsEnv,
  ...metricsEnv,
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
  OPSGRAPH_BULK_CANCEL_MAX: int(1, 100_000).default(1000),
  OPSGRAPH_INSTANCE_ID: z.string().min(1).max(100).optional(),
  OPSGRAPH_SUBSCRIPTION_MAX_BACKLOG: int(1, 1_000_000).default(1000),
  OPSGRAPH_LIVE_LIST_MAX_REPLAY: int(1, 100_000).default(1000),
  OPSGRAPH_LIVE_LIST_CURSOR_MAX_AGE_SECONDS: int(1, 7 * 86_400).default(3600),
  OPSGRAPH_SOURCES_ROOT: z.string().min(1).optional(),
  OPSGRAPH_STORAGE_DIR: z.string().min(1).optional(),
  OPSGRAPH_COLLECTION_BATCH_SIZE: int(1, 10_000).default(100),
  OPSGRAPH_BATCH_MAX_ITEMS: int(1, 100_000).default(1000),
  // Operator side (issue 12).
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  OPSGRAPH_READY_TIMEOUT_MS: int(50, 60_000).default(1000),
  OPSGRAPH_WORKER_PORT: int(0, 65535).optional(),
  // Input limits (issue 9, point 4)
  OPSGRAPH_INPUT_MAX_BYTES: int(1024, 256 * 1024 * 1024).default(1024 * 1024),
  OPSGRAPH_INPUT_MAX_DEPTH: int(2, 1000).default(64),
  OPSGRAPH_BATCH_INPUT_MAX_BYTES: int(1024, 1024 * 1024 * 1024).default(2 * 1024 * 1024),
  OPSGRAPH_BATCH_MAX_ITEM_DEPENDENCIES: int(1, 100_000).default(1000),
  OPSGRAPH_BATCH_MAX_DEPENDENCIES: int(1, 1_000_000).default(10_000),
  OPSGRAPH_BATCH_MAX_REFS: int(1, 1_000_000).default(10_000),
  OPSGRAPH_MAX_PROBLEMS: int(1, 10_000).default(100),
  // Database protection and error hygiene (issue 9, points 6 and 9)
  OPSGRAPH_API_STATEMENT_TIMEOUT_MS: int(0, 3_600_000).default(5000),
  OPSGRAPH_API_STATEMENTS_PER_REQUEST: int(1, 1000).default(3),
  OPSGRAPH_API_POOL_SIZE: int(1, 1000).default(10),
  OPSGRAPH_WORKER_POOL_SIZE: int(1, 1000).default(10),
  OPSGRAPH_SEARCH_TIMEOUT_MS: int(1, 600_000).default(2000),
  OPSGRAPH_SEARCH_MAX_QUERY_LENGTH: int(1, 100_000).default(1000),
  OPSGRAPH_SEARCH_MAX_TERMS: int(1, 10_000).default(32),
  OPSGRAPH_SEARCH_MAX_PHRASES: int(0, 1000).default(4),
  // Retry, scheduling and retention (issue 10, points 3–5).
  OPSGRAPH_RUN_AT_MAX_DAYS: int(1, 3650).default(30),
  OPSGRAPH_SCHEDULES_PER_USER: int(0, 100_000).default(20),
  OPSGRAPH_SCHEDULE_MIN_INTERVAL_SECONDS: int(60, 31_536_000).default(60),
  OPSGRAPH_CRON_MONITOR_INTERVAL_SECONDS: int(1, 45).default(30),
  OPSGRAPH_RETENTION_DAYS: int(1, 36_500).default(30),
  OPSGRAPH_RETENTION_BATCH_SIZE: int(1, 100_000).default(500),
  OPSGRAPH_RETENTION_CRON: z.string().min(1).default('17 * * * *'),
  // Quotas, fair share and diagnostics types (issue 9, points 7 and 11).
  OPSGRAPH_QUOTA_MAX_ACTIVE: int(1, 10_000_000).default(1000),
  OPSGRAPH_QUOTA_STARTS_PER_MINUTE: int(1, 10_000_000).default(6000),
  OPSGRAPH_FAIR_SHARE_SLOTS: int(0, 1000).default(2),
  OPSGRAPH_DIAGNOSTICS: z.enum(['all', 'admins', 'off']).optional(),
  // Exports (issue 9, point 2).
  OPSGRAPH_EXPORT_MAX_LINE_BYTES: int(1024, 1024 ** 3).default(16 * 1024 * 1024),
  OPSGRAPH_EXPORT_MAX_JSON_DEPTH: int(1, 10_000).default(64),
  // Credits and audit (issue 10, points 1 and 2).
  OPSGRAPH_DEFAULT_CREDITS: int(0, 1_000_000_000_000).default(DEFAULT_CREDITS),
  OPSGRAPH_MAX_GRANT_CREDITS: int(1, 1_000_000_000_000).default(1_000_000_000),
  OPSGRAPH_AUDIT_DENIALS_PER_MINUTE: int(1, 100_000).default(20),
  // Dashboard (issue 11, point 5).
  OPSGRAPH_DASHBOARD_DIR: z.string().min(1).optional(),
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
    bulkCancelMax: e.OPSGRAPH_BULK_CANCEL_MAX,
    instanceId: e.OPSGRAPH_INSTANCE_ID ?? randomUUID(),
    subscriptionMaxBacklog: e.OPSGRAPH_SUBSCRIPTION_MAX_BACKLOG,
    liveListMaxReplay: e.OPSGRAPH_LIVE_LIST_MAX_REPLAY,
    liveListCursorMaxAgeSeconds: e.OPSGRAPH_LIVE_LIST_CURSOR_MAX_AGE_SECONDS,
    sourcesRoot: resolve(e.OPSGRAPH_SOURCES_ROOT ?? join(e.OPSGRAPH_DATA_DIR, 'sources')),
    storageDir: resolve(e.OPSGRAPH_STORAGE_DIR ?? join(e.OPSGRAPH_DATA_DIR, 'exports')),
    collectionBatchSize: e.OPSGRAPH_COLLECTION_BATCH_SIZE,
    batchMaxItems: e.OPSGRAPH_BATCH_MAX_ITEMS,
    // Operator side (issue 12).
    logLevel: e.LOG_LEVEL,
    readyTimeoutMs: e.OPSGRAPH_READY_TIMEOUT_MS,
    workerPort: e.OPSGRAPH_WORKER_PORT,
    // Input limits (issue 9, point 4)
    inputMaxBytes: e.OPSGRAPH_INPUT_MAX_BYTES,
    inputMaxDepth: e.OPSGRAPH_INPUT_MAX_DEPTH,
    batchInputMaxBytes: e.OPSGRAPH_BATCH_INPUT_MAX_BYTES,
    batchMaxItemDependencies: e.OPSGRAPH_BATCH_MAX_ITEM_DEPENDENCIES,
    batchMaxDependencies: e.OPSGRAPH_BATCH_MAX_DEPENDENCIES,
    batchMaxRefs: e.OPSGRAPH_BATCH_MAX_REFS,
    maxProblems: e.OPSGRAPH_MAX_PROBLEMS,
    // Database protection and error hygiene (issue 9, points 6 and 9)
    apiStatementTimeoutMs: e.OPSGRAPH_API_STATEMENT_TIMEOUT_MS,
    apiStatementsPerRequest: e.OPSGRAPH_API_STATEMENTS_PER_REQUEST,
    apiPoolSize: e.OPSGRAPH_API_POOL_SIZE,
    workerPoolSize: e.OPSGRAPH_WORKER_POOL_SIZE,
    searchTimeoutMs: e.OPSGRAPH_SEARCH_TIMEOUT_MS,
    searchMaxQueryLength: e.OPSGRAPH_SEARCH_MAX_QUERY_LENGTH,
    searchMaxTerms: e.OPSGRAPH_SEARCH_MAX_TERMS,
    searchMaxPhrases: e.OPSGRAPH_SEARCH_MAX_PHRASES,
    // Retry, scheduling and retention (issue 10, points 3–5).
    runAtMaxDays: e.OPSGRAPH_RUN_AT_MAX_DAYS,
    schedulesPerUser: e.OPSGRAPH_SCHEDULES_PER_USER,
    scheduleMinIntervalSeconds: e.OPSGRAPH_SCHEDULE_MIN_INTERVAL_SECONDS,
    cronMonitorIntervalSeconds: e.OPSGRAPH_CRON_MONITOR_INTERVAL_SECONDS,
    retentionDays: e.OPSGRAPH_RETENTION_DAYS,
    retentionBatchSize: e.OPSGRAPH_RETENTION_BATCH_SIZE,
    retentionCron: e.OPSGRAPH_RETENTION_CRON,
    // Quotas, fair share and diagnostics types (issue 9, points 7 and 11).
    quotaMaxActive: e.OPSGRAPH_QUOTA_MAX_ACTIVE,
    quotaStartsPerMinute: e.OPSGRAPH_QUOTA_STARTS_PER_MINUTE,
    fairShareSlots: e.OPSGRAPH_FAIR_SHARE_SLOTS,
    diagnostics: e.OPSGRAPH_DIAGNOSTICS ?? (source.NODE_ENV === 'production' ? 'admins' : 'all'),
    // Exports (issue 9, point 2).
    exportMaxLineBytes: e.OPSGRAPH_EXPORT_MAX_LINE_BYTES,
    exportMaxJsonDepth: e.OPSGRAPH_EXPORT_MAX_JSON_DEPTH,
    ...requestLimits(e),
    ...metricsSettings(e),
    // Credits and audit (issue 10, points 1 and 2).
    defaultCredits: e.OPSGRAPH_DEFAULT_CREDITS,
    maxGrantCredits: e.OPSGRAPH_MAX_GRANT_CREDITS,
    auditDenialsPerMinute: e.OPSGRAPH_AUDIT_DENIALS_PER_MINUTE,
    // Dashboard (issue 11, point 5).
    dashboardDir: resolve(e.OPSGRAPH_DASHBOARD_DIR ?? DEFAULT_DASHBOARD_DIR),
  };
}

/** True when the JWT secret is the built-in development one. */
export const usesDevelopmentSecret = (config: Config): boolean => config.jwtSecret === DEV_SECRET;
