import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineOperationType } from '../registry.ts';

/** The failure `diagnostics.sleep` raises when asked to with `failAtStep`. */
export class RequestedFailure extends Error {
  override name = 'RequestedFailure';
  readonly code = 'REQUESTED_FAILURE';
}

/**
 * `diagnostics.sleep`: waits `steps` times for `stepMs`, reporting progress after each step.
 * It does no real work: it exists for tests, benchmarks and health checks.
 */
export const diagnosticsSleep = defineOperationType({
  name: 'diagnostics.sleep',
  description:
    'Diagnostics only: waits `steps` × `stepMs` ms, reporting progress after each step; fails at `failAtStep` when given. For tests, benchmarks and health checks.',
  input: z.strictObject({
    steps: z.int().min(0).max(100_000).describe('Number of steps'),
    stepMs: z.int().min(0).max(60_000).describe('Milliseconds per step'),
    failAtStep: z.int().min(1).optional().describe('Fail when this step is reached'),
    ignoreCancel: z
      .boolean()
      .optional()
      .describe('Keep going after cancellation (to test that a late result is discarded)'),
  }),
  async run(input, ctx) {
    const started = Date.now();
    for (let step = 1; step <= input.steps; step += 1) {
      if (input.failAtStep === step) throw new RequestedFailure(`failed at step ${step} as requested`);
      if (input.ignoreCancel) await sleep(input.stepMs);
      else await sleep(input.stepMs, undefined, { signal: ctx.signal });
      ctx.progress({ current: step, total: input.steps, message: `step ${step} of ${input.steps}` });
    }
    return { steps: input.steps, elapsedMs: Date.now() - started };
  },
});
