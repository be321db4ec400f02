import { type Exited, runToExit, uniquePrefix } from './app.ts';
import type { TestDatabase } from './db.ts';
import { REDIS_URL } from './services.ts';

/**
 * Runs `npm run doctor -- <args>` as a real process against the test database to its exit. Rows
 * of any age are looked at (OPSGRAPH_RECONCILE_MIN_AGE_SECONDS=0) unless `env` says otherwise.
 */
export function runDoctor(
  db: TestDatabase,
  args: string[] = [],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<Exited> {
  return runToExit(
    'npm',
    ['run', '--silent', 'doctor', '--', ...args],
    {
      ...process.env,
      DATABASE_URL: db.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      OPSGRAPH_RECONCILE_MIN_AGE_SECONDS: '0',
      ...env,
    },
    timeoutMs,
  );
}

/** The report line about `subject` (an id), if any. */
export const lineAbout = (stdout: string, subject: string) =>
  stdout.split('\n').find((line) => line.includes(subject));

/** The summary line of a run. */
export const summaryOf = (stdout: string) => stdout.trim().split('\n').at(-1) ?? '';
