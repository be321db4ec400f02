import { parseArgs } from 'node:util';
import { BUILT_IN_TYPES } from '../src/app.ts';
import { batchLimits, planBatch } from '../src/batches/plan.ts';
import { resolveRefs } from '../src/batches/refs.ts';
import { loadConfig } from '../src/config.ts';
import { ValidationError } from '../src/errors.ts';
import { inputLimits, parseInput } from '../src/operations/input-limits.ts';
import { createRegistry } from '../src/operations/registry.ts';
import { hashRequest, toProblems } from '../src/operations/start.ts';
import { diagnosticsEcho } from '../src/operations/types/diagnostics-sleep.ts';
import {
  amplifyingBatch,
  cyclicBatch,
  DEFAULT_LIMITS,
  densestBatch,
  largestBatch,
  largeValue,
  problemBatch,
  thousandBatch,
} from '../test/security/worst-inputs.ts';

/**
 * The synchronous cost of the input limits' worst allowed cases (issue 9, points 4–5), in process,
 * with the default limits: each case is one synchronous step of a request, which must stay well
 * under the 50 ms event-loop budget. Prints, over `--runs` runs: the median and slowest wall time,
 * the median CPU time (what it costs on an idle machine: on a busy one wall time is mostly waiting
 * for a core), and the longest time the event loop was held at once (planBatch yields every 10 ms).
 *
 *   npx tsx bench/validate.ts [--runs 15]
 */

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const runs = Number(values.runs);
const config = loadConfig({});
const registry = createRegistry(BUILT_IN_TYPES);
const limits = batchLimits(config);
/** planBatch's synchronous slices run back to back here: timing it times them all. */
const plan = (items: unknown[], atomic = true) =>
  planBatch(registry, { items: items as never, atomic, continueOnError: false }, limits);

interface Timing {
  median: number;
  max: number;
  /** Median CPU time of the process (user + system): what the step costs on an idle machine. */
  cpu: number;
  slice: number;
  note: string;
}

/**
 * Runs `step` (after one untimed run) and returns its median and slowest time in ms, and the
 * longest the event loop was held at once while it ran (its longest synchronous slice).
 */
async function time(step: () => unknown): Promise<Timing> {
  let note = '';
  const once = async () => {
    try {
      await step();
      note = 'accepted';
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      note = `refused: ${error.problems.length} listed + ${error.omittedProblems} omitted`;
    }
  };
  await once();
  const times: number[] = [];
  let slice = 0;
  const cpu: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const cpuStart = process.cpuUsage();
    let last = performance.now();
    const ticker = setInterval(() => {
      // A tick sees how long since the previous one: the longest synchronous slice in between.
      slice = Math.max(slice, performance.now() - last);
      last = performance.now();
    }, 0);
    const start = performance.now();
    await once();
    times.push(performance.now() - start);
    const used = process.cpuUsage(cpuStart);
    cpu.push((used.user + used.system) / 1000);
    clearInterval(ticker);
    slice = Math.max(slice, performance.now() - last);
  }
  times.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)] as number;
  return { median, max: times.at(-1) as number, cpu: cpu[Math.floor(cpu.length / 2)] as number, slice, note };
}

const amplifying = amplifyingBatch();
const bigResult = new Map<string, unknown>([['big', amplifying[0]?.input]]);
const oneMb = { value: largeValue(DEFAULT_LIMITS.inputMaxBytes - 100, DEFAULT_LIMITS.inputMaxDepth - 2) };
const smallObjects = { value: Array.from({ length: 80_000 }, (_, i) => ({ a: i })) };
const tooDeep = (() => {
  let value: unknown = 1;
  for (let d = 0; d < 100_000; d += 1) value = [value];
  return { value };
})();
const cases: [string, () => unknown][] = [
  ['1,000 items, 1,000 dependencies (validateOnly)', () => plan(thousandBatch())],
  ['1,000 items, 10,000 dependencies, 10,000 $refs, ~1.8 MB', () => plan(densestBatch())],
  ['largest startBatch (2 × ~1 MB inputs, 62 deep)', () => plan(largestBatch())],
  ['1,000 items, 10,000 unknown dependencies', () => plan(problemBatch())],
  ['1,000 items, 10,000 dependencies all in cycles', () => plan(cyclicBatch())],
  ['batch amplifying a 1 MB result 2,000× (submit)', () => plan(amplifying)],
  [
    'resolving those 2,000 refs (stops at 1 MB)',
    () => {
      try {
        resolveRefs(amplifying[1]?.input, bigResult, inputLimits(config));
      } catch {}
    },
  ],
  [
    'startOperation input of 1 MB (parse + checks)',
    () => parseInput(config, diagnosticsEcho.input, oneMb, toProblems),
  ],
  [
    'startOperation input of 1 MB: 80,000 small objects',
    () => parseInput(config, diagnosticsEcho.input, smallObjects, toProblems),
  ],
  ['  … its idempotency hash (hashRequest)', () => hashRequest('diagnostics.echo', smallObjects)],
  ['  … JSON.stringify of it (what is stored)', () => JSON.stringify(smallObjects)],
  [
    'startOperation input nested 100,000 deep',
    () => parseInput(config, diagnosticsEcho.input, tooDeep, toProblems),
  ],
  ['JSON.parse of the largest batch request body', () => JSON.parse(JSON.stringify(largestBatch()))],
];

console.log(`planBatch and input checks, default limits, ${runs} runs (ms)\n`);
const rows: (Timing & { name: string })[] = [];
for (const [name, step] of cases) rows.push({ name, ...(await time(step)) });
const width = Math.max(...rows.map((row) => row.name.length));
for (const row of rows) {
  console.log(
    `${row.name.padEnd(width)}  wall ${row.median.toFixed(1).padStart(6)} (max ${row.max.toFixed(1).padStart(6)})  cpu ${row.cpu.toFixed(1).padStart(6)}  longest slice ${row.slice.toFixed(1).padStart(5)}  ${row.note}`,
  );
}
