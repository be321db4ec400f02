import { Session } from 'node:inspector/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
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
import { useServer } from '../test/support/fixtures.ts';
import { uuidOf } from '../test/support/operations.ts';

/**
 * Where the long synchronous blocks of one worst input come from (issue 9, point 5); not part of the
 * suite. `npm run bench:event-loop-profile` with PROFILE_KIND=op1mb (a 1 MB startOperation, the
 * default), largest (startBatch of 2 × ~1 MB), densest (the densest validateOnly batch), cycles
 * (10,000 dependencies in cycles) or amplify (refs copying a 1 MB result), sent
 * PROFILE_ROUNDS times (default 4), each waited for until every operation ended. Prints the turns
 * of the loop with the most main-thread CPU (process.threadCpuUsage: not inflated by other
 * processes on a busy machine) and, unless PROFILE_OFF=1, the busiest stretches of a CPU profile
 * (PROFILE_RUNS of them) with their heaviest functions. The profiler itself slows the process
 * several times: compare its figures with each other, not with the event-loop test's.
 */
const server = useServer();

const START = `mutation P($input: StartOperationInput!) { startOperation(input: $input) { __typename ... on StartOperationSuccess { operation { id } } } }`;
const BATCH = `mutation B($input: StartBatchInput!) { startBatch(input: $input) { __typename ... on StartBatchSuccess { batch { id } } } }`;
const BATCH_PROBLEMS = `mutation B($input: StartBatchInput!) { startBatch(input: $input) { __typename ... on ValidationError { omittedProblems problems { path message } } } }`;

const bodies: Record<string, () => string> = {
  op1mb: () =>
    JSON.stringify({
      query: START,
      variables: {
        input: {
          type: 'diagnostics.echo',
          input: { value: largeValue(DEFAULT_LIMITS.inputMaxBytes - 2000, 62) },
        },
      },
    }),
  largest: () => JSON.stringify({ query: BATCH, variables: { input: { items: largestBatch() } } }),
  densest: () =>
    JSON.stringify({ query: BATCH, variables: { input: { items: densestBatch(), validateOnly: true } } }),
  thousand: () =>
    JSON.stringify({ query: BATCH, variables: { input: { items: thousandBatch(), validateOnly: true } } }),
  problems: () => JSON.stringify({ query: BATCH_PROBLEMS, variables: { input: { items: problemBatch() } } }),
  cycles: () => JSON.stringify({ query: BATCH, variables: { input: { items: cyclicBatch() } } }),
  amplify: () =>
    JSON.stringify({ query: BATCH, variables: { input: { items: amplifyingBatch(), atomic: false } } }),
};

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

