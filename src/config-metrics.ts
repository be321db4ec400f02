import { z } from 'zod';

/** `/metrics` (issue 12, point 2): its part of the Config, of the environment, and of the mapping. */
export interface MetricsSettings {
  /**
   * Whether `/metrics` is served (Prometheus text format, on the API port and on a worker-only
   * process's `workerPort`). `off`: the path answers 404 and no process metrics are sampled.
   * Default `on`.
   */
  metrics: 'on' | 'off';
  /**
   * When set, `/metrics` requires `Authorization: Bearer <this token>` and answers 401 otherwise.
   * Default: none (anyone who can reach the port may scrape; bind or firewall it accordingly).
   */
  metricsToken: string | undefined;
  /**
   * How long one reading of the queue gauges (pg-boss queue counts and the oldest ready job per
   * type) is reused, in ms, so frequent scrapes cannot load the database. Default 5000.
   */
  metricsQueueCacheMs: number;
}

/** The environment variables of {@link MetricsSettings}, with their ranges and defaults. */
export const metricsEnv = {
  OPSGRAPH_METRICS: z.enum(['on', 'off']).default('on'),
  OPSGRAPH_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').max(1000).optional(),
  OPSGRAPH_METRICS_QUEUE_CACHE_MS: z.coerce.number().int().min(0).max(3_600_000).default(5000),
};

type Parsed = z.infer<z.ZodObject<typeof metricsEnv>>;

/** MetricsSettings from the parsed environment. */
export const metricsSettings = (e: Parsed): MetricsSettings => ({
  metrics: e.OPSGRAPH_METRICS,
  metricsToken: e.OPSGRAPH_METRICS_TOKEN,
  metricsQueueCacheMs: e.OPSGRAPH_METRICS_QUEUE_CACHE_MS,
});
