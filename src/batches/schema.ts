import { auditingRefusals } from '../audit/denials.ts';
import { canSeeOperation, OPERATION_GUARD_SELECT } from '../auth/visibility.ts';
import { visible } from '../auth/visible.ts';
import { InsufficientCreditsError } from '../credits/errors.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import type { Operation } from '../generated/prisma/client.ts';
import { builder } from '../graphql/builder.ts';
import { parseGlobalId } from '../graphql/ids.ts';
import { IdempotencyKeyConflictError, IllegalTransitionError } from '../operations/errors.ts';
import { operationInput } from '../operations/heavy.ts';
import { OperationRef, OperationUpdateRef } from '../operations/schema.ts';
import { operationUpdates } from '../operations/updates.ts';
import { QuotaExceededError } from '../quotas/schema.ts';
import { timingFields } from '../runs/timing-schema.ts';
import { ITEM_COLUMNS, type ItemOutcome, type ItemRow, outcomeOf, redacted } from './outcome.ts';
import type { Plan } from './plan.ts';
import { cancelBatch, type StartedBatch, startBatch } from './submit.ts';

/** GraphQL of batches: startBatch, cancelBatch, batchUpdated, and the outcome of a batch operation. */

const BatchItemStatus = builder.enumType('BatchItemStatus', {
  values: ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'SKIPPED', 'CANCELLED', 'ROLLED_BACK'] as const,
});

const BatchStatus = builder.enumType('BatchStatus', {
  description: 'RUNNING until every item has ended.',
  values: ['RUNNING', 'COMPLETED', 'FAILED', 'PARTIALLY_COMPLETED', 'CANCELLED'] as const,
});

const ItemError = builder.objectRef<{ code: string; message: string }>('BatchItemError').implement({
  fields: (t) => ({ code: t.exposeString('code'), message: t.exposeString('message') }),
});

const BatchItemResult = builder.objectRef<ItemOutcome>('BatchItemResult').implement({
  description: 'What happened to one item.',
  fields: (t) => ({
    id: t.exposeString('id', { description: "The client's item id." }),
    status: t.field({ type: BatchItemStatus, resolve: (item) => item.status }),
    operationId: t.exposeID('operationId', {
      nullable: true,
      description:
        'The Operation that ran the item; null (with data, error, reason and rootCause) when you may not see that operation.',
    }),
    data: t.field({
      type: 'JSON',
      nullable: true,
      description: 'Its result (COMPLETED, ROLLED_BACK).',
      resolve: (item) => item.data,
    }),
    error: t.field({ type: ItemError, nullable: true, resolve: (item) => item.error ?? null }),
    reason: t.exposeString('reason', { nullable: true, description: 'Why it was SKIPPED or ROLLED_BACK.' }),
    rootCause: t.exposeString('rootCause', {
      nullable: true,
      description: 'The item whose failure caused the skip.',
    }),
  }),
});

/** An item row with what the visibility rule needs. */
type GuardedItemRow = ItemRow & { ownerId: string; collectionId: string | null };

interface OutcomeShape {
  status: 'RUNNING' | 'COMPLETED' | 'FAILED' | 'PARTIALLY_COMPLETED' | 'CANCELLED';
  items: ItemOutcome[];
  failed: string[];
  counts: Record<string, number>;
}

const BatchCounts = builder.objectRef<Record<string, number>>('BatchCounts').implement({
  fields: (t) => ({
    pending: t.int({ resolve: (c) => c.PENDING ?? 0 }),
    running: t.int({ resolve: (c) => c.RUNNING ?? 0 }),
    completed: t.int({ resolve: (c) => c.COMPLETED ?? 0 }),
    failed: t.int({ resolve: (c) => c.FAILED ?? 0 }),
    skipped: t.int({ resolve: (c) => c.SKIPPED ?? 0 }),
    cancelled: t.int({ resolve: (c) => c.CANCELLED ?? 0 }),
    rolledBack: t.int({ resolve: (c) => c.ROLLED_BACK ?? 0 }),
  }),
});

