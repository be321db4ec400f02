import { monitorEventLoopDelay } from 'node:perf_hooks';
import { print } from 'graphql';
import { describe, expect, it } from 'vitest';
import { graphql } from '../gql/index.ts';
import { gql } from '../support/client.ts';
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
 * To add a kind of worst input (a worst allowed query, a worst allowed search), add an entry to
 * WORST_INPUTS: a name, and a request body prepared once (so the client's own serializing is not
 * timed) with what its answer must be.
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

/** Rounds of the whole list the hostile user sends. */
const ROUNDS = 3;

async function send(token: string, input: WorstInput, prepared: string) {
  const response = await fetch(server.app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: prepared,
  });
  const answer = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown };
  expect(answer.errors, input.name).toBeUndefined();
  input.expect(answer.data);
}

describe('event loop under the worst allowed inputs', () => {
  it("keeps another user's operation running and their query under 200 ms, with event-loop delay p99 ≤ 50 ms", async () => {
    const { alice, bob } = server.tokens;
    const prepared = WORST_INPUTS.map((input) => input.body());
    // Warm up (first compilations) outside the measured window.
    await gql(server.app.url, Trivial, {}, bob);

    const sleeper = await startSleep(server.app.url, bob, { steps: 40, stepMs: 100 });
    const uuid = uuidOf(sleeper.id);
    await waitForRow(server.db, uuid, (row) => row.status === 'PROCESSING', 10_000, 'PROCESSING');

    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    let hostileDone = false;
    const hostile = (async () => {
      try {
        for (let round = 0; round < ROUNDS; round += 1) {
          for (const [i, input] of WORST_INPUTS.entries()) await send(alice, input, prepared[i] as string);
        }
      } finally {
        hostileDone = true;
      }
    })();
    const latencies: number[] = [];
    const prober = (async () => {
      while (!hostileDone) {
        const start = performance.now();
        const answer = await gql(server.app.url, Trivial, {}, bob);
        latencies.push(performance.now() - start);
        expect(answer.data?.viewer?.name).toBe('bob');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const started = performance.now();
    await Promise.all([hostile, prober]);
    const windowMs = performance.now() - started;
    delay.disable();

    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    const figures = {
      windowMs: Math.round(windowMs),
      requests: ROUNDS * WORST_INPUTS.length,
      delayP50: ms(delay.percentile(50)),
      delayP99: ms(delay.percentile(99)),
      delayMax: ms(delay.max),
      probes: latencies.length,
      queryMaxMs: Math.round(Math.max(...latencies)),
      queryP50Ms: Math.round(
        [...latencies].sort((a, b) => a - b)[Math.floor(latencies.length / 2)] as number,
      ),
    };
    console.log('event loop under the worst allowed inputs:', JSON.stringify(figures));

    const finished = await waitForTerminal(server.db, uuid, 30_000);
    expect(finished).toMatchObject({ status: 'COMPLETED', error: null });
    expect(latencies.length).toBeGreaterThan(5);
    expect(figures.queryMaxMs).toBeLessThanOrEqual(200);
    expect(figures.delayP99).toBeLessThanOrEqual(50);
  });
});
