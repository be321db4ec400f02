import { loadItems } from '../batches/items.ts';
import { type BatchOutcome, type ItemRow, outcomeOf } from '../batches/outcome.ts';
import type { Resources } from '../resources.ts';
import { type Check, fixEach } from './finding.ts';
import { scanPages } from './scan.ts';

interface BatchRow {
  id: string;
  status: 'COMPLETED' | 'FAILED' | 'CANCELLED';
  atomic: boolean;
  cancelRequested: boolean;
  errorCode: string | null;
  recorded: Pick<BatchOutcome, 'status' | 'counts' | 'failed'>;
  completedAt: string;
}

interface OutcomeDrift {
  batch: BatchRow;
  computed: Pick<BatchOutcome, 'status' | 'counts' | 'failed'>;
}

/** Batches per page: each page also reads all their items. */
const BATCH_PAGE_MAX = 200;

/** The batch statuses an outcome status is recorded with (a COMPENSATION_FAILED batch: any). */
const STATUS_OF: Record<BatchOutcome['status'], BatchRow['status']> = {
  COMPLETED: 'COMPLETED',
  PARTIALLY_COMPLETED: 'COMPLETED',
  FAILED: 'FAILED',
  CANCELLED: 'CANCELLED',
  RUNNING: 'COMPLETED',
};

/** An outcome's status, counts and failed items, independent of key order (jsonb reorders keys). */
const summary = (o: Pick<BatchOutcome, 'status' | 'counts' | 'failed'>) =>
  JSON.stringify({
    status: o.status,
    counts: Object.entries(o.counts ?? {}).sort(([a], [b]) => a.localeCompare(b)),
    failed: [...(o.failed ?? [])].sort(),
  });

/**
 * One keyset page of ended batches with a recorded outcome, unchanged for `minAgeSeconds`, in
 * order of completedAt (the partial index "Operation_terminal_completedAt_idx"), with their items
 * (statuses and errors only) in one more statement.
 */
async function outcomePage(
  r: Resources,
  after: { at: string; id: string } | null,
  size: number,
  minAgeSeconds: number,
) {
  const batches = await r.db.$queryRawUnsafe<BatchRow[]>(
    `SELECT id, status::text AS status, COALESCE((input->>'atomic')::boolean, false) AS atomic,
            "cancelRequestedAt" IS NOT NULL AS "cancelRequested", error->>'code' AS "errorCode",
            jsonb_build_object('status', result->'status', 'counts', result->'counts', 'failed', result->'failed') AS recorded,
            to_char("completedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "completedAt"
       FROM "Operation"
      WHERE type = 'batch' AND status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND "completedAt" IS NOT NULL
        AND ($1::timestamptz IS NULL OR ("completedAt", id) > ($1::timestamptz, $2::uuid))
        AND jsonb_typeof(result) = 'object'
      ORDER BY "completedAt", id LIMIT $3`,
    after?.at ?? null,
    after?.id ?? null,
    Math.min(size, BATCH_PAGE_MAX),
  );
  const last = batches.at(-1);
  if (!last) return { end: null, found: [] };
  const items = await r.db.$queryRawUnsafe<(ItemRow & { batchId: string })[]>(
    `SELECT id, "batchItemId", type, status::text AS status, NULL AS input, NULL AS result, error, "jobId",
            "startedAt", "compensatedAt", "batchId"
       FROM "Operation" WHERE "batchId" = ANY($1::uuid[])`,
    batches.map((batch) => batch.id),
  );
  const byBatch = new Map<string, ItemRow[]>();
  for (const item of items) byBatch.set(item.batchId, [...(byBatch.get(item.batchId) ?? []), item]);
  const recent = new Set(
    (
      await r.db.$queryRawUnsafe<{ id: string }[]>(
        `SELECT id FROM "Operation" WHERE id = ANY($1::uuid[]) AND "updatedAt" >= now() - make_interval(secs => $2)`,
        batches.map((batch) => batch.id),
        minAgeSeconds,
      )
    ).map((row) => row.id),
  );
  const found: OutcomeDrift[] = [];
  for (const batch of batches) {
    if (recent.has(batch.id)) continue;
    const computed = outcomeOf(
      byBatch.get(batch.id) ?? [],
      batch.atomic,
      batch.cancelRequested || batch.status === 'CANCELLED',
    );
    // Items still running: the orphan repair (or the items themselves) end them first.
    if (computed.status === 'RUNNING') continue;
    if (summary(computed) !== summary(batch.recorded) || !statusAgrees(batch, computed)) {
      found.push({ batch, computed });
    }
  }
  return { end: { at: last.completedAt, id: last.id }, found };
}

const statusAgrees = (batch: BatchRow, computed: OutcomeDrift['computed']) =>
  batch.errorCode === 'COMPENSATION_FAILED' || STATUS_OF[computed.status] === batch.status;

/**
 * Records the outcome recomputed from the items as the batch's result, only if the result has not
 * changed since it was read. The batch's status is never changed (terminal).
 */
async function rewriteOutcome(r: Resources, drift: OutcomeDrift): Promise<string> {
  const { batch } = drift;
  const outcome = outcomeOf(
    await loadItems(r.db, batch.id),
    batch.atomic,
    batch.cancelRequested || batch.status === 'CANCELLED',
  );
  const rows = await r.db.$queryRawUnsafe<{ id: string }[]>(
    `UPDATE "Operation" SET result = $2::jsonb
      WHERE id = $1::uuid AND type = 'batch' AND status = $3::"OperationStatus"
        AND jsonb_build_object('status', result->'status', 'counts', result->'counts', 'failed', result->'failed') = $4::jsonb
      RETURNING id`,
    batch.id,
    JSON.stringify(outcome),
    batch.status,
    JSON.stringify(batch.recorded),
  );
  return rows.length ? `outcome recorded as ${outcome.status}` : 'changed meanwhile; left alone';
}

/**
 * Ended batches whose recorded outcome (result: status, counts, failed items) disagrees with their
 * items. `--fix` records the outcome recomputed from the items, when the batch's own (terminal)
 * status agrees with it; when it does not, a status is never rewritten: report only.
 */
export const batchOutcomes: Check = {
  kind: 'batch-outcome',
  description: 'ended batches whose recorded outcome disagrees with their items (--fix recomputes it)',
  async run(r, options) {
    const drifts = await scanPages<{ at: string; id: string }, OutcomeDrift>(
      (after, size) => outcomePage(r, after, size, options.minAgeSeconds),
      options,
    );
    const finding = (d: OutcomeDrift) => {
      const agrees = statusAgrees(d.batch, d.computed);
      const c = d.computed.counts;
      const counts = Object.entries(c)
        .filter(([, n]) => n > 0)
        .map(([status, n]) => `${n} ${status}`)
        .join(', ');
      return {
        kind: 'batch-outcome',
        subject: `Operation ${d.batch.id}`,
        problem: `batch ${d.batch.status}: recorded outcome ${d.batch.recorded.status ?? 'none'}, items say ${d.computed.status} (${counts || 'no items'})`,
        action: agrees
          ? `record the outcome recomputed from the items (${d.computed.status})`
          : `not fixable: the batch ended ${d.batch.status} and a terminal status is never changed`,
        fixable: agrees,
      };
    };
    if (!options.fix) return drifts.map(finding);
    return fixEach(drifts, finding, (d) => rewriteOutcome(r, d));
  },
};
