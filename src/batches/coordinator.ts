import { encodeGlobalID } from '@pothos/plugin-relay';
import { z } from 'zod';
import type { Viewer } from '../auth/viewer.ts';
import { observeBatchOutcome } from '../metrics/events.ts';
import { publish, publishCommittedTogether } from '../operations/attempt.ts';
import * as batchTransitions from '../operations/batch-transitions.ts';
import { cancelNow } from '../operations/cancel.ts';
import { batchChannel } from '../operations/record.ts';
import { defineOperationType, type OperationType, type RunContext } from '../operations/registry.ts';
import type { Resources } from '../resources.ts';
import { compensate } from './compensate.ts';
import { runInlineBatch } from './inline-batch.ts';
import { InputBudget, loadChanged, loadItems, skipItem, startItems } from './items.ts';
import { type BatchOutcome, type ItemRow, type ItemStatus, itemStatus, outcomeOf } from './outcome.ts';
import { kahnLevels } from './plan.ts';

const spec = z.object({
  atomic: z.boolean(),
  continueOnError: z.boolean(),
  items: z.array(z.object({ id: z.string(), type: z.string(), dependsOn: z.array(z.string()) })),
});
export type BatchSpec = z.infer<typeof spec>;

/**
 * How often the coordinator looks at its unfinished items when no message woke it, in ms: a safety
 * net for a message lost (a process that died between its commit and its publish), not the way it
 * learns of changes. While the bus is disconnected no message can come: it looks every POLL_MS.
 */
const SAFETY_MS = 5000;
const POLL_MS = 500;
/** Shortest time between the starts of two passes, in ms: messages arriving meanwhile are handled together. */
const PASS_MS = 10;
/**
 * The same while no item that another waits for has changed and the last pass started or skipped
 * nothing: only ITEM events and progress are due, which can wait that long. A change of an item
 * others wait for (or a cancel) ends the wait; the failure of an item nothing waits for is acted on
 * (an atomic batch's cancels) up to this much later. For 1,000 independent items this is ~20 passes
 * a second instead of up to 100, each a read and an ITEM events statement competing with the items'
 * own claims.
 */
const QUIET_PASS_MS = 50;

const terminal = (row: ItemRow) =>
  row.status === 'COMPLETED' || row.status === 'FAILED' || row.status === 'CANCELLED';
/** A failure that stops an atomic batch: an item FAILED, or cancelled by someone other than the batch. */
const isFailure = (row: ItemRow) =>
  row.status === 'FAILED' || (row.status === 'CANCELLED' && row.error?.code === 'CANCELLED');

/**
 * The `batch` type: the coordinator of one batch. It starts each item when its dependencies have
 * completed, skips what can no longer run, and on failure or cancel (atomic) cancels running items
 * and undoes completed ones with their compensation, newest first. It keeps no state of its own:
 * everything is read back from the items' rows, so a coordinator that dies is simply retried.
 */
export function createBatchType(resources: () => Resources): OperationType {
  return defineOperationType({
    name: 'batch',
    description: 'The coordinator of a batch started with startBatch (internal).',
    internal: true,
    cost: 0,
    input: spec,
    policy: {
      retryLimit: 20,
      retryDelaySeconds: 1,
      retryDelayMaxSeconds: 30,
      // pg-boss caps a job's expiry at 24 h (the hard timeout + 60 s).
      softTimeoutSeconds: 23 * 3600,
      hardTimeoutSeconds: 23 * 3600,
    },
    run: (input: BatchSpec, ctx) => coordinate(resources(), input, ctx),
  });
}