const BatchOutcomeRef = builder.objectRef<OutcomeShape>('BatchOutcome').implement({
  description: "A batch's result: every item's status with its data, error or reason.",
  fields: (t) => ({
    status: t.field({ type: BatchStatus, resolve: (o) => o.status }),
    items: t.field({ type: [BatchItemResult], resolve: (o) => o.items }),
    failed: t.exposeStringList('failed', { description: 'Ids of the items that FAILED.' }),
    counts: t.field({ type: BatchCounts, resolve: (o) => o.counts }),
  }),
});

builder.prismaObjectFields('Operation', (t) => ({
  batchItemId: t.exposeString('batchItemId', { nullable: true, description: 'Its id in its batch.' }),
  batch: t.prismaField({
    type: 'Operation',
    nullable: true,
    description: 'The batch this operation is an item of; null when you may not see the batch.',
    resolve: (query, operation, _, context) => visible(context).operation(operation.batchId, query),
  }),
  batchOutcome: t.field({
    type: BatchOutcomeRef,
    nullable: true,
    description:
      'For a batch operation: the status of each item, live while it runs. Items whose operation you may not see show only their id and status.',
    resolve: async (operation, _, context) => {
      if (operation.type !== 'batch') return null;
      const rows = await context.resources.db.$queryRawUnsafe<GuardedItemRow[]>(
        `SELECT ${ITEM_COLUMNS}, "ownerId", "collectionId" FROM "Operation" WHERE "batchId" = $1::uuid`,
        operation.id,
      );
      const spec = (await operationInput(context.resources, operation)) as unknown as {
        atomic: boolean;
        items: { id: string }[];
      };
      const order = new Map(spec.items.map((item, i) => [item.id, i]));
      rows.sort((a, b) => (order.get(a.batchItemId) ?? 0) - (order.get(b.batchItemId) ?? 0));
      const outcome = outcomeOf(rows, spec.atomic, operation.cancelRequestedAt !== null);
      const seen = await Promise.all(rows.map((row) => visible(context).canSee(row)));
      const hidden = new Set(rows.filter((_, i) => !seen[i]).map((row) => row.batchItemId));
      return {
        ...outcome,
        items: Object.values(outcome.items).map((item) => (hidden.has(item.id) ? redacted(item) : item)),
      };
    },
  }),
}));

const BatchItemInput = builder.inputType('BatchItemInput', {
  fields: (t) => ({
    id: t.string({ required: true, description: 'Your id for the item (1–100 letters, digits, "_", "-").' }),
    type: t.string({ required: true, description: 'An operation type.' }),
    input: t.field({
      type: 'JSON',
      required: false,
      description: 'Its input; may hold "$ref:item.path" references to results of items it depends on.',
    }),
    dependsOn: t.stringList({
      required: false,
      description: 'Items that must be COMPLETED before this one starts.',
    }),
  }),
});

const CancelBatchInput = builder.inputType('CancelBatchInput', {
  description: 'What cancelBatch cancels, and why.',
  fields: (t) => ({
    id: t.id({ required: true, description: 'The batch operation to cancel.' }),
    reason: t.string({
      required: false,
      description: 'Recorded on the batch (max 1000 chars).',
    }),
  }),
});

const StartBatchInput = builder.inputType('StartBatchInput', {
  fields: (t) => ({
    items: t.field({ type: [BatchItemInput], required: true }),
    atomic: t.boolean({ required: false, description: 'All or nothing (default true).' }),
    continueOnError: t.boolean({
      required: false,
      description: 'Non-atomic only: independent branches go on after a failure (default false).',
    }),
    validateOnly: t.boolean({
      required: false,
      description: 'Return the plan; create nothing (default false).',
    }),
    idempotencyKey: t.string({ required: false }),
    ...timingFields(t),
  }),
});

const BatchLevel = builder.objectRef<{ level: number; items: string[] }>('BatchLevel').implement({
  description: 'Items that can run in parallel once every earlier level has completed.',
  fields: (t) => ({ level: t.exposeInt('level'), items: t.exposeStringList('items') }),
});

