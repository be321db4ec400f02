import type { PgBoss } from 'pg-boss';
import type { Db } from '../db/prisma.ts';
import type { Logger } from '../logger.ts';
import type { Registry } from '../operations/registry.ts';
import type { Metrics } from './metrics.ts';

export interface QueueGaugeOptions {
  db: Pick<Db, '$queryRawUnsafe'>;
  boss: Pick<PgBoss, 'getQueues'>;
  registry: Registry;
  /** pg-boss's schema (a validated SQL identifier). */
  schema: string;
  /** How long one reading is reused, in ms. */
  cacheMs: number;
  logger: Logger;
}

interface Reading {
  counts: {
    name: string;
    queuedCount: number;
    readyCount: number;
    deferredCount: number;
    activeCount: number;
  }[];
  oldest: { name: string; age: number | null }[];
}

/**
 * The age of the oldest due job per queue, live: per type and state two probes of pg-boss's index
 * on (name, state, blocked, start_after), so the cost is bounded by the number of types, never by
 * the number of jobs.
 */
const oldestSql = (schema: string) => `
  SELECT n.name, EXTRACT(EPOCH FROM now() - LEAST(
      (SELECT min(j.start_after) FROM "${schema}".job j WHERE j.name = n.name AND j.state = 'created' AND NOT j.blocked),
      (SELECT min(j.start_after) FROM "${schema}".job j WHERE j.name = n.name AND j.state = 'retry' AND NOT j.blocked)
    ))::float8 AS age
    FROM unnest($1::text[]) AS n(name)`;

/**
 * Fills `opsgraph_queue_jobs` and `opsgraph_queue_oldest_ready_age_seconds` when they are scraped:
 * the counts pg-boss keeps per queue (its `getQueues`, refreshed by its monitor) and a live probe
 * of the oldest due job, read at most once per `cacheMs` however often scrapes come (concurrent
 * scrapes share one reading). When the database cannot be read, the last values stay.
 */
export function collectQueueGauges(m: Metrics, options: QueueGaugeOptions): void {
  let cached: { at: number; reading: Promise<Reading | null> } | undefined;
  const names = () => options.registry.jobTypes().map((type) => type.name);
  const read = async (): Promise<Reading | null> => {
    try {
      const list = names();
      const [counts, oldest] = await Promise.all([
        options.boss.getQueues(list),
        options.db.$queryRawUnsafe<{ name: string; age: number | null }[]>(oldestSql(options.schema), list),
      ]);
      return { counts, oldest };
    } catch (error) {
      options.logger.warn('metrics: queue gauges could not be read', { error: (error as Error).message });
      return null;
    }
  };
  const refresh = async () => {
    const now = Date.now();
    if (!cached || now - cached.at >= options.cacheMs) cached = { at: now, reading: read() };
    const reading = await cached.reading;
    if (!reading) return;
    for (const q of reading.counts) {
      const type = m.typeLabel(q.name);
      m.queueJobs.set({ type, state: 'queued' }, q.queuedCount);
      m.queueJobs.set({ type, state: 'ready' }, q.readyCount);
      m.queueJobs.set({ type, state: 'deferred' }, q.deferredCount);
      m.queueJobs.set({ type, state: 'active' }, q.activeCount);
    }
    for (const q of reading.oldest) m.queueOldest.set({ type: m.typeLabel(q.name) }, Math.max(0, q.age ?? 0));
  };
  // prom-client awaits each metric's collect before it writes the metric: both share one reading.
  m.sources.queues = refresh;
}
