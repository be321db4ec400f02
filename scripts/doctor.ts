// `npm run doctor [-- --fix]` (also `opsgraph doctor [--fix]`): looks for every kind of drift in
// src/doctor/ (orphaned operations and jobs, sequences, collection counts, batch outcomes, the
// credit ledger), prints each finding with what --fix would do, and with --fix repairs what is safe.
// Rows changed in the last OPSGRAPH_RECONCILE_MIN_AGE_SECONDS are left to their worker.
// Exit codes (src/doctor/index.ts EXIT): 0 nothing found; 1 drift found, all fixed (--fix) or
// fixable; 2 drift not fixable or whose repair failed; 3 the doctor could not run.
import { parseArgs } from 'node:util';
import { BUILT_IN_TYPES, withBatches } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrate } from '../src/db/migrate.ts';
import { createDb } from '../src/db/prisma.ts';
import { CHECKS, EXIT, exitCodeOf, formatReport, runDoctor } from '../src/doctor/index.ts';
import { createEventBus } from '../src/events/bus.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics/metrics.ts';
import { ensureQueues, startBoss } from '../src/operations/queues.ts';
import { createRegistry } from '../src/operations/registry.ts';
import { createWaker } from '../src/operations/waker.ts';
import type { Resources } from '../src/resources.ts';

const USAGE = `usage: npm run doctor [-- --fix] [--limit N]
  Finds drift and prints it with what --fix would do; --fix repairs what is safe.
  --limit N   most findings per kind of drift in one run (default 1000)
Checks:
${CHECKS.map((c) => `  ${c.kind.padEnd(20)} ${c.description}`).join('\n')}
Exit: 0 nothing found; 1 drift found, all fixed or fixable; 2 drift not fixable (or a repair failed); 3 could not run.
`;

async function main(): Promise<number> {
  let args: { fix?: boolean; limit?: string; help?: boolean };
  try {
    args = parseArgs({
      options: { fix: { type: 'boolean' }, limit: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }).values;
  } catch (error) {
    process.stderr.write(`doctor: ${(error as Error).message}\n${USAGE}`);
    return EXIT.FAILED;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return EXIT.CLEAN;
  }
  const limit = Number(args.limit ?? 1000);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000_000) {
    process.stderr.write(`doctor: --limit must be an integer from 1 to 1000000\n${USAGE}`);
    return EXIT.FAILED;
  }
  const fix = args.fix === true;
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
    const findings = await runDoctor(late.resources, {
      fix,
      minAgeSeconds: config.reconcileMinAgeSeconds,
      limit,
      pageSize: 2000,
    });
    process.stdout.write(formatReport(findings, fix));
    return exitCodeOf(findings, fix);
  } finally {
    await bus.close();
    await boss.stop({ graceful: false, close: true });
    await db.$disconnect();
    await embedded?.stop();
  }
}

try {
  process.exitCode = await main();
} catch (error) {
  // No stack trace: one line saying why it could not run.
  process.stderr.write(`doctor: could not run: ${(error as Error).message}\n`);
  process.exitCode = EXIT.FAILED;
}