const BatchPlanRef = builder.objectRef<Plan>('BatchPlan').implement({
  description: "The execution plan: items in topological levels (Kahn's algorithm).",
  fields: (t) => ({
    levels: t.field({
      type: [BatchLevel],
      resolve: (plan) => plan.levels.map((items, level) => ({ level, items })),
    }),
    itemCount: t.int({ resolve: (plan) => plan.items.length }),
  }),
});

const StartBatchSuccess = builder.objectRef<StartedBatch>('StartBatchSuccess').implement({
  fields: (t) => ({
    batch: t.field({
      type: OperationRef,
      nullable: true,
      description: 'The batch operation (null for validateOnly).',
      resolve: (started, _, context) =>
        started.batch ? visible(context).mustSee(started.batch as Operation) : null,
    }),
    plan: t.field({ type: BatchPlanRef, resolve: (started) => started.plan }),
    replayed: t.exposeBoolean('replayed'),
  }),
});

const CancelBatchSuccess = builder.objectRef<{ batch: Operation }>('CancelBatchSuccess').implement({
  fields: (t) => ({
    batch: t.field({
      type: OperationRef,
      resolve: (success, _, context) => visible(context).mustSee(success.batch),
    }),
  }),
});

builder.mutationFields((t) => ({
  startBatch: t.field({
    type: StartBatchSuccess,
    description: 'Starts up to 1000 dependent operations in one request, validated as a whole first.',
    authScopes: { loggedIn: true },
    errors: {
      types: [ValidationError, IdempotencyKeyConflictError, QuotaExceededError, InsufficientCreditsError],
      directResult: true,
      union: { name: 'StartBatchResult' },
    },
    args: { input: t.arg({ type: StartBatchInput, required: true }) },
    resolve: (_, { input }, context) =>
      auditingRefusals(context.resources, context.viewer, { what: 'startBatch' }, () =>
        startBatch(context.resources, context.viewer!, input),
      ),
  }),
  cancelBatch: t.field({
    type: CancelBatchSuccess,
    description: 'Cancels running items, skips pending ones and (atomic) undoes completed ones.',
    authScopes: { loggedIn: true },
    errors: {
      types: [ValidationError, NotFoundError, ForbiddenError, IllegalTransitionError],
      directResult: true,
      union: { name: 'CancelBatchResult' },
    },
    args: { input: t.arg({ type: CancelBatchInput, required: true }) },
    resolve: async (_, { input: { id, reason } }, context) => {
      if (reason && reason.length > 1000) {
        throw new ValidationError([{ path: ['reason'], message: 'must be at most 1000 characters' }]);
      }
      const uuid = parseGlobalId(String(id), 'Operation');
      return auditingRefusals(
        context.resources,
        context.viewer,
        { what: 'cancelBatch', operationId: uuid },
        async () => ({
          batch: await cancelBatch(context.resources, context.viewer!, uuid, String(id), reason),
        }),
      );
    },
  }),
}));

builder.subscriptionFields((t) => ({
  batchUpdated: t.field({
    type: OperationUpdateRef,
    description:
      "A batch's current state, then every event in order (ITEM events carry item status changes); completes after a terminal state.",
    authScopes: { loggedIn: true },
    args: { id: t.arg.id({ required: true }), afterSequence: t.arg.int({ required: false }) },
    subscribe: async (_, { id, afterSequence }, context) => {
      const uuid = parseGlobalId(String(id), 'Operation');
      const found = await context.resources.db.operation.findUnique({
        where: { id: uuid },
        include: OPERATION_GUARD_SELECT,
      });
      // Same error whether it is missing, not a batch, or not visible: nothing about it is revealed.
      if (found?.type !== 'batch' || !canSeeOperation(context.viewer, found)) {
        throw new NotFoundError('Batch', String(id));
      }
      return operationUpdates(context.resources, context.viewer!, uuid, String(id), afterSequence);
    },
    resolve: (update) => update,
  }),
}));
