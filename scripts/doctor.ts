// `npm run doctor`: compares unfinished operations with their pg-boss jobs once, repairs what it
// can (each repair is an event on the operation), prints what it found, and exits 1 when some
// problem could not be fixed. Repairs only operations untouched for OPSGRAPH_RECONCILE_MIN_AGE_SECONDS.
import { BUILT_IN_TYPES, withBatches } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrate } from '../src/db/migrate.ts';
import { createDb } from '../src/db/prisma.ts';
import { createEventBus } from '../src/events/bus.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics/metrics.ts';
import { ensureQueues, startBoss } from '../src/operations/queues.ts';
import { reconcile } from '../src/operations/reconcile.ts';
import { createRegistry } from '../src/operations/registry.ts';
import { createWaker } from '../src/operations/waker.ts';
import type { Resources } from '../src/resources.ts';

const config = loadConfig();
const logger = createLogger({ level: 'error', bindings: { component: 'doctor' } });
const embedded = config.databaseUrl
  ? undefined
  : await startEmbeddedPostgres(config.dataDir, config.embeddedPostgresPort);
const url = config.databaseUrl ?? (embedded?.url as string);
await migrate(url);
const db = createDb(url, { poolSize: 2 });
const boss = await startBoss(config, url, logger);
const bus = createEventBus({ redisUrl: config.redisUrl, prefix: config.channelPrefix, logger });
try {
  const late: { resources?: Resources } = {};
  // The batch type is registered so its operations are repaired, not failed as of an unknown type.
  const registry = createRegistry(withBatches(BUILT_IN_TYPES, () => late.resources as Resources));
  await ensureQueues(boss, registry);
  late.resources = {
    config,
    db,
    boss,
    bus,
    registry,
    logger,
    waker: createWaker(),
    metrics: createMetrics({ metrics: 'off' }, registry),
    shutdown: new AbortController().signal,
    draining: new AbortController().signal,
  };
  const repairs = await reconcile(late.resources, {
    minAgeSeconds: config.reconcileMinAgeSeconds,
    limit: 100_000,
  });
  for (const repair of repairs) {
    const mark = repair.fixed ? 'fixed' : 'NOT FIXED';
    process.stdout.write(
      `${mark}  ${repair.operationId}  ${repair.type}  ${repair.status}: ${repair.problem} → ${repair.action}\n`,
    );
  }
  const unfixed = repairs.filter((repair) => !repair.fixed).length;
  process.stdout.write(
    `doctor: ${repairs.length} problem(s) found, ${repairs.length - unfixed} fixed, ${unfixed} not fixed\n`,
  );
  process.exitCode = unfixed > 0 ? 1 : 0;
} finally {
  await bus.close();
  await boss.stop({ graceful: false, close: true });
  await db.$disconnect();
  await embedded?.stop();
}
