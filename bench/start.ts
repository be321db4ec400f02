import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { TEST_JWT_SECRET, uniquePrefix } from '../test/support/app.ts';
import { REDIS_URL } from '../test/support/services.ts';
import {
  createScratchDatabase,
  fixed,
  median,
  printTable,
  readArgs,
  runBench,
  withTimeout,
} from './support.ts';

/**
 * Start time of an opsgraph process: spawn → its "opsgraph ready" line on stdout (migrations
 * checked, pg-boss started, queues ensured, HTTP listening, workers polling), for each way of
 * starting it, rounds alternating, on one migrated scratch database with Redis; medians.
 *
 *   npm run bench:start -- [--rounds 5]
 *
 * - `tsx src/main.ts`: `npm start` (tsx, a runtime dependency, compiles on the fly; its cache under
 *   the OS temp folder is warm after the first round).
 * - `tsx --no-cache`: the same with no cache, as in a fresh container.
 * - `node dist/main.js`: compiled ahead of time by `npm run build` (run first by this script).
 */
const { rounds } = readArgs({ rounds: { default: 5, min: 1 } });

const WAYS: { name: string; command: string[] }[] = [
  { name: 'tsx src/main.ts (npm start)', command: ['node_modules/.bin/tsx', 'src/main.ts'] },
  { name: 'tsx --no-cache src/main.ts', command: ['node_modules/.bin/tsx', '--no-cache', 'src/main.ts'] },
  { name: 'node dist/main.js (npm run start:dist)', command: [process.execPath, 'dist/main.js'] },
];

/** Spawns one process, returns ms until its ready line, then stops it with SIGTERM. */
async function startOnce(command: string[], databaseUrl: string): Promise<number> {
  const started = performance.now();
  const child = spawn(command[0]!, command.slice(1), {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      PORT: '0',
      HOST: '127.0.0.1',
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    return await withTimeout(
      new Promise<number>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          if (line.startsWith('opsgraph ready')) resolve(performance.now() - started);
        });
        exited.then((code) => reject(new Error(`${command.join(' ')} exited with ${code}`)));
      }),
      60_000,
      `${command.join(' ')} to start`,
    );
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

await runBench(async () => {
  console.log('building dist/ (npm run build) …');
  const build = spawnSync('npm', ['run', '-s', 'build'], { stdio: 'inherit' });
  if (build.status !== 0 || !existsSync('dist/main.js')) throw new Error('npm run build failed');
  const db = await createScratchDatabase('start', { migrate: true });
  const times = new Map<string, number[]>(WAYS.map((way) => [way.name, []]));
  // One unmeasured start each: tsx's cache, the OS file cache and pg-boss's schema are warm after it.
  for (const way of WAYS) await startOnce(way.command, db.url);
  for (let round = 0; round < rounds; round += 1) {
    for (const way of WAYS) times.get(way.name)!.push(await startOnce(way.command, db.url));
  }
  const base = median(times.get(WAYS[0]!.name)!);
  printTable(
    `Start time, spawn → "opsgraph ready" (ms, ${rounds} rounds, median)`,
    ['way', 'median', 'min', 'max', 'vs npm start'],
    WAYS.map((way) => {
      const values = times.get(way.name)!;
      return [
        way.name,
        fixed(median(values), 0),
        fixed(Math.min(...values), 0),
        fixed(Math.max(...values), 0),
        `${fixed(median(values) / base, 2)}×`,
      ];
    }),
  );
  await db.drop();
});
