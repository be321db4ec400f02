import { monitorEventLoopDelay } from 'node:perf_hooks';
import { print } from 'graphql';
import { describe, expect, it } from 'vitest';
import { graphql } from '../gql/index.ts';
import { gql } from '../support/client.ts';
import { createCollection, settle, startOk } from '../support/collections.ts';
import { useServer } from '../support/fixtures.ts';
import { startSleep, uuidOf, waitForRow, waitForTerminal } from '../support/operations.ts';
import {
  amplifyingBatch,
  cyclicBatch,
  DEFAULT_LIMITS,
  densestBatch,
  largestBatch,
  largeValue,
  problemBatch,
  thousandBatch,
} from './worst-inputs.ts';

/**
 * No request blocks the event loop (issue 9, point 5): while one user sends the worst inputs the
 * default limits allow, again and again, another user's running operation completes normally (never
 * WORKER_LOST), their trivial query answers within 200 ms, and the event-loop delay of this process
 * (server, worker and test client share it) stays at p99 ≤ 50 ms.
 *
 * Each kind of worst input is a name, a request body prepared once (so the client's own serializing
 * is not timed) and what its answer must be: WORST_INPUTS for writes, readingInputs() for the worst
 * allowed query and search over the hostile user's own public collection.
 */

const server = useServer();

const StartBatch = graphql(`
  mutation EventLoopStartBatch($input: StartBatchInput!) {
    startBatch(input: $input) {
      __typename
      ... on StartBatchSuccess { plan { itemCount } batch { id } }
      ... on ValidationError { omittedProblems problems { path } }
    }
  }
`);

const StartOperation = graphql(`
  mutation EventLoopStartOperation($input: StartOperationInput!) {
    startOperation(input: $input) {
      __typename
      ... on StartOperationSuccess { operation { id } }
      ... on ValidationError { problems { path } }
    }
  }
`);

const Trivial = graphql(`
  query EventLoopTrivial { viewer { name } }
`);

/** One kind of worst allowed input: the request body, and a check of the answer's data. */
interface WorstInput {
  name: string;
  body: () => string;
  expect: (data: Record<string, unknown> | undefined) => void;
}

const body = (document: Parameters<typeof print>[0], variables: unknown) =>
  JSON.stringify({ query: print(document), variables });
const batch = (items: unknown, options: Record<string, unknown> = {}) =>
  body(StartBatch, { input: { items, ...options } });
const typename = (data: Record<string, unknown> | undefined, field: string) =>
  (data?.[field] as { __typename?: string } | undefined)?.__typename;

const WORST_INPUTS: WorstInput[] = [
  {
    name: 'validateOnly: 1,000 items, 10,000 dependencies, 10,000 $refs, ~1.8 MB of inputs',
    body: () => batch(densestBatch(), { validateOnly: true }),
    expect: (data) => expect(typename(data, 'startBatch')).toBe('StartBatchSuccess'),
  },
  {
    name: 'validateOnly: 1,000 items, 1,000 dependencies',
    body: () => batch(thousandBatch(), { validateOnly: true }),
    expect: (data) => expect(typename(data, 'startBatch')).toBe('StartBatchSuccess'),
  },
  {
    name: 'startBatch: 2 items of ~1 MB nested 62 deep (the largest allowed)',
    body: () => batch(largestBatch()),
    expect: (data) => expect(typename(data, 'startBatch')).toBe('StartBatchSuccess'),
  },
  {
    name: 'startBatch: refs copying a 1 MB result 2,000 times',
    body: () => batch(amplifyingBatch(), { atomic: false }),
    expect: (data) => expect(typename(data, 'startBatch')).toBe('StartBatchSuccess'),
  },
  {
    name: 'startBatch: 10,000 problems (100 listed)',
    body: () => batch(problemBatch()),
    expect: (data) => expect(data?.startBatch).toMatchObject({ omittedProblems: 9900 }),
  },
  {
    name: 'startBatch: 10,000 dependencies in cycles',
    body: () => batch(cyclicBatch()),
    expect: (data) => expect(typename(data, 'startBatch')).toBe('ValidationError'),
  },
  {
    name: 'startOperation: a 1 MB input',
    body: () =>
      body(StartOperation, {
        input: {
          type: 'diagnostics.echo',
          input: { value: largeValue(DEFAULT_LIMITS.inputMaxBytes - 2000, 62) },
        },
      }),
    expect: (data) => expect(typename(data, 'startOperation')).toBe('StartOperationSuccess'),
  },
  {
    name: 'startOperation: a 1.5 MB input (refused)',
    body: () =>
      body(StartOperation, {
        input: { type: 'diagnostics.echo', input: { value: largeValue(1.5 * 1024 * 1024) } },
      }),
    expect: (data) => expect(typename(data, 'startOperation')).toBe('ValidationError'),
  },
];

