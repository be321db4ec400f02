import type { PgBoss } from 'pg-boss';
import type { Config } from './config.ts';
import type { Db } from './db/prisma.ts';
import type { EventBus } from './events/bus.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics/metrics.ts';
import type { Registry } from './operations/registry.ts';
import type { Waker } from './operations/waker.ts';

/** What every part of a running opsgraph is given, explicitly: no module-level singletons. */
export interface Resources {
  config: Config;
  /**
   * This side's database pool. Workers (handlers, coordinators, reconciler) use the worker pool;
   * the GraphQL server is given a copy of the resources whose `db` is the API pool, with its own
   * size and a statement timeout, so exhausting one pool never starves the other (src/app.ts).
   */
  db: Db;
  boss: PgBoss;
  bus: EventBus;
  registry: Registry;
  logger: Logger;
  /** Aborts when the process starts shutting down: open subscriptions end cleanly. */
  shutdown: AbortSignal;
  /** Aborts as soon as the process starts draining (SIGTERM): `/ready` then answers 503. */
  draining: AbortSignal;
  /** Wakes this process's workers for scheduled jobs. */
  waker: Waker;
  /** This process's Prometheus metrics, served on /metrics (src/metrics/). */
  metrics: Metrics;
}
