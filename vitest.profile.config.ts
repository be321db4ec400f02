import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

/** `npm run bench:event-loop-profile`: bench/event-loop-profile.test.ts alone (see there). */
export default defineConfig({
  ...base,
  test: { ...base.test, include: ['bench/event-loop-profile.test.ts'], exclude: [], maxWorkers: 1 },
});
