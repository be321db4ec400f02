import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

/**
 * Tests that measure this machine's timing (event-loop delay and latency under hostile load) run
 * after the main suite, one file at a time, so that what they measure is the server under the load
 * they send, not another test file sharing the two cores. `npm test` runs both.
 */
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['test/security/event-loop.test.ts'],
    exclude: [],
    fileParallelism: false,
    maxWorkers: 1,
  },
});
