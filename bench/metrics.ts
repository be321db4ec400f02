import { startApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import {
  createScratchDatabase,
  defer,
  fixed,
  median,
  percentile,
  printTable,
  readArgs,
  runBench,
} from './support.ts';

/**
 * What a scrape of /metrics costs: an API process (no workers, so its queues stay as filled) with
 * `--backlog` jobs queued for one type, scraped `--scrapes` times in a row, with the queue reading
 * cached (the default 5 s) and read on every scrape (cache 0), beside /health (no I/O) as the
 * HTTP baseline; and the CPU one rendering of the registry takes in the server (no HTTP). Run:
 * npx tsx bench/metrics.ts [--scrapes 300] [--backlog 20000]
 */
const args = readArgs({ scrapes: { default: 300, min: 10 }, backlog: { default: 20_000, min: 0 } });

async function timed(url: URL, n: number): Promise<{ ms: number[]; bytes: number }> {
  const ms: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i += 1) {
    const started = performance.now();
    const response = await fetch(url);
    bytes = (await response.text()).length;
    if (response.status !== 200) throw new Error(`${url.pathname} answered ${response.status}`);
    ms.push(performance.now() - started);
  }
  return { ms, bytes };
}

await runBench(async () => {
  const db = await createScratchDatabase('metrics', { migrate: true });
  const rows: string[][] = [];
  for (const cacheMs of [5000, 0]) {
    const config = loadConfig({
      DATABASE_URL: db.url,
      PORT: '0',
      HOST: '127.0.0.1',
      OPSGRAPH_ROLE: 'api',
      OPSGRAPH_METRICS_QUEUE_CACHE_MS: String(cacheMs),
    });
    const app = await startApp(config, { logger: createLogger({ level: 'error' }) });
    const close = defer(() => app.close());
    if (cacheMs === 5000 && args.backlog > 0) {
      const jobs = Array.from({ length: args.backlog }, () => ({
        data: { operationId: crypto.randomUUID() },
      }));
      await app.resources.boss.insert('diagnostics.sleep', jobs);
    }
    const url = new URL(app.url as string);
    await timed(new URL('/metrics', url), 10); // warm up
    const health = await timed(new URL('/health', url), args.scrapes);
    const metrics = await timed(new URL('/metrics', url), args.scrapes);
    // The server's CPU per rendering, without HTTP: the registry rendered in this process.
    const cpu = process.cpuUsage();
    for (let i = 0; i < args.scrapes; i += 1) await app.resources.metrics.registry.metrics();
    const used = process.cpuUsage(cpu);
    const cpuMs = (used.user + used.system) / 1000 / args.scrapes;
    const row = (what: string, { ms, bytes }: { ms: number[]; bytes: number }, cpuCell: string) => [
      what,
      String(bytes),
      fixed(median(ms), 2),
      fixed(percentile(ms, 90), 2),
      fixed(median(ms) / median(health.ms), 1),
      cpuCell,
    ];
    rows.push(
      row(`/health (cache ${cacheMs} ms run)`, health, '–'),
      row(`/metrics, queue cache ${cacheMs} ms`, metrics, fixed(cpuMs, 2)),
    );
    await close();
  }
  printTable(
    `/metrics: ${args.scrapes} sequential scrapes, ${args.backlog} queued jobs`,
    ['request', 'bytes', 'median ms', 'p90 ms', '× /health', 'render CPU ms'],
    rows,
  );
  await db.drop();
});