/** Documents of the hostile user's public collection, read by the worst query and search. */
const DOCUMENTS = 100;
/**
 * Aliases of the worst query: each reads 100 documents with their content (a heavy field, 100
 * each), 10,402 of the cost limit of 50,000, so 4 is the most the limit allows.
 */
const QUERY_ALIASES = 4;

/**
 * The worst allowed query and search, over the hostile user's own public collection of 100
 * documents of ~1 KB: 4 aliases reading every document's title, content and metadata (cost 41,608
 * of 50,000: 400 documents with their content in one answer), and a search with the most terms (32) and
 * quoted phrases (4) the limits allow.
 */
function readingInputs(collectionId: string): WorstInput[] {
  // One fragment for every alias.
  const fragment =
    'fragment D on Collection { documents(first: 100) { edges { node { title content metadata } } } }';
  const fields = Array.from({ length: QUERY_ALIASES }, (_, i) => `c${i}: collection(id: $c) { ...D }`);
  // 11 words in the phrases + 21 more = 32, the terms limit.
  const words = Array.from({ length: 21 }, (_, i) => `w${i % 12}`);
  const phrases = ['"lighthouse keeper night"', '"storm over the bay"', '"w1 w2"', '"w3 w4"'];
  return [
    {
      name: `query: ${QUERY_ALIASES} aliases × 100 documents with content (the cost limit)`,
      body: () =>
        JSON.stringify({
          query: `query Worst($c: ID!) { ${fields.join(' ')} } ${fragment}`,
          variables: { c: collectionId },
        }),
      expect: (data) => expect(Object.keys(data ?? {})).toHaveLength(QUERY_ALIASES),
    },
    {
      name: 'search: 32 terms, 4 quoted phrases (the limits)',
      body: () =>
        JSON.stringify({
          query: `query WorstSearch($c: ID!, $q: String!) { search(collectionId: $c, query: $q, first: 100) {
            __typename ... on SearchSuccess { hits { score snippet document { title } } } } }`,
          variables: { c: collectionId, q: `${phrases.join(' ')} ${words.join(' ')}` },
        }),
      expect: (data) => expect(['SearchSuccess', 'SearchTimeoutError']).toContain(typename(data, 'search')),
    },
  ];
}

/** Rounds of the whole list the hostile user sends. */
const ROUNDS = 2;

/** The longest event-loop delay seen while each kind of input was in flight, in ms (printed). */
const worstDelayByKind = new Map<string, number>();
/** The most main-thread CPU time in one 10 ms turn while each kind was in flight, in ms (printed). */
const worstCpuByKind = new Map<string, number>();

/**
 * Main-thread CPU time per turn of a 10 ms timer (process.threadCpuUsage), with the time each turn
 * ended. A synchronous step of N ms shows as a turn of at least N ms of CPU; unlike the event-loop
 * delay, this is not inflated when other processes hold the cores (a shared machine, CI), so the
 * printed figures can be compared between runs on a busy machine. Printed, never asserted.
 */
function cpuTurns() {
  const turns: { at: number; ms: number }[] = [];
  let last = process.threadCpuUsage();
  const timer = setInterval(() => {
    const used = process.threadCpuUsage(last);
    last = process.threadCpuUsage();
    turns.push({ at: performance.now(), ms: (used.user + used.system) / 1000 });
  }, 10);
  return {
    maxBetween: (from: number, to: number) =>
      Math.max(0, ...turns.filter((t) => t.at >= from && t.at <= to + 10).map((t) => t.ms)),
    stop: () => {
      clearInterval(timer);
      return turns.map((t) => t.ms).sort((a, b) => a - b);
    },
  };
}
let turns: ReturnType<typeof cpuTurns> | undefined;

async function send(token: string, input: WorstInput, prepared: string) {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  const started = performance.now();
  delay.enable();
  const response = await fetch(server.app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: prepared,
  });
  const answer = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown };
  expect(answer.errors, input.name).toBeUndefined();
  input.expect(answer.data);
  delay.disable();
  const worst = Math.round(delay.max / 1e6);
  worstDelayByKind.set(input.name, Math.max(worst, worstDelayByKind.get(input.name) ?? 0));
  const cpu = Math.round(turns?.maxBetween(started, performance.now()) ?? 0);
  worstCpuByKind.set(input.name, Math.max(cpu, worstCpuByKind.get(input.name) ?? 0));
}

