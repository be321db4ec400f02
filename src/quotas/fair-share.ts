import type { Db } from '../db/prisma.ts';

type Executor = Pick<Db, '$queryRawUnsafe'>;

/**
 * Fair share across users. Every job is queued with a pg-boss priority of minus the number of its
 * owner's unfinished operations at that moment, so workers (which take the highest priority first,
 * then the oldest) serve the users with the fewest unfinished operations first: a heavy user's
 * backlog goes behind everyone else's next operation. Priority 0 marks a job whose owner had
 * nothing else unfinished; the runner's fair-share slots take only those.
 */
export const fairPriority = (unfinished: number): number => -Math.min(Math.max(0, unfinished), MAX_RANK);

/** fairPriority in SQL, of an SQL expression. */
export const fairPrioritySql = (unfinished: string): string =>
  `(-LEAST(GREATEST(0, ${unfinished}), ${MAX_RANK}))`;

/** Jobs queued outside a start (retries, releases, repairs) rank behind first operations. */
export const REQUEUE_PRIORITY = -1;

/** The lowest rank given: counting stops there, so the count (an index scan) stays cheap. */
const MAX_RANK = 10_000;

/** The owner's unfinished operations that count for quotas and fair share, up to MAX_RANK. */
export async function countUnfinished(db: Executor, ownerId: string): Promise<number> {
  const [row] = await db.$queryRawUnsafe<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM (
       SELECT 1 FROM "Operation"
        WHERE "ownerId" = $1::uuid AND status IN ('PENDING', 'PROCESSING') AND type <> 'batch'
        LIMIT $2::int
     ) unfinished`,
    ownerId,
    MAX_RANK,
  );
  return row?.n ?? 0;
}
