import { randomUUID } from 'node:crypto';
import { fromPrisma } from 'pg-boss';
import type { Viewer } from '../auth/viewer.ts';
import type { Db } from '../db/prisma.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { publish } from '../operations/attempt.ts';
import { runInlineItem } from '../operations/inline.ts';
import { type JobData, jobOptions } from '../operations/queues.ts';
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
    const problems = (await type.check?.(parsed.data, { db: r.db, config: r.config })) ?? [];
    if (problems.length) throw new ValidationError(problems);
    return { input: parsed.data, collectionId };
  } catch (error) {
    if (error instanceof NotFoundError) return { code: 'NOT_FOUND', message: error.message };
    if (error instanceof ForbiddenError) return { code: 'FORBIDDEN', message: error.message };
    if (error instanceof ValidationError) return { code: 'INVALID_INPUT', message: error.message };
    throw error;
  }
}

/**
 * Starts an item whose dependencies completed: resolves its references from their results, checks
 * it as if it were started alone, then queues its job (or runs it, inline). An item that cannot be
 * started this way ends FAILED with the reason.
 */
export async function startItem(
  r: Resources,
  viewer: Viewer,
  row: ItemRow,
  results: ReadonlyMap<string, unknown>,
): Promise<void> {
  const type = r.registry.get(row.type);
  const ready = type
    ? await prepare(r, viewer, type, row.input, results)
    : { code: 'UNKNOWN_TYPE', message: `unknown operation type ${row.type}` };
  if (!type || 'code' in ready) {
    const failed = await transitions.fail(r.db, row.id, null, ready as transitions.OperationError, {
      from: ['PENDING'],
    });
    if (failed) publish(r, failed);
    return;
  }
  if (type.inline) {
    const messages = await runInlineItem(r, type, row.id, ready.input, viewer.id);
    for (const message of messages ?? []) publish(r, message);
    return;
  }
  const jobId = randomUUID();
  const released = await r.db.$transaction(async (tx) => {
    const applied = await transitions.release(tx, row.id, ready.input, jobId, ready.collectionId);
    if (applied) {
      const data: JobData = { operationId: row.id };
      await r.boss.send(type.name, data, { id: jobId, ...jobOptions(type.policy), db: fromPrisma(tx) });
    }
    return applied;
  });
  if (released) publish(r, released);
}
