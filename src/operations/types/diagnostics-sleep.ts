import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineOperationType, NonRetryableError, type RunContext } from '../registry.ts';

/** The failure the diagnostics types raise when asked to with `failAtStep` or `failAttempts`. */
export class RequestedFailure extends Error {
  override name = 'RequestedFailure';
  readonly code = 'REQUESTED_FAILURE';
}

const input = z.strictObject({
  steps: z.int().min(0).max(100_000).describe('Number of steps'),
  stepMs: z.int().min(0).max(60_000).describe('Milliseconds per step'),
  failAtStep: z.int().min(1).optional().describe('Fail when this step is reached'),
  failAttempts: z
    .int()
    .min(0)
    .max(100)
    .optional()
    .describe('Fail the first N attempts at failAtStep (default: all)'),
  permanent: z.boolean().optional().describe('Make the requested failure not retryable'),
  ignoreCancel: z
    .boolean()
    .optional()
    .describe('Keep going after cancellation or timeout (to test that a late result is discarded)'),
});

async function sleepSteps(request: z.infer<typeof input>, ctx: RunContext) {
  const started = Date.now();
  const failing = request.failAttempts === undefined || ctx.attempt <= request.failAttempts;
  for (let step = 1; step <= request.steps; step += 1) {
    if (request.failAtStep === step && failing) {
      const message = `failed at step ${step} of attempt ${ctx.attempt} as requested`;
      throw request.permanent
        ? new NonRetryableError(message, 'REQUESTED_FAILURE')
        : new RequestedFailure(message);
    }
    if (request.ignoreCancel) await sleep(request.stepMs);
    else await sleep(request.stepMs, undefined, { signal: ctx.signal });
    ctx.progress({ current: step, total: request.steps, message: `step ${step} of ${request.steps}` });
  }
  return { steps: request.steps, attempt: ctx.attempt, elapsedMs: Date.now() - started };
}

/**
 * `diagnostics.sleep`: waits `steps` times for `stepMs`, reporting progress after each step.
 * It does no real work: it exists for tests, benchmarks and health checks. No retries.
 */
export const diagnosticsSleep = defineOperationType({
  name: 'diagnostics.sleep',
  description:
    'Diagnostics only: waits `steps` × `stepMs` ms, reporting progress after each step; fails at `failAtStep` when given. No retries. For tests, benchmarks and health checks.',
  input,
  run: sleepSteps,
});

/** `diagnostics.flaky`: `diagnostics.sleep` with a retry policy (3 retries, 1 s doubling). */
export const diagnosticsFlaky = defineOperationType({
  name: 'diagnostics.flaky',
  description:
    'Diagnostics only: like diagnostics.sleep, with up to 3 retries after 1 s, 2 s, 4 s. Use failAttempts to fail the first attempts.',
  input,
  policy: { retryLimit: 3, retryDelaySeconds: 1, retryBackoff: true, retryDelayMaxSeconds: 30 },
  run: sleepSteps,
});

const echoInput = z.strictObject({
  // Any JSON, taken as it arrives (as JSON): z.json() would walk a 1 MB value of small items for
  // ~100 ms, holding the event loop.
  value: z.unknown().optional().describe('Any JSON value, returned as the result, unchanged'),
  sleepMs: z.int().min(0).max(600_000).optional().describe('Wait this long first (aborts on cancel)'),
  failWith: z.string().max(1000).optional().describe('Fail (not retryable) with this message after the wait'),
});

/**
 * `diagnostics.echo`: returns its `value` as `{ value }` after an optional wait, or fails on
 * request. Its compensation has nothing to undo. For tests of batches (references keep their JSON
 * types, parallel branches, atomic rollback) and for benchmarks.
 */
export const diagnosticsEcho = defineOperationType({
  name: 'diagnostics.echo',
  description:
    'Diagnostics only: returns { value } after waiting sleepMs, or fails with failWith. Compensation: nothing to undo. For tests and benchmarks of batches.',
  input: echoInput,
  output: z.object({ value: z.json().optional() }),
  async run(request, ctx) {
    if (request.sleepMs) await sleep(request.sleepMs, undefined, { signal: ctx.signal });
    if (request.failWith !== undefined) throw new NonRetryableError(request.failWith, 'REQUESTED_FAILURE');
    return { value: request.value as z.infer<ReturnType<typeof z.json>> | undefined };
  },
  async compensate() {
    // Nothing to undo: echo has no effects.
  },
});