/**
 * Runs `load` while `token`'s user sends a trivial query every 50 ms and the event-loop delay is
 * recorded; returns the figures (ms).
 */
async function measure(token: string, load: () => Promise<void>) {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  turns = cpuTurns();
  let done = false;
  const latencies: number[] = [];
  const prober = (async () => {
    while (!done) {
      const start = performance.now();
      const answer = await gql(server.app.url, Trivial, {}, token);
      latencies.push(performance.now() - start);
      expect(answer.data?.viewer?.name).toBeTruthy();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const started = performance.now();
  try {
    await load();
  } finally {
    done = true;
  }
  await prober;
  delay.disable();
  const cpu = turns.stop();
  turns = undefined;
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    windowMs: Math.round(performance.now() - started),
    // The histogram counts each 10 ms tick's full interval: an idle loop reads about 10.
    delayP50: ms(delay.percentile(50)),
    delayP99: ms(delay.percentile(99)),
    delayMax: ms(delay.max),
    probes: latencies.length,
    queryP50Ms: Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0),
    queryMaxMs: Math.round(sorted.at(-1) ?? 0),
    cpuPerTurnP99Ms: Math.round(cpu[Math.floor(cpu.length * 0.99)] ?? 0),
    cpuPerTurnMaxMs: Math.round(cpu.at(-1) ?? 0),
  };
}

describe('event loop under the worst allowed inputs', () => {
  it("keeps another user's operation running and answers their queries (under 200 ms, event-loop delay p99 ≤ 50 ms: bench:event-loop)", async () => {
    const { alice, bob } = server.tokens;
    const collectionId = await createCollection(server.app.url, alice, { name: 'hostile', isPublic: true });
    const text = (i: number) =>
      `# Note ${i}\n${Array.from({ length: 150 }, (_, k) => `w${(i + k) % 12} lighthouse storm`).join(' ')}`;
    const index = await startOk(server.app.url, alice, 'collection.index', {
      collectionId,
      source: {
        kind: 'inline',
        name: 'notes',
        documents: Array.from({ length: DOCUMENTS }, (_, i) => ({ externalId: `n${i}`, content: text(i) })),
      },
    });
    expect((await settle(server.app.url, alice, index.id)).status).toBe('COMPLETED');
    const inputs = [...WORST_INPUTS, ...readingInputs(collectionId)];
    const prepared = inputs.map((input) => input.body());
    // Warm up (first compilations) outside the measured window.
    await gql(server.app.url, Trivial, {}, bob);

    const sleeper = await startSleep(server.app.url, bob, { steps: 100, stepMs: 100 });
    const uuid = uuidOf(sleeper.id);
    await waitForRow(server.db, uuid, (row) => row.status === 'PROCESSING', 10_000, 'PROCESSING');

    // Baseline: the same probes with no hostile input, so that the figures show what the machine
    // itself adds (on a busy CI machine, waiting for a core shows up as event-loop delay too).
    const baseline = await measure(bob, async () => {
      await new Promise((resolve) => setTimeout(resolve, 2000));
    });
    const window = await measure(bob, async () => {
      for (let round = 0; round < ROUNDS; round += 1) {
        for (const [i, input] of inputs.entries()) await send(alice, input, prepared[i] as string);
      }
    });
    console.log(
      'event loop under the worst allowed inputs:',
      JSON.stringify({
        requests: ROUNDS * inputs.length,
        baseline,
        window,
        maxDelayMsByKind: Object.fromEntries(worstDelayByKind),
        maxCpuPerTurnMsByKind: Object.fromEntries(worstCpuByKind),
      }),
    );

    const finished = await waitForTerminal(server.db, uuid, 30_000);
    expect(finished).toMatchObject({ status: 'COMPLETED', error: null });
    expect(window.probes).toBeGreaterThan(5);
    // The timing targets are this machine's speed: checked by `npm run bench:event-loop` (which
    // runs this file with OPSGRAPH_ASSERT_TIMING=1), printed above on every test run.
    if (process.env.OPSGRAPH_ASSERT_TIMING) {
      expect(window.queryMaxMs, 'slowest trivial query of the other user, ms').toBeLessThanOrEqual(200);
      expect(window.delayP99, 'event-loop delay p99, ms').toBeLessThanOrEqual(50);
    }
  });
});
