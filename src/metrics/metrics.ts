import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Config } from '../config.ts';
import type { Registry as TypeRegistry } from '../operations/registry.ts';
import { TERMINAL } from '../operations/status.ts';

/** Seconds an operation, an attempt's wait or a batch may take: 10 ms to 1 h. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Seconds an HTTP or GraphQL request may take: 1 ms to 30 s. */
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Items in a batch (1 to the largest allowed). */
const BATCH_SIZE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 10_000];

/** The label every operation metric uses for a type that is not in this process's registry. */
export const UNKNOWN_TYPE = 'unknown';

/**
 * This process's Prometheus metrics: one prom-client Registry per process (never prom-client's
 * global one, so two apps in one process keep apart), with every metric opsgraph updates. Labels
 * are bounded: operation types come from the registry, statuses and codes from fixed sets, and
 * GraphQL operation names pass through {@link boundedNames}. No label carries an id.
 */
export function createMetrics(config: Pick<Config, 'metrics'>, types: TypeRegistry) {
  const registry = new Registry();
  /** Read when scraped: set by the parts that own the state (src/metrics/queues.ts, the WebSocket server). */
  const sources: { queues?: () => Promise<void>; wsConnections?: () => number } = {};
  const fromQueues = async () => {
    await sources.queues?.();
  };
  const registers = [registry];
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name, help, labelNames, registers });
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers });
  const histogram = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: number[],
  ) => new Histogram<L>({ name, help, labelNames, buckets, registers });

  const metrics = {
    registry,
    sources,
    /** An operation type as a label value: its name when registered here, else `unknown`. */
    typeLabel: (type: string) => (types.get(type) ? type : UNKNOWN_TYPE),
    started: counter(
      'opsgraph_operations_started_total',
      'Operations created (startOperation, batch items, retries, schedules).',
      ['type'],
    ),
    finished: counter('opsgraph_operations_finished_total', 'Operations that reached a terminal status.', [
      'type',
      'status',
    ]),
    duration: histogram(
      'opsgraph_operation_duration_seconds',
      "Time from an operation's creation to its terminal status.",
      ['type', 'status'],
      DURATION_BUCKETS,
    ),
    wait: histogram(
      'opsgraph_operation_wait_seconds',
      "Time from an operation's creation to the start of its first attempt.",
      ['type'],
      DURATION_BUCKETS,
    ),
    attempts: counter(
      'opsgraph_operation_attempts_total',
      'Attempts started (PENDING to PROCESSING), retries included.',
      ['type'],
    ),
    retries: counter(
      'opsgraph_operation_retries_total',
      'Failed attempts scheduled to run again by the retry policy.',
      ['type'],
    ),
    running: gauge(
      'opsgraph_operations_running',
      'Attempts of job types running in this process now (inline operations run within their request).',
      ['type'],
    ),
    faults: counter(
      'opsgraph_metrics_faults_total',
      'Events the metrics could not count (a bug: the event was still published).',
      [],
    ),
    repairs: counter(
      'opsgraph_repairs_total',
      'Operations the reconciler repaired (a lost worker or job, an abandoned batch item or collection).',
      ['type', 'problem'],
    ),
    queueJobs: new Gauge({
      name: 'opsgraph_queue_jobs',
      help: "Jobs per operation type and pg-boss state, as of pg-boss's last count of the queue.",
      labelNames: ['type', 'state'] as const,
      registers,
      collect: fromQueues,
    }),
    queueOldest: new Gauge({
      name: 'opsgraph_queue_oldest_ready_age_seconds',
      help: 'Age of the oldest job ready to run (due, not started) per operation type; 0 when none.',
      labelNames: ['type'] as const,
      registers,
      collect: fromQueues,
    }),
    batchSize: histogram('opsgraph_batch_size_items', 'Items per submitted batch.', [], BATCH_SIZE_BUCKETS),
    batchDuration: histogram(
      'opsgraph_batch_duration_seconds',
      "Time from a batch's submission to its terminal status.",
      ['status'],
      DURATION_BUCKETS,
    ),
    batchItems: counter('opsgraph_batch_items_total', 'Items of finished batches by outcome.', ['outcome']),
    refFailures: counter(
      'opsgraph_batch_reference_failures_total',
      'Batch items that could not start once their references were resolved, by error code.',
      ['code'],
    ),
    subscriptions: gauge(
      'opsgraph_subscriptions_active',
      'Subscriptions running in this process, by transport.',
      ['transport'],
    ),
    wsConnections: new Gauge({
      name: 'opsgraph_websocket_connections',
      help: 'WebSocket connections open to this process.',
      registers,
      collect() {
        this.set(sources.wsConnections?.() ?? 0);
      },
    }),
    refusals: counter('opsgraph_refusals_total', 'Requests refused by a limit or quota, by its code.', [
      'limit',
    ]),
    graphqlDuration: histogram(
      'opsgraph_graphql_request_duration_seconds',
      'GraphQL requests over HTTP (SSE subscriptions until their stream opens), by operation name and kind.',
      ['operation', 'kind'],
      REQUEST_BUCKETS,
    ),
    httpDuration: histogram(
      'opsgraph_http_request_duration_seconds',
      'HTTP requests by route, method and status.',
      ['route', 'method', 'status'],
      REQUEST_BUCKETS,
    ),
  };
  // Series for every type from the start, so rates and absent() work before the first operation.
  for (const type of types.list()) {
    metrics.started.inc({ type: type.name }, 0);
    for (const status of TERMINAL) metrics.finished.inc({ type: type.name, status }, 0);
  }
  for (const transport of ['ws', 'sse']) metrics.subscriptions.set({ transport }, 0);
  // Process metrics, event-loop delay among them (nodejs_eventloop_lag_*), sampled only when served.
  if (config.metrics === 'on') collectDefaultMetrics({ register: registry });
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Label values from client-chosen names: a valid GraphQL name of at most `maxLength` characters is
 * kept once seen, up to `maxNames` distinct names; anything else (and every name after the first
 * `maxNames`) is `other`. The label's series stay bounded whatever clients send. A name seen first
 * with `learn` false (a request without a valid token) is `other` and takes no place, so anonymous
 * clients cannot use up the places before the deployment's own clients have named theirs.
 */
export function boundedNames(
  maxNames = 200,
  maxLength = 64,
): (name: string | null | undefined, learn?: boolean) => string {
  const seen = new Set<string>();
  const valid = new RegExp(`^[_A-Za-z][_0-9A-Za-z]{0,${maxLength - 1}}$`);
  return (name, learn = true) => {
    if (!name) return 'anonymous';
    if (seen.has(name)) return name;
    if (!learn || seen.size >= maxNames || !valid.test(name)) return 'other';
    seen.add(name);
    return name;
  };
}
