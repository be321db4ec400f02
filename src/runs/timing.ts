import type { Config } from '../config.ts';
import { ValidationError } from '../errors.ts';

/** When and how urgently a start asks to run (startOperation, startBatch: `runAt`, `priority`). */
export interface Timing {
  /** A delayed start, or null: now. A `runAt` in the past (or now) starts now. */
  runAt: Date | null;
  /** 0 (default) to MAX_PRIORITY. */
  priority: number;
}

/** The highest `priority` a start may ask for. */
export const MAX_PRIORITY = 9;

/**
 * Checks `runAt` and `priority` of a start (paths under `at`, e.g. ['input']): `priority` is an
 * integer 0–9; `runAt` at most `config.runAtMaxDays` ahead. A `runAt` not in the future is no
 * error: it starts now (clocks of clients and servers differ by a little).
 */
export function checkTiming(
  config: Pick<Config, 'runAtMaxDays'>,
  request: { runAt?: Date | null; priority?: number | null },
  at: (string | number)[] = [],
): Timing {
  const problems = [];
  const priority = request.priority ?? 0;
  if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
    problems.push({ path: [...at, 'priority'], message: `must be an integer from 0 to ${MAX_PRIORITY}` });
  }
  let runAt = request.runAt ?? null;
  if (runAt !== null) {
    const ahead = runAt.getTime() - Date.now();
    if (Number.isNaN(ahead)) problems.push({ path: [...at, 'runAt'], message: 'must be a valid time' });
    else if (ahead > config.runAtMaxDays * 86_400_000) {
      problems.push({ path: [...at, 'runAt'], message: `must be at most ${config.runAtMaxDays} days ahead` });
    } else if (ahead <= 0) runAt = null;
  }
  if (problems.length) throw new ValidationError(problems);
  return { runAt, priority };
}

/**
 * The pg-boss priority of a start's job, from its fair-share rank (0, -1, -2 …: src/quotas/fair-share.ts)
 * and the client's `priority` (0–9): `rank × 10 + priority`. Workers take the highest first, so
 * fair share comes first (a user with fewer unfinished operations is always served before one with
 * more, whatever either asks for), then the asked priority among jobs of equal rank, then the
 * oldest. A rank-0 job stays ≥ 0, so the fair-share slots (minPriority 0) take exactly what they did.
 */
export const jobPriority = (fairRank: number, priority: number): number =>
  fairRank * (MAX_PRIORITY + 1) + priority;

/** jobPriority in SQL, of SQL expressions. */
export const jobPrioritySql = (fairRank: string, priority: string): string =>
  `(${fairRank} * ${MAX_PRIORITY + 1} + ${priority})`;
