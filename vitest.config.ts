import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql ships CJS and ESM without an "exports" map: vite would give our code the ESM copy and
    // yoga/Pothos the CJS one, and `instanceof GraphQLError` would fail across them. One copy only.
    alias: [{ find: /^graphql$/, replacement: createRequire(import.meta.url).resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Timing-sensitive tests run alone afterwards (vitest.solo.config.ts; `npm test` runs both).
    exclude: ['test/security/event-loop.test.ts', 'node_modules/**'],
    globalSetup: ['./test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    // Each file gets its own database cloned from a migrated template (see test/support/db.ts).
    fileParallelism: true,
  },
});