it('profiles', async () => {
  const kind = process.env.PROFILE_KIND ?? 'op1mb';
  const rounds = Number(process.env.PROFILE_ROUNDS ?? 4);
  const body = bodies[kind]!();
  const send = async () => {
    const response = await fetch(server.app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.tokens.alice}` },
      body,
    });
    const answer = (await response.json()) as {
      data: Record<string, { operation?: { id: string }; batch?: { id: string } }>;
    };
    const first = Object.values(answer.data)[0]!;
    const started = first.operation ?? first.batch;
    if (!started) return; // validateOnly: nothing runs
    const uuid = uuidOf(started.id);
    for (;;) {
      const [row] = await server.db.query<{ status: string }>(
        'SELECT status::text FROM "Operation" WHERE id = $1',
        [uuid],
      );
      if (row && ['COMPLETED', 'FAILED', 'CANCELLED'].includes(row.status)) break;
      await sleep(20);
    }
    // the batch's items too
    for (;;) {
      const [row] = await server.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "Operation" WHERE status NOT IN ('COMPLETED','FAILED','CANCELLED')`,
      );
      if (row?.n === 0) break;
      await sleep(20);
    }
  };
  await send(); // warm up
  // `clock`: CLOCK_MONOTONIC in µs, the clock of the CPU profile's sample timestamps.
  const ticks: { wall: number; cpu: number; at: number; clock: number }[] = [];
  let last = performance.now();
  let lastCpu = process.threadCpuUsage();
  const timer = setInterval(() => {
    const now = performance.now();
    const cpu = process.threadCpuUsage(lastCpu);
    lastCpu = process.threadCpuUsage();
    const clock = Number(process.hrtime.bigint() / 1000n);
    ticks.push({ wall: now - last, cpu: (cpu.user + cpu.system) / 1000, at: now, clock });
    last = now;
  }, 1);
  const profiling = !process.env.PROFILE_OFF;
  const session = new Session();
  if (profiling) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  const t0 = performance.now();
  for (let i = 0; i < rounds; i += 1) await send();
  clearInterval(timer);
  const cpuSorted = ticks.map((t) => t.cpu).sort((a, b) => b - a);
  console.log(
    `${kind}: ticks by main-thread CPU, top 20 (ms):`,
    cpuSorted
      .slice(0, 20)
      .map((c) => c.toFixed(1))
      .join(' '),
  );
  if (!profiling) return;
  const { profile } = (await session.post('Profiler.stop')) as unknown as {
    profile: { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number };
  };
  const elapsed = performance.now() - t0;
  const long = ticks.filter((t) => t.wall > 12).sort((a, b) => b.cpu - a.cpu);
  console.log(`${kind}: ${rounds} rounds in ${Math.round(elapsed)} ms; ticks >12 ms wall: ${long.length}`);
  console.log(
    'longest ticks by main-thread CPU (cpu/wall ms):',
    long
      .slice(0, 16)
      .map((t) => `${t.cpu.toFixed(0)}/${t.wall.toFixed(0)}`)
      .join(' '),
  );

  // Busy runs in the profile: consecutive samples that are not (idle), with their heaviest frames.
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (id: number) => {
    const f = byId.get(id)!.callFrame;
    return `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/(node_modules\/)?/, '')}:${f.lineNumber + 1}`;
  };
  /** The innermost frame of our own code (src/), or the leaf. */
  const ours = (id: number) => {
    let cur: number | undefined = id;
    while (cur !== undefined) {
      const f = byId.get(cur)!.callFrame;
      if (f.url.includes('/src/') || f.url.includes('/test/')) return label(cur);
      cur = parent.get(cur);
    }
    return label(id);
  };
  const runs: { ms: number; leaves: Map<string, number>; own: Map<string, number> }[] = [];
  let current: (typeof runs)[number] | undefined;
  profile.samples.forEach((sample, i) => {
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const name = byId.get(sample)!.callFrame.functionName;
    if (name === '(idle)') {
      if (current && current.ms > 0) runs.push(current);
      current = undefined;
      return;
    }
    current ??= { ms: 0, leaves: new Map(), own: new Map() };
    current.ms += dt;
    const leaf = label(sample);
    current.leaves.set(leaf, (current.leaves.get(leaf) ?? 0) + dt);
    const o = ours(sample);
    current.own.set(o, (current.own.get(o) ?? 0) + dt);
  });
  runs.sort((a, b) => b.ms - a.ms);
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `    ${v.toFixed(1)} ms ${k}`)
      .join('\n');
  for (const run of runs.slice(0, Number(process.env.PROFILE_RUNS ?? 8))) {
    console.log(
      `busy run ${run.ms.toFixed(1)} ms\n  leaves:\n${top(run.leaves, 8)}\n  our frames:\n${top(run.own, 8)}`,
    );
  }

  // The longest turns of the loop (between two runs of the 1 ms timer), each with the frames the
  // profile sampled in it: what one turn holds, where a busy run may span many turns.
  const sampledAt: number[] = [];
  let at = profile.startTime;
  for (const delta of profile.timeDeltas) {
    at += delta;
    sampledAt.push(at);
  }
  const stacks = (id: number) => {
    const names: string[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) names.push(label(cur));
    return names;
  };
  const turns = ticks
    .map((tick, i) => ({ ...tick, from: ticks[i - 1]?.clock ?? tick.clock - tick.wall * 1000 }))
    .sort((a, b) => b.cpu - a.cpu)
    .slice(0, Number(process.env.PROFILE_TURNS ?? 6));
  for (const turn of turns) {
    const own = new Map<string, number>();
    const inclusive = new Map<string, number>();
    profile.samples.forEach((sample, i) => {
      const t = sampledAt[i] as number;
      if (t <= turn.from || t > turn.clock) return;
      const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
      const o = ours(sample);
      own.set(o, (own.get(o) ?? 0) + dt);
      for (const name of new Set(stacks(sample))) inclusive.set(name, (inclusive.get(name) ?? 0) + dt);
    });
    console.log(
      `turn ${turn.cpu.toFixed(1)} ms CPU / ${turn.wall.toFixed(1)} ms wall\n  our frames:\n${top(own, 10)}\n  inclusive:\n${top(inclusive, 25)}`,
    );
  }
  expect(rounds).toBeGreaterThan(0);
});
