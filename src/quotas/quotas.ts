import type { Config } from '../config.ts';
import type { Db } from '../db/prisma.ts';
import { QuotaExceededError } from '../operations/errors.ts';

type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/** What a start asks of its owner's quotas. */
export interface QuotaRequest {
  ownerId: string;
  /** Operations the start creates that count: 1, or a batch's items (the batch itself does not). */
  operations: number;
  /** A key the owner already used makes the start a replay, which is never refused. Default none. */
  idempotencyKey?: string | null;
}

export interface QuotaUsage {
  /** The owner's unfinished operations before this start, counted up to the active limit. */
  active: number;
}

type Limits = Pick<Config, 'quotaMaxActive' | 'quotaStartsPerMinute'>;

/** Names opsgraph's quota locks among other users of two-key advisory locks. */
const LOCK_NAMESPACE = 7341;
/** What a refusal by the active quota suggests: it cannot know when an operation will finish. */
const ACTIVE_RETRY_AFTER_SECONDS = 5;

/**
 * Checks the owner's quotas inside the transaction that creates the operations, holding a
 * per-user transaction-scoped advisory lock until that transaction ends: concurrent starts of one
 * user, in any process, take turns from here to their commit, so each one counts what the ones
 * before it created and the limits are exact. Throws QuotaExceededError, creating nothing.
 */
export async function enforceQuotas(tx: Tx, limits: Limits, request: QuotaRequest): Promise<QuotaUsage> {
  await tx.$executeRawUnsafe(
    'SELECT pg_advisory_xact_lock($1::int, hashtext($2))',
    LOCK_NAMESPACE,
    request.ownerId,
  );
  const n = request.operations;
  // A new statement, so it sees every start committed before this one took the lock.
  const [usage] = await tx.$queryRawUnsafe<Counted[]>(
    COUNT_SQL,
    request.ownerId,
    request.idempotencyKey ?? null,
    limits.quotaMaxActive,
    Math.max(0, limits.quotaStartsPerMinute - n),
  );
  const { replay, active, windowEdge, now } = usage as Counted;
  if (replay) return { active };
  if (active + n > limits.quotaMaxActive) {
    const never = n > limits.quotaMaxActive;
    throw new QuotaExceededError(
      'ACTIVE_OPERATIONS',
      limits.quotaMaxActive,
      never ? null : ACTIVE_RETRY_AFTER_SECONDS,
    );
  }
  if (n > limits.quotaStartsPerMinute) {
    throw new QuotaExceededError('STARTS_PER_MINUTE', limits.quotaStartsPerMinute, null);
  }
  if (windowEdge) {
    // Once the start at the window's edge is a minute old, this one fits.
    const waitMs = windowEdge.getTime() + 60_000 - now.getTime();
    throw new QuotaExceededError(
      'STARTS_PER_MINUTE',
      limits.quotaStartsPerMinute,
      Math.max(1, Math.ceil(waitMs / 1000)),
    );
  }
  return { active };
}

interface Counted {
  replay: boolean;
  active: number;
  windowEdge: Date | null;
  now: Date;
}

/**
 * In one snapshot: whether the key was used; the unfinished operations that count, up to the limit
 * (served by "Operation_owner_unfinished_idx"); and the start that would be the limit's last one in
 * the 60 s window with this one added, if any (served by the owner + createdAt index).
 */
const COUNT_SQL = `
  SELECT
    EXISTS (SELECT 1 FROM "Operation" WHERE "ownerId" = $1::uuid AND "idempotencyKey" = $2) AS replay,
    (SELECT count(*)::int FROM (
       SELECT 1 FROM "Operation"
        WHERE "ownerId" = $1::uuid AND status IN ('PENDING', 'PROCESSING') AND type <> 'batch'
        LIMIT $3::int
     ) unfinished) AS active,
    (SELECT "createdAt" FROM "Operation"
      WHERE "ownerId" = $1::uuid AND "createdAt" > now() - interval '1 minute' AND type <> 'batch'
      ORDER BY "createdAt" DESC OFFSET $4::int LIMIT 1) AS "windowEdge",
    now() AS now`;
