import { recordAudit } from '../audit/record.ts';
import type { Viewer } from '../auth/viewer.ts';
import type { Operation } from '../generated/prisma/client.ts';
import { observeBatchSubmitted } from '../metrics/events.ts';
import { publish } from '../operations/attempt.ts';
import { registryFor } from '../operations/audience.ts';
import { cancelNow, findToCancel } from '../operations/cancel.ts';
import { IllegalTransitionError } from '../operations/errors.ts';
import { ProblemList } from '../operations/input-limits.ts';
import { insertOperation } from '../operations/insert.ts';
import { batchChannel, type EventMessage, toOperation } from '../operations/record.ts';
import { authorize, checkIdempotencyKey, findByKey, hashRequest, replay } from '../operations/start.ts';
import { isTerminal } from '../operations/status.ts';
import * as transitions from '../operations/transitions.ts';
import { countUnfinished, fairPriority } from '../quotas/fair-share.ts';
import { enforceQuotas } from '../quotas/quotas.ts';
import type { Resources } from '../resources.ts';
import { checkTiming, jobPriority } from '../runs/timing.ts';
import type { BatchSpec } from './coordinator.ts';
import { insertItems } from './insert-items.ts';
import { loadItems, skipItem } from './items.ts';
import { outcomeOf } from './outcome.ts';
import { type BatchItemRequest, batchLimits, type Plan, planBatch } from './plan.ts';

export interface StartBatchRequest {
  items: readonly BatchItemRequest[];
  atomic?: boolean | null;
  continueOnError?: boolean | null;
  validateOnly?: boolean | null;
  idempotencyKey?: string | null;
  /** Delayed start of the batch (src/runs/timing.ts). Default now. */
  runAt?: Date | null;
  /** 0–9 for the batch's coordinator job (src/runs/timing.ts). Default 0. */
  priority?: number | null;
}

export interface StartedBatch {
  /** Null for validateOnly. */
  batch: Operation | null;
  plan: Plan;
  replayed: boolean;
}

/**
 * Validates a batch as a whole (every problem reported at once), then creates the batch operation
 * and one operation per item in one transaction. The coordinator (the batch's job) starts items as
 * their dependencies complete. With validateOnly, returns the plan and creates nothing.
 */
export async function startBatch(
  r: Resources,
  viewer: Viewer,
  request: StartBatchRequest,
): Promise<StartedBatch> {
  checkIdempotencyKey(request.idempotencyKey);
  const timing = checkTiming(r.config, request);
  const atomic = request.atomic ?? true;
  const continueOnError = request.continueOnError ?? false;
  const plan = await planBatch(
    registryFor(r.registry, r.config.diagnostics, viewer),
    { items: request.items, atomic, continueOnError },
    batchLimits(r.config),
  );
  const literal = await checkItems(r, viewer, plan);
  if (request.validateOnly) return { batch: null, plan, replayed: false };
  const type = r.registry.get('batch');
  if (!type) throw new Error('the batch type is not registered');
  const spec: BatchSpec = {
    atomic,
    continueOnError,
    items: plan.items.map((item) => ({ id: item.id, type: item.type.name, dependsOn: item.dependsOn })),
  };
  const key = request.idempotencyKey ?? null;
  const inputHash = hashRequest('batch', { ...spec, inputs: plan.items.map((item) => item.input ?? null) });
  if (key !== null) {
    const earlier = await findByKey(r.db, viewer.id, key);
    if (earlier) return { batch: replay(earlier, key, inputHash).operation, plan, replayed: true };
  }
  let released: EventMessage[] = [];
  const created = await r.db.$transaction(
    async (tx) => {
      const unfinished = await countUnfinished(tx, viewer.id);
      const priority = jobPriority(fairPriority(unfinished), timing.priority);
      const batch = await insertOperation(tx, r, {
        runAt: timing.runAt,
        type,
        input: spec,
        ownerId: viewer.id,
        idempotencyKey: key,
        inputHash,
        priority,
      });
      if (!batch) return null;
      // Items that can start now are released here, in the submission's transaction: ranked like
      // the coordinator's releases, by the owner's other unfinished operations (these items included).
      const startsNow = !timing.runAt || timing.runAt.getTime() <= Date.now();
      released = await insertItems(
        tx,
        r,
        { id: batch.operation.id, ownerId: viewer.id, requestId: batch.operation.requestId },
        plan.items.map((item) => {
          const checked = literal.get(item.id);
          const ready =
            startsNow && !item.type.inline && item.dependsOn.length === 0 && checked !== undefined;
          return {
            id: item.id,
            type: item.type,
            input: ready ? checked?.input : item.input,
            collectionId: checked?.collectionId ?? null,
            ready,
          };
        }),
        fairPriority(unfinished + plan.items.length - 1),
      );
      // Its items count, the batch operation itself does not; a refusal rolls all of it back.
      await enforceQuotas(tx, r.config, {
        ownerId: viewer.id,
        operations: plan.items.length,
        reserveFor: batch.operation.id,
      });
      return batch;
    },
    { maxWait: 10_000, timeout: 30_000 },
  );
  if (!created) {
    const earlier = await findByKey(r.db, viewer.id, key as string);
    if (!earlier) throw new Error('idempotency key conflict without a stored operation');
    return { batch: replay(earlier, key as string, inputHash).operation, plan, replayed: true };
  }
  publish(r, created);
  for (const message of released) publish(r, message);
  observeBatchSubmitted(
    r.metrics,
    plan.items.map((item) => item.type.name),
  );
  return { batch: toOperation(created.operation), plan, replayed: false };
}