async function coordinate(r: Resources, batch: BatchSpec, ctx: RunContext): Promise<BatchOutcome> {
  const deps = new Map(batch.items.map((item) => [item.id, item.dependsOn]));
  // Dependency order (request order within a level): items start, and are undone in reverse, by it.
  const order = kahnLevels(
    batch.items.map((item) => item.id),
    (id) => deps.get(id) ?? [],
  ).flat();
  const owner = await r.db.user.findUniqueOrThrow({ where: { id: ctx.ownerId } });
  const viewer: Viewer = { id: owner.id, name: owner.name, isAdmin: owner.isAdmin };
  const announced = await announcedStatuses(r, ctx.operationId);
  const budget = new InputBudget(r);
  // Every committed change of an item is published on the batch's channel with the item's id: the
  // coordinator reads back those items only, never all of them per change.
  const dirty = new Set<string>();
  /** The items as last read, by client id; and client ids by operation id. */
  const byItem = new Map<string, ItemRow>();
  const itemOf = new Map<string, string>();
  /** Operation ids of the items other items depend on. */
  const awaited = new Set<string>();
  let woken = false;
  let urgent = false;
  let wake: () => void = () => {};
  let hurry: () => void = () => {};
  const unsubscribe = await r.bus.subscribe(batchChannel(ctx.operationId), (message) => {
    const { operationId } = message as { operationId?: string };
    if (operationId) dirty.add(operationId);
    woken = true;
    if (!operationId || awaited.has(operationId)) {
      urgent = true;
      hurry();
    }
    wake();
  });
  try {
    if (batch.atomic && batch.items.every((item) => r.registry.get(item.type)?.inline)) {
      const rows = await loadItems(r.db, ctx.operationId);
      if (rows.every((row) => row.status === 'PENDING' && !row.jobId))
        await runInlineBatch(r, viewer, rows, order, budget);
    }
    // Read once in full (inputs, for references and the input budget); afterwards only changes.
    const first = await loadItems(r.db, ctx.operationId);
    const dependedOn = new Set(batch.items.flatMap((item) => item.dependsOn));
    for (const row of first) {
      byItem.set(row.batchItemId, row);
      itemOf.set(row.id, row.batchItemId);
      if (dependedOn.has(row.batchItemId)) awaited.add(row.id);
    }
    budget.begin(first);
    let cancelled = (await loadChanged(r.db, ctx.operationId, [])).cancelled;
    let changedRows = first;
    let reported = -1;
    let passStarted = 0;
    for (;;) {
      await announce(r, ctx, changedRows, announced);
      const rows = [...byItem.values()];
      const finished = rows.filter(terminal).length;
      if (finished !== reported) {
        reported = finished;
        ctx.progress({
          current: finished,
          total: rows.length,
          message: `${finished} of ${rows.length} items finished`,
        });
      }
      const failure = rows.find(isFailure);
      const stopping = cancelled || (failure !== undefined && (batch.atomic || !batch.continueOnError));
      if (finished === rows.length) return await finish(r, ctx, batch, order, cancelled, announced);

      const acted: ItemRow[] = [];
      const ready: ItemRow[] = [];
      for (const id of order) {
        const row = byItem.get(id);
        // Not started yet: waiting for its dependencies, or released (with a job) but not taken.
        if (row?.status !== 'PENDING' || row.startedAt) continue;
        if (row.jobId) {
          if (stopping) {
            const reason = cancelled
              ? 'the batch was cancelled'
              : `not started: item ${failure?.batchItemId} failed`;
            if (await skipItem(r, row, reason, cancelled ? null : (failure?.batchItemId ?? null)))
              acted.push(row);
          }
          continue;
        }
        const upstream = (deps.get(id) ?? []).map((dep) => byItem.get(dep) as ItemRow);
        const broken = upstream.find((dep) => dep.status === 'FAILED' || dep.status === 'CANCELLED');
        if (broken) {
          const verb =
            itemStatus(broken) === 'SKIPPED'
              ? 'was skipped'
              : broken.status === 'FAILED'
                ? 'failed'
                : 'was cancelled';
          const rootCause = broken.error?.rootCause ?? broken.batchItemId;
          await skipItem(r, row, `dependency ${broken.batchItemId} ${verb}`, rootCause);
          acted.push(row);
        } else if (stopping) {
          const reason = cancelled
            ? 'the batch was cancelled'
            : `not started: item ${failure?.batchItemId} failed`;
          await skipItem(r, row, reason, cancelled ? null : (failure?.batchItemId ?? null));
          acted.push(row);
        } else if (upstream.every((dep) => dep.status === 'COMPLETED')) {
          ready.push(row);
        }
      }
      if (ready.length) {
        const results = new Map(
          rows.filter((x) => x.status === 'COMPLETED').map((x) => [x.batchItemId, x.result]),
        );
        await startItems(r, viewer, ready, results, budget);
        acted.push(...ready);
      }
      if (stopping && (batch.atomic || cancelled)) {
        const reason = cancelled
          ? 'the batch was cancelled'
          : `item ${failure?.batchItemId} failed (atomic batch)`;
        for (const row of rows) {
          // Running, or waiting for its next attempt (those never started were skipped above).
          if (row.status === 'PROCESSING' || (row.status === 'PENDING' && row.startedAt)) {
            if ((await cancelNow(r, row, reason, ctx.ownerId)) !== null) acted.push(row);
          }
        }
      }
      // What this pass changed is read back at once (its messages may come later, or never).
      for (const row of acted) dirty.add(row.id);
      if (acted.length === 0) {
        await waitForChange();
        await untilUrgent(passStarted + QUIET_PASS_MS - Date.now());
      }
      const wait = Math.max(0, passStarted + PASS_MS - Date.now());
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref());
      if (ctx.signal.aborted) throw new Error(`batch coordinator stopped: ${String(ctx.signal.reason)}`);
      passStarted = Date.now();
      const ids = [...dirty];
      dirty.clear();
      woken = false;
      urgent = false;
      const read = await loadChanged(r.db, ctx.operationId, ids);
      cancelled = read.cancelled;
      changedRows = read.rows.flatMap((row) => {
        const known = byItem.get(row.batchItemId);
        if (!known || itemOf.get(row.id) !== row.batchItemId) return [];
        // The input is not read back: the one held is the template (or what was released).
        const merged = { ...row, input: known.input };
        byItem.set(row.batchItemId, merged);
        return [merged];
      });
    }
  } finally {
    unsubscribe();
  }

  /** Waits up to `ms` unless an item others wait for changed (or a cancel came) since the last pass. */
  async function untilUrgent(ms: number): Promise<void> {
    if (urgent || ms <= 0 || ctx.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      hurry = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    hurry = () => {};
  }

  /** Waits for a message, at most until the next safety look (which then reads every unfinished item). */
  async function waitForChange(): Promise<void> {
    if (woken || ctx.signal.aborted) return;
    let onAbort = () => {};
    const timedOut = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(true), r.bus.connected ? SAFETY_MS : POLL_MS);
      timer.unref();
      wake = onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
    ctx.signal.removeEventListener('abort', onAbort);
    wake = () => {};
    if (timedOut) {
      for (const [id, item] of itemOf) if (!terminal(byItem.get(item) as ItemRow)) dirty.add(id);
    }
  }
}

