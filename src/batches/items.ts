import { randomUUID } from 'node:crypto';
import { fromPrisma } from 'pg-boss';
import type { Viewer } from '../auth/viewer.ts';
import type { Db } from '../db/prisma.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { publish } from '../operations/attempt.ts';
import * as batchTransitions from '../operations/batch-transitions.ts';
import { runInlineItem } from '../operations/inline.ts';
import { type JobData, jobOptions } from '../operations/queues.ts';
import type { EventMessage } from '../operations/record.ts';
import type { OperationType } from '../operations/registry.ts';
import { authorize } from '../operations/start.ts';
import * as transitions from '../operations/transitions.ts';
import type { Resources } from '../resources.ts';
import { ITEM_COLUMNS, type ItemRow } from './outcome.ts';
import { RefError, resolveRefs } from './refs.ts';

/** The items of a batch, as the coordinator reads them. */
export const loadItems = (db: Db, batchId: string) =>
  db.$queryRawUnsafe<ItemRow[]>(
    `SELECT ${ITEM_COLUMNS} FROM "Operation" WHERE "batchId" = $1::uuid`,
    batchId,
  );

/** Why an input cannot be used, as an item error. */
async function prepare(
  r: Resources,
  viewer: Viewer,
  type: OperationType,
  template: unknown,
  results: ReadonlyMap<string, unknown>,
): Promise<{ input: unknown; collectionId: string | null } | transitions.OperationError> {
  let resolved: unknown;
  try {
    resolved = resolveRefs(template, results);
  } catch (error) {
    if (error instanceof RefError) return { code: error.code, message: error.message };
    throw error;
  }
  const parsed = type.input.safeParse(resolved);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${['input', ...issue.path].join('.')}: ${issue.message}`,
    );
    return { code: 'INVALID_INPUT', message: `with its references resolved: ${problems.join('; ')}` };
  }
  try {
    // Access rules apply to every item as if it were started alone.
    const collectionId = await authorize(r, viewer, type, parsed.data);
    const problems = (await type.check?.(parsed.data, { db: r.db, config: r.config, viewer })) ?? [];
    if (problems.length) throw new ValidationError(problems);
    return { input: parsed.data, collectionId };
  } catch (error) {
    if (error instanceof NotFoundError) return { code: 'NOT_FOUND', message: error.message };
    if (error instanceof ForbiddenError) return { code: 'FORBIDDEN', message: error.message };
    if (error instanceof ValidationError) return { code: 'INVALID_INPUT', message: error.message };
    throw error;
  }
}

/** Items started per transaction: one commit for many (commits dominate on this path). */
const CHUNK = 100;

/**
 * Starts items whose dependencies completed: resolves their references from the results, checks
 * each as if started alone, then queues the jobs, many per transaction (inline items run each in
 * its own). An item that cannot be started this way ends FAILED with the reason.
 */
export async function startItems(
  r: Resources,
  viewer: Viewer,
  rows: ItemRow[],
  results: ReadonlyMap<string, unknown>,
): Promise<void> {
  const ready: { row: ItemRow; type: OperationType; input: unknown; collectionId: string | null }[] = [];
  for (const row of rows) {
    const type = r.registry.get(row.type);
    const prepared = type
      ? await prepare(r, viewer, type, row.input, results)
      : { code: 'UNKNOWN_TYPE', message: `unknown operation type ${row.type}` };
    if (!type || 'code' in prepared) {
      const error = prepared as transitions.OperationError;
      const failed = await transitions.fail(r.db, row.id, null, error, { from: ['PENDING'] });
      if (failed) publish(r, failed);
    } else if (type.inline) {
      const messages = await runInlineItem(r, type, row.id, prepared.input, viewer.id);
      for (const message of messages ?? []) publish(r, message);
    } else {
      ready.push({ row, type, ...prepared });
    }
  }
  for (let i = 0; i < ready.length; i += CHUNK) {
    const released = await r.db.$transaction(
      async (tx) => {
        const applied: EventMessage[] = [];
        for (const { row, type, input, collectionId } of ready.slice(i, i + CHUNK)) {
          const jobId = randomUUID();
          const done = await batchTransitions.release(tx, row.id, input, jobId, collectionId);
          if (!done) continue; // started meanwhile (a restarted coordinator)
          const data: JobData = { operationId: row.id };
          await r.boss.send(type.name, data, { id: jobId, ...jobOptions(type.policy), db: fromPrisma(tx) });
          applied.push(done);
        }
        return applied;
      },
      { maxWait: 10_000, timeout: 60_000 },
    );
    for (const message of released) publish(r, message);
  }
}
