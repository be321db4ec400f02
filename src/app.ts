import { createBatchType } from './batches/coordinator.ts';
import { COLLECTION_TYPES } from './collections/types/index.ts';
import type { Config } from './config.ts';
import { type EmbeddedDatabase, startEmbeddedPostgres } from './db/embedded.ts';
import { migrate } from './db/migrate.ts';
import { createDb, type Db, type DbOptions } from './db/prisma.ts';
import { createEventBus } from './events/bus.ts';
import { startGraphQLServer } from './graphql/server.ts';
import { startHealthServer } from './health/server.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics } from './metrics/metrics.ts';
import { collectQueueGauges } from './metrics/queues.ts';
import { ensureQueues, startBoss } from './operations/queues.ts';
import { createRegistry, type OperationType } from './operations/registry.ts';
import { startRunner } from './operations/runner.ts';
import { diagnosticsEcho, diagnosticsFlaky, diagnosticsSleep } from './operations/types/diagnostics-sleep.ts';
import { createWaker } from './operations/waker.ts';
import type { Resources } from './resources.ts';
import { prepareRunsQueues, startRunsWorkers } from './runs/jobs.ts';

/** The built-in operation types. */
export const BUILT_IN_TYPES: OperationType[] = [
  diagnosticsSleep,
  diagnosticsFlaky,
  diagnosticsEcho,
  ...COLLECTION_TYPES,
];

/** The given types plus the batch coordinator (type `batch`), which runs with `resources`. */
export const withBatches = (types: OperationType[], resources: () => Resources): OperationType[] => [
  ...types,
  createBatchType(resources),
];

export interface AppOptions {
  logger?: Logger;
  /** Operation types to register instead of the built-in ones. */
  types?: OperationType[];
  /** Options for both database pools (sizes and the API statement timeout come from the config). */
  db?: DbOptions;
}

/** A running opsgraph process: its resources, its GraphQL URL (API role) and a way to stop it. */
export interface App {
  resources: Resources;
  /** The GraphQL endpoint, when this process serves the API. */
  url: string | undefined;
  /** Drains: stops taking jobs, lets running ones finish up to the grace period, closes everything. */
  close(): Promise<void>;
}

/** Starts opsgraph with the roles in `config.role`: migrations, pg-boss, workers, GraphQL server. */
export async function startApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger =
    options.logger ??
    createLogger({
      level: config.logLevel,
      bindings: { instance: config.instanceId.slice(0, 8), role: config.role },
    });
  const closers: (() => Promise<void>)[] = [];
  let closing: Promise<void> | undefined;
  const draining = new AbortController();
  const closeAll = () => {
    draining.abort();
    closing ??= (async () => {
      for (const close of closers.reverse()) {
        await close().catch((err) => logger.error('close failed', { err }));
      }
    })();
    return closing;
  };
  try {
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      const embedded: EmbeddedDatabase = await startEmbeddedPostgres(
        config.dataDir,
        config.embeddedPostgresPort,
      );
      closers.push(() => embedded.stop());
      databaseUrl = embedded.url;
      logger.info('started embedded PostgreSQL', { dataDir: config.dataDir });
    }
    await migrate(databaseUrl);
    // Two pools: API requests and workers never wait for each other's connections.
    const pools = openPools(config, databaseUrl, options.db);
    for (const pool of new Set([pools.api, pools.worker])) if (pool) closers.push(() => pool.$disconnect());
    // One connection of each pool is open before the first request or job: the worker's first
    // Prisma write (often an attempt's first progress step) does not also pay for connecting.
    await Promise.all([pools.api, pools.worker].map((pool) => pool?.$queryRawUnsafe('SELECT 1')));
    const db = (pools.worker ?? pools.api) as Db;
    const boss = await startBoss(config, databaseUrl, logger);
    closers.push(() => boss.stop({ graceful: false, timeout: 5000 }));
    // The batch coordinator needs the resources, which need the registry: bound once they exist.
    const late: { resources?: Resources } = {};
    const registry = createRegistry(
      options.types ?? withBatches(BUILT_IN_TYPES, () => late.resources as Resources),
    );
    await ensureQueues(boss, registry);
    await prepareRunsQueues(boss, config);
    const bus = createEventBus({ redisUrl: config.redisUrl, prefix: config.channelPrefix, logger });
    closers.push(() => bus.close());
    const waker = createWaker();
    closers.push(async () => waker.close());
    const shutdown = new AbortController();
    const metrics = createMetrics(config, registry);
    collectQueueGauges(metrics, {
      db,
      boss,
      registry,
      schema: config.bossSchema,
      cacheMs: config.metricsQueueCacheMs,
      logger,
    });
    const resources: Resources = {
      config,
      db,
      boss,
      bus,
      registry,
      logger,
      waker,
      metrics,
      shutdown: shutdown.signal,
      draining: draining.signal,
    };
    late.resources = resources;

    let url: string | undefined;
    if (config.role !== 'worker') {
      const server = await startGraphQLServer({ ...resources, db: pools.api as Db });
      closers.push(async () => {
        // Let events published while draining reach subscribers, end the subscriptions with a
        // message saying where to resume, and let those messages out before the sockets close.
        await new Promise((resolve) => setTimeout(resolve, 200));
        shutdown.abort();
        await new Promise((resolve) => setTimeout(resolve, 100));
        await server.close();
      });
      url = server.url;
    } else if (config.workerPort !== undefined) {
      // Worker-only processes serve /health, /ready and /metrics when given a port (kept up while draining).
      const health = await startHealthServer(resources, config.workerPort);
      closers.push(() => health.close());
      logger.info('serving /health, /ready and /metrics', { url: health.url });
    }
    if (config.role !== 'api') {
      const runner = await startRunner(resources);
      closers.push(() => runner.stop(config.shutdownGraceMs));
      const runs = await startRunsWorkers(resources);
      closers.push(() => runs.stop());
    }
    return { resources, url, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * The database pools of a process: the API's (OPSGRAPH_API_POOL_SIZE connections, each under
 * OPSGRAPH_API_STATEMENT_TIMEOUT_MS) when it serves GraphQL, the workers' (OPSGRAPH_WORKER_POOL_SIZE)
 * when it runs jobs.
 */
function openPools(config: Config, databaseUrl: string, options: DbOptions = {}): { api?: Db; worker?: Db } {
  return {
    ...(config.role !== 'worker'
      ? {
          api: createDb(databaseUrl, {
            poolSize: config.apiPoolSize,
            statementTimeoutMs: config.apiStatementTimeoutMs,
            statementsPerRequest: config.apiStatementsPerRequest,
            ...options,
          }),
        }
      : {}),
    ...(config.role !== 'api'
      ? { worker: createDb(databaseUrl, { poolSize: config.workerPoolSize, ...options }) }
      : {}),
  };
}