/** The states an item went through to reach `status`: RUNNING if it ever started, COMPLETED before ROLLED_BACK. */
function stepsTo(row: ItemRow, status: ItemStatus): ItemStatus[] {
  const steps: ItemStatus[] = [];
  if (row.startedAt && status !== 'RUNNING' && status !== 'PENDING') steps.push('RUNNING');
  if (status === 'ROLLED_BACK' && row.status === 'COMPLETED') steps.push('COMPLETED');
  steps.push(status);
  return steps;
}

/** The item statuses already recorded as batch events (after a restart of the coordinator). */
async function announcedStatuses(r: Resources, batchId: string): Promise<Map<string, ItemStatus>> {
  const rows = await r.db.$queryRawUnsafe<{ data: { item: string; status: ItemStatus } }[]>(
    `SELECT data FROM "OperationEvent" WHERE "operationId" = $1::uuid AND kind = 'ITEM' ORDER BY sequence`,
    batchId,
  );
  return new Map(rows.map((row) => [row.data.item, row.data.status]));
}

/**
 * Records each item's status change as an ITEM event of the batch (what batchUpdated carries), up
 * to 500 in one statement, published after commit (to the live lists as of the last one).
 */
async function announce(r: Resources, ctx: RunContext, rows: ItemRow[], announced: Map<string, ItemStatus>) {
  const changes = rows.flatMap((row) => {
    const status = itemStatus(row);
    const known = announced.get(row.batchItemId);
    if (known === status || (status === 'PENDING' && known === undefined)) return [];
    // An item can pass through states between two looks (started and finished): what it must have
    // gone through since the last announced state is announced too, in order.
    const steps = stepsTo(row, status);
    const from = known === undefined ? 0 : steps.indexOf(known) + 1 || steps.length - 1;
    return steps.slice(from).map((step) => ({ row, status: step }));
  });
  for (let i = 0; i < changes.length; i += 500) {
    const chunk = changes.slice(i, i + 500);
    const entries = chunk.map(({ row, status }) => ({
      message: `${row.batchItemId}: ${status}`,
      data: {
        item: row.batchItemId,
        status,
        operationId: encodeGlobalID('Operation', row.id),
        ...(row.error ? { error: row.error } : {}),
      },
    }));
    const written = await batchTransitions.notes(r.db, ctx.operationId, ctx.claimId, 'ITEM', entries);
    if (!written) throw new Error('the batch is no longer held by this coordinator');
    publishCommittedTogether(r, written);
    for (const { row, status } of chunk) announced.set(row.batchItemId, status);
  }
}

/** Every item has ended: undo what must be undone, then end the batch with its outcome. */
async function finish(
  r: Resources,
  ctx: RunContext,
  batch: BatchSpec,
  order: string[],
  cancelled: boolean,
  announced: Map<string, ItemStatus>,
): Promise<BatchOutcome> {
  // Read in full once more: the outcome carries every item's result.
  let after = await loadItems(r.db, ctx.operationId);
  let compensationErrors: string[] = [];
  if (batch.atomic && (cancelled || after.some(isFailure))) {
    compensationErrors = await compensate(r, ctx, after, order);
    after = await loadItems(r.db, ctx.operationId);
  }
  await announce(r, ctx, after, announced);
  const outcome = outcomeOf(after, batch.atomic, cancelled);
  observeBatchOutcome(r.metrics, outcome.counts);
  if (compensationErrors.length) {
    const error = { code: 'COMPENSATION_FAILED', message: compensationErrors.join('; ') };
    const applied = await batchTransitions.failHeld(r.db, ctx.operationId, ctx.claimId, error, outcome);
    if (applied) publish(r, applied);
  } else if (cancelled) {
    const applied = await batchTransitions.cancelHeld(
      r.db,
      ctx.operationId,
      ctx.claimId,
      'the batch was cancelled',
      outcome,
    );
    if (applied) publish(r, applied);
  } else if (outcome.status === 'FAILED') {
    const message = `failed items: ${outcome.failed.join(', ') || 'none (items were cancelled)'}`;
    const applied = await batchTransitions.failHeld(
      r.db,
      ctx.operationId,
      ctx.claimId,
      { code: 'BATCH_FAILED', message },
      outcome,
    );
    if (applied) publish(r, applied);
  }
  // COMPLETED or PARTIALLY_COMPLETED: the runner records the outcome as the batch's result.
  return outcome;
}
