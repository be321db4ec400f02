import type { Config } from '../config.ts';
import { InsufficientCreditsError } from '../credits/errors.ts';
import { costsOf, reserveCtes } from '../credits/ledger.ts';
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

/** What a refusal by the active quota suggests: it cannot know when an operation will finish. */
const ACTIVE_RETRY_AFTER_SECONDS = 5;
/** The SQLSTATE opsgraph_admit raises a refusal with (prisma/migrations/…_admit_function). */
const REFUSED = 'OGQ01';

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
 * The quota check of a start as an SQL expression: opsgraph_admit (see its migration) takes the
 * owner's transaction-scoped quota lock, held until the transaction ends, so concurrent starts of
 * one user, in any process, take turns from there to their commit; then, each query with a new
 * snapshot that sees every start committed before the lock was granted, it counts the owner's
 * unfinished operations and starts of the last minute besides the start's own rows (the operation
 * `started` and its batch items, visible or not) plus `requested`, and checks the balance covers
 * `cost`. Taken last in the start's statement or transaction, the lock is held only for the count
 * and the commit. A refusal raises an error that {@link refusal} turns into QuotaExceededError or
 * InsufficientCreditsError; otherwise its value is the owner's other unfinished operations.
 * Arguments are SQL expressions.
 */
export const admitSql = (a: {
  owner: string;
  started: string;
  requested: string;
  maxActive: string;
  perMinute: string;
  cost: string;
}) => `opsgraph_admit(${a.owner}, ${a.started}, ${a.requested}, ${a.maxActive}, ${a.perMinute}, ${a.cost})`;

/**
 * Checks the owner's quotas and reserves the start's credits once its rows are written in `tx`
 * (batches, retries, inline starts), in one statement: see {@link admitSql}. Throws
 * QuotaExceededError, or InsufficientCreditsError when the quotas allow the start but the balance
 * does not cover it.
 */
export async function enforceQuotas(tx: Tx, limits: Limits, request: QuotaRequest): Promise<void> {
  await refusing(limits, request.operations, () =>
    tx.$executeRawUnsafe(
      ENFORCE_SQL,
      request.ownerId,
      request.reserveFor,
      request.operations,
      limits.quotaMaxActive,
      limits.quotaStartsPerMinute,
    ),
  );
}

const ENFORCE_SQL = `
  WITH ${reserveCtes('$1::uuid', costsOf('$2::uuid'), (total) =>
    admitSql({
      owner: '$1::uuid',
      started: '$2::uuid',
      requested: '$3::int',
      maxActive: '$4::int',
      perMinute: '$5::int',
      cost: total,
    }),
  )}
  SELECT 1`;

/**
 * Runs `write` (a statement with {@link admitSql} in it, for `requested` operations) and turns the
 * refusal it may raise into QuotaExceededError or InsufficientCreditsError.
 */
export async function refusing<T>(limits: Limits, requested: number, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw refusal(error, limits, requested) ?? error;
  }
}

/** What opsgraph_admit's refusal says (its DETAIL). */
type Refused =
  | { refused: 'ACTIVE_OPERATIONS' }
  | { refused: 'STARTS_PER_MINUTE'; waitMs?: number }
  | { refused: 'CREDITS'; required: number; available: number };

/** The typed error of an opsgraph_admit refusal found in `error`'s chain (however Prisma wrapped it), else null. */
export function refusal(error: unknown, limits: Limits, requested: number): Error | null {
  const detail = refusedDetail(error);
  if (!detail) return null;
  const { quotaMaxActive: maxActive, quotaStartsPerMinute: perMinute } = limits;
  const facts = JSON.parse(detail) as Refused;
  switch (facts.refused) {
    case 'ACTIVE_OPERATIONS': {
      const never = requested > maxActive;
      return new QuotaExceededError(
        'ACTIVE_OPERATIONS',
        maxActive,
        never ? null : ACTIVE_RETRY_AFTER_SECONDS,
      );
    }
    case 'STARTS_PER_MINUTE':
      // Without waitMs the request alone exceeds the limit.
      return new QuotaExceededError(
        'STARTS_PER_MINUTE',
        perMinute,
        facts.waitMs === undefined ? null : Math.max(1, Math.ceil(facts.waitMs / 1000)),
      );
    case 'CREDITS':
      return new InsufficientCreditsError(Number(facts.required), Number(facts.available));
  }
}

function refusedDetail(error: unknown): string | null {
  for (let current = error, depth = 0; current && typeof current === 'object' && depth < 5; depth += 1) {
    const { code, detail, meta, cause } = current as {
      code?: unknown;
      detail?: unknown;
      meta?: {
        driverAdapterError?: { cause?: { code?: unknown; originalCode?: unknown; detail?: unknown } };
      };
      cause?: unknown;
    };
    if (code === REFUSED && typeof detail === 'string') return detail;
    const driver = meta?.driverAdapterError?.cause;
    if (
      driver &&
      (driver.code === REFUSED || driver.originalCode === REFUSED) &&
      typeof driver.detail === 'string'
    ) {
      return driver.detail;
    }
    current = cause;
  }
  return null;
}