/**
 * Items whose input holds no reference are checked now as if started alone (access to their
 * collection, their type's own checks); the others when their references are resolved. Returns each
 * checked item's parsed input (defaults filled in) and the collection it acts on.
 */
async function checkItems(
  r: Resources,
  viewer: Viewer,
  plan: Plan,
): Promise<Map<string, { input: unknown; collectionId: string | null }>> {
  const problems = new ProblemList(r.config.maxProblems);
  const checked = new Map<string, { input: unknown; collectionId: string | null }>();
  for (const [index, item] of plan.items.entries()) {
    if (item.refs.length) continue;
    const parsed = item.type.input.safeParse(item.input);
    if (!parsed.success) continue; // reported by planBatch
    // A collection the viewer may not see (NotFoundError) or not change (ForbiddenError) refuses the
    // whole batch with that error, as startOperation refuses one operation: the first such item wins.
    const collectionId = await authorize(r, viewer, item.type, parsed.data);
    checked.set(item.id, { input: parsed.data, collectionId: collectionId ?? null });
    const found = (await item.type.check?.(parsed.data, { db: r.db, config: r.config, viewer })) ?? [];
    for (const problem of found) {
      problems.add(['items', index, ...problem.path], problem.message);
    }
  }
  problems.throwIfAny();
  return checked;
}

/**
 * Cancels a batch: pending items are skipped and running ones cancelled at once; the coordinator
 * then undoes completed items (atomic) and ends the batch CANCELLED.
 */
export async function cancelBatch(
  r: Resources,
  viewer: Viewer,
  id: string,
  displayId: string,
  reason?: string | null,
): Promise<Operation> {
  const found = await findToCancel(r, viewer, id, displayId, 'Batch');
  if (isTerminal(found.status)) throw new IllegalTransitionError(found.status, 'CANCELLED');
  await r.db.$transaction(async (tx) => {
    await tx.$executeRawUnsafe(
      `UPDATE "Operation" SET "cancelRequestedAt" = COALESCE("cancelRequestedAt", now()) WHERE id = $1::uuid`,
      id,
    );
    await recordAudit(tx, { actorId: viewer.id, action: 'BATCH_CANCELLED', operationId: id });
  });
  const why = reason || `the batch was cancelled by ${viewer.name}`;
  const items = await r.db.operation.findMany({
    where: { batchId: id, status: { in: ['PENDING', 'PROCESSING'] } },
    select: { id: true, type: true, jobId: true, status: true, startedAt: true },
  });
  for (const item of items) {
    if (item.status === 'PENDING' && !item.startedAt) {
      await skipItem(r, item, why, null);
    } else {
      await cancelNow(r, item, why, viewer.id);
    }
  }
  r.bus.publish(batchChannel(id), { cancel: true }, `${batchChannel(id)}:cancel`);
  if (found.status === 'PENDING') await cancelUnstarted(r, found, why, viewer.id);
  return r.db.operation.findUniqueOrThrow({ where: { id } });
}

/**
 * A PENDING batch none of whose items ever started has nothing to undo: it is CANCELLED at once
 * (SPEC: cancelling a PENDING operation is immediate), with its outcome as its result. One whose
 * coordinator ran before (a retry is pending) is left to the coordinator, which undoes what ran.
 */
async function cancelUnstarted(r: Resources, batch: Operation, reason: string, byUserId: string) {
  const rows = await loadItems(r.db, batch.id);
  if (rows.some((row) => row.startedAt !== null || row.status === 'COMPLETED')) return;
  const spec = batch.input as { atomic: boolean };
  const result = outcomeOf(rows, spec.atomic, true);
  const applied = await transitions.cancel(r.db, batch.id, reason, byUserId, { from: ['PENDING'], result });
  if (!applied) return;
  publish(r, applied);
  if (batch.jobId) await r.boss.cancel(batch.type, batch.jobId).catch(() => {});
}
