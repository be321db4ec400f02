import type { Config } from '../config.ts';
import { InsufficientCreditsError } from '../credits/errors.ts';
import { reserveCtes } from '../credits/ledger.ts';
import type { Db } from '../db/prisma.ts';
import { QuotaExceededError } from '../operations/errors.ts';
import { countUnfinished, fairPriority } from './fair-share.ts';

type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/** What a start asks of its owner's quotas. */
export interface QuotaRequest {
  ownerId: string;
  /** Operations the start creates that count: 1, or a batch's items (the batch itself does not). */
  operations: number;
  /**
   * The operation the start created (a batch: the batch operation, whose items are reserved with
   * it): its credits are reserved in the same statement as the quota count.
   */
  reserveFor: string;
}

type Limits = Pick<Config, 'quotaMaxActive' | 'quotaStartsPerMinute'>;

/** Names opsgraph's quota locks among other users of two-key advisory locks. */
const LOCK_NAMESPACE = 7341;
/** What a refusal by the active quota suggests: it cannot know when an operation will finish. */
const ACTIVE_RETRY_AFTER_SECONDS = 5;

/**
 * Creates a start's rows within its owner's quotas, in the caller's transaction: `create` writes
 * them (given its job's fair-share priority) and returns null when it wrote nothing (an
 * idempotent replay, never refused); then the quotas are checked, and a refusal throws
 * QuotaExceededError, which rolls the transaction back: nothing is created.
 */
export async function admit<T extends { operation: { id: string } }>(
  tx: Tx,
  limits: Limits,
  request: Omit<QuotaRequest, 'reserveFor'>,
  create: (priority: number) => Promise<T | null>,
): Promise<T | null> {
  // The priority needs no lock: it only orders jobs.
  const created = await create(fairPriority(await countUnfinished(tx, request.ownerId)));
  if (created !== null) await enforceQuotas(tx, limits, { ...request, reserveFor: created.operation.id });
  return created;
}

/**
 * Checks the owner's quotas once this start's own rows are written in `tx`, under a per-user
 * transaction-scoped advisory lock held until the transaction ends: concurrent starts of one user,
 * in any process, take turns from here to their commit, so each counts everything committed before
 * it plus its own rows, and the limits are exact. Taken after the inserts, the lock is held only for
 * the count and the commit. The same statement reserves the start's credits (src/credits/): no
 * extra round trip. Throws QuotaExceededError, or InsufficientCreditsError when the quotas allow
 * the start but the balance does not cover it.
 */
export async function enforceQuotas(tx: Tx, limits: Limits, request: QuotaRequest): Promise<void> {
  await tx.$executeRawUnsafe(
    'SELECT pg_advisory_xact_lock($1::int, hashtext($2))',
    LOCK_NAMESPACE,
    request.ownerId,
  );
  const n = request.operations;
  const { quotaMaxActive: maxActive, quotaStartsPerMinute: perMinute } = limits;
  // A new statement, so it sees every start committed before this one took the lock.
  const [usage] = await tx.$queryRawUnsafe<Counted[]>(
    COUNT_SQL,
    request.ownerId,
    maxActive,
    perMinute,
    request.reserveFor,
  );
  const { active, windowEdge, now, reserved, required, available } = usage as Counted;
  if (active > maxActive) {
    const never = n > maxActive;
    throw new QuotaExceededError('ACTIVE_OPERATIONS', maxActive, never ? null : ACTIVE_RETRY_AFTER_SECONDS);
  }
  if (n > perMinute) throw new QuotaExceededError('STARTS_PER_MINUTE', perMinute, null);
  if (windowEdge) {
    // Once the start just past the limit is a minute old, the window holds this one.
    const waitMs = windowEdge.getTime() + 60_000 - now.getTime();
    throw new QuotaExceededError('STARTS_PER_MINUTE', perMinute, Math.max(1, Math.ceil(waitMs / 1000)));
  }
  if (!reserved) throw new InsufficientCreditsError(required, available);
}

interface Counted {
  active: number;
  windowEdge: Date | null;
  now: Date;
  /** Whether the credits were reserved; else what was needed and what the balance held. */
  reserved: boolean;
  required: number;
  available: number;
}

/**
 * In one snapshot, this start's rows included: the unfinished operations that count, up to one past
 * the limit (served by "Operation_owner_unfinished_idx"), and the start one past the per-minute
 * limit in the last 60 s, if any (served by "Operation_owner_starts_idx"); and the reservation of
 * the start's credits (the balance read is the statement's snapshot: the one before it).
 */
const COUNT_SQL = `
  WITH ${reserveCtes('$1::uuid', '$4::uuid')}
  SELECT
    (SELECT count(*)::int FROM (
       SELECT 1 FROM "Operation"
        WHERE "ownerId" = $1::uuid AND status IN ('PENDING', 'PROCESSING') AND type <> 'batch'
        LIMIT $2::int + 1
     ) unfinished) AS active,
    (SELECT "createdAt" FROM "Operation"
      WHERE "ownerId" = $1::uuid AND "createdAt" > now() - interval '1 minute' AND type <> 'batch'
      ORDER BY "createdAt" DESC OFFSET $3::int LIMIT 1) AS "windowEdge",
    now() AS now,
    EXISTS (SELECT 1 FROM reservation) AS reserved,
    (SELECT total FROM need)::float8 AS required,
    COALESCE((SELECT balance FROM "CreditAccount" WHERE "userId" = $1::uuid), 0)::float8 AS available`;
