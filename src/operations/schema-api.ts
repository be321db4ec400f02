import { auditingRefusals, refused } from '../audit/denials.ts';
import { canSeeOperation, operationsWhere } from '../auth/visibility.ts';
import { visible } from '../auth/visible.ts';
import { cancelBatch } from '../batches/submit.ts';
import { InsufficientCreditsError } from '../credits/errors.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import { builder } from '../graphql/builder.ts';
import { COUNT_CAP } from '../graphql/connections.ts';
import { ErrorInterface } from '../graphql/errors.ts';
import { parseGlobalId } from '../graphql/ids.ts';
import { QuotaExceededError } from '../quotas/schema.ts';
import { timingFields } from '../runs/timing-schema.ts';
import { registryFor } from './audience.ts';
import { cancelOperation, checkCancelReason, readCancelTarget } from './cancel.ts';
import { IdempotencyKeyConflictError, IllegalTransitionError, UnknownOperationTypeError } from './errors.ts';
import { countOperations, type OperationListFilter, pageOperationIds, pageOperations } from './list.ts';
import type { OperationType } from './registry.ts';
import { OperationConnection, OperationRef, OperationStatusEnum, OperationUpdateRef } from './schema.ts';
import { type Started, startOperation } from './start.ts';
import { operationUpdates } from './updates.ts';

/** Queries, mutations and the subscription of the operations domain. */

builder.objectType(UnknownOperationTypeError, {
  name: 'UnknownOperationTypeError',
  description: 'No operation type of that name is offered to you; nothing was started.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof UnknownOperationTypeError,
  fields: (t) => ({
    type: t.exposeString('type', { description: 'The type name asked for.' }),
    knownTypes: t.exposeStringList('knownTypes', { description: 'The type names you may start.' }),
  }),
});

builder.objectType(IllegalTransitionError, {
  name: 'IllegalTransitionError',
  description: 'The operation is in a status that does not allow this (e.g. cancelling a COMPLETED one).',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof IllegalTransitionError,
  fields: (t) => ({
    from: t.expose('from', { type: OperationStatusEnum, description: 'The status it is in.' }),
    to: t.expose('to', {
      type: OperationStatusEnum,
      nullable: true,
      description: 'The status it was asked to reach; null when the action changes none (deleteOperation).',
    }),
  }),
});

builder.objectType(IdempotencyKeyConflictError, {
  name: 'IdempotencyKeyConflictError',
  description: 'The idempotency key was used before with a different type or input.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof IdempotencyKeyConflictError,
  fields: (t) => ({
    key: t.exposeString('key', { description: 'The idempotency key you sent.' }),
  }),
});

const OperationTypeRef = builder.objectRef<OperationType>('OperationType').implement({
  description: 'A kind of operation this service can run.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'The name startOperation takes, e.g. diagnostics.sleep.' }),
    description: t.exposeString('description', { description: 'What it does, for people.' }),
    inputSchema: t.field({
      type: 'JSON',
      description: 'JSON Schema of the input.',
      resolve: (type, _, context) => context.resources.registry.jsonSchema(type.name),
    }),
    inline: t.exposeBoolean('inline', {
      description:
        'Runs inside the startOperation request (finished when it returns) instead of on a worker.',
    }),
    cost: t.exposeInt('cost', { description: 'Credits an operation of this type costs.' }),
    outputSchema: t.field({
      type: 'JSON',
      nullable: true,
      description: 'JSON Schema of the result, when the type declares one.',
      resolve: (type, _, context) => context.resources.registry.outputJsonSchema(type.name),
    }),
    compensable: t.boolean({
      description: 'Has a compensation step that undoes a completed operation (needed in atomic batches).',
      resolve: (type) => type.compensate !== undefined,
    }),
    retryLimit: t.int({
      description: 'Retries after the first attempt.',
      resolve: (type) => type.policy.retryLimit,
    }),
    retryDelaySeconds: t.float({
      description: 'Delay before the first retry; doubled after each failure when retryBackoff.',
      resolve: (type) => type.policy.retryDelaySeconds,
    }),
    retryBackoff: t.boolean({
      description: 'Whether the retry delay doubles after each failed attempt.',
      resolve: (type) => type.policy.retryBackoff,
    }),
    retryDelayMaxSeconds: t.float({
      description: 'Longest delay between attempts, however many failed.',
      resolve: (type) => type.policy.retryDelayMaxSeconds,
    }),
    softTimeoutSeconds: t.float({
      description: "After this the handler's signal is aborted with reason timeout.",
      resolve: (type) => type.policy.softTimeoutSeconds,
    }),
    hardTimeoutSeconds: t.float({
      description: 'After this the attempt fails with HARD_TIMEOUT, whatever the handler does.',
      resolve: (type) => type.policy.hardTimeoutSeconds,
    }),
  }),
});

export const OperationFilter = builder.inputType('OperationFilter', {
  description:
    'Which operations to list (operations) or cancel (cancelOperations): every criterion given must match.',
  fields: (t) => ({
    status: t.field({
      type: [OperationStatusEnum],
      required: false,
      description: 'Any of these statuses (omitted or empty: any status).',
    }),
    type: t.string({ required: false, description: 'Exactly this operation type.' }),
    createdAfter: t.field({ type: 'DateTime', required: false, description: 'Created at or after.' }),
    createdBefore: t.field({ type: 'DateTime', required: false, description: 'Created before.' }),
    collectionId: t.id({ required: false, description: 'Only operations acting on this collection.' }),
    batchId: t.id({ required: false, description: 'Only the items of this batch (a batch operation id).' }),
  }),
});

builder.queryFields((t) => ({
  operation: t.prismaField({
    type: 'Operation',
    nullable: true,
    description: 'One operation, or null when it does not exist or is not visible to you.',
    authScopes: { loggedIn: true },
    args: { id: t.arg.id({ required: true, description: 'Its global ID.' }) },
    resolve: async (query, _, { id }, context) => {
      const uuid = parseGlobalId(String(id), 'Operation');
      const { db } = context.resources;
      const found = await db.operation.findFirst({
        ...query,
        where: { AND: [{ id: uuid }, operationsWhere(context.viewer)] },
      });
      // An operation that exists but is not the viewer's to see: the denied read is audited.
      if (!found && context.viewer && (await db.operation.count({ where: { id: uuid } }))) {
        await refused(
          context.resources,
          context.viewer,
          'ACCESS_DENIED',
          { what: 'operation', operationId: uuid },
          new NotFoundError('Operation', String(id)),
        );
      }
      return found;
    },
  }),
  operations: t.prismaConnection(
    {
      type: 'Operation',
      cursor: 'id',
      description: 'Operations you may see, newest first (ties by id). Pages hold at most 100 (default 20).',
      authScopes: { loggedIn: true },
      args: { filter: t.arg({ type: OperationFilter, description: 'Narrows the list; omitted: all.' }) },
      resolve: async (query, _, { filter }, context) => {
        const { cursor, take, skip: _skip, ...load } = query;
        const db = context.resources.db;
        if (!context.viewer) return [];
        const page = { cursorId: cursor?.id, take };
        // Nothing below the rows but their own columns: the page and its rows in one statement.
        if (Object.keys(load.include ?? {}).length === 0) {
          return pageOperations(db, context.viewer, listFilterOf(filter), page);
        }
        const ids = await pageOperationIds(db, context.viewer, listFilterOf(filter), page);
        if (ids.length === 0) return [];
        // The page's rows with what the query selects below them, in page order.
        return db.operation.findMany({
          ...load,
          where: { id: { in: ids } },
          orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        });
      },
      totalCount: (_, { filter }, context) =>
        context.viewer
          ? countOperations(context.resources.db, context.viewer, listFilterOf(filter), COUNT_CAP)
          : 0,
    },
    OperationConnection,
  ),
  operationTypes: t.field({
    type: [OperationTypeRef],
    description:
      'The operation types you may start, with their input schemas (diagnostics.* types only where this deployment offers them to you).',
    resolve: (_, __, context) => {
      const { registry, config } = context.resources;
      return registryFor(registry, config.diagnostics, context.viewer ?? null).publicTypes();
    },
  }),
}));

const CancelOperationInput = builder.inputType('CancelOperationInput', {
  description: 'What cancelOperation cancels, and why.',
  fields: (t) => ({
    id: t.id({ required: true, description: 'The operation (or batch) to cancel.' }),
    reason: t.string({ required: false, description: 'Recorded on the operation (max 1000 chars).' }),
  }),
});

type OperationFilterShape = typeof OperationFilter.$inferInput;

/** The list's filter with its ids parsed (a malformed id is a ValidationError at its path). */
function listFilterOf(filter: OperationFilterShape | null | undefined): OperationListFilter {
  return {
    ...(filter?.status?.length ? { statuses: filter.status } : {}),
    ...(filter?.type ? { type: filter.type } : {}),
    ...(filter?.batchId
      ? { batchId: parseGlobalId(String(filter.batchId), 'Operation', ['filter', 'batchId']) }
      : {}),
    ...(filter?.collectionId
      ? { collectionId: parseGlobalId(String(filter.collectionId), 'Collection', ['filter', 'collectionId']) }
      : {}),
    ...(filter?.createdAfter ? { createdAfter: filter.createdAfter } : {}),
    ...(filter?.createdBefore ? { createdBefore: filter.createdBefore } : {}),
  };
}

const StartOperationInput = builder.inputType('StartOperationInput', {
  description: 'What startOperation starts: a type, its input, and optionally a key and timing.',
  fields: (t) => ({
    type: t.string({ required: true, description: 'An operation type name (see operationTypes).' }),
    input: t.field({
      type: 'JSON',
      required: true,
      description: "Input valid against the type's inputSchema.",
    }),
    idempotencyKey: t.string({
      required: false,
      description: 'Repeat-safe key (1–255 chars, per user): a repeat returns the same operation.',
    }),
    ...timingFields(t),
  }),
});

const StartOperationSuccess = builder.objectRef<Started>('StartOperationSuccess').implement({
  description: 'The operation was started (or, with a repeated idempotency key, found).',
  fields: (t) => ({
    operation: t.field({
      type: OperationRef,
      description: 'The operation, as it is now.',
      resolve: (started, _, context) => visible(context).mustSee(started.operation),
    }),
    replayed: t.exposeBoolean('replayed', {
      description: 'True when an earlier request with this idempotency key created the operation.',
    }),
  }),
});

const CancelOperationSuccess = builder
  .objectRef<{ operation: Prisma.OperationGetPayload<object> }>('CancelOperationSuccess')
  .implement({
    description: 'The operation is cancelled (or, while its handler stops, about to be).',
    fields: (t) => ({
      operation: t.field({
        type: OperationRef,
        description: 'The operation, as it is now.',
        resolve: (success, _, context) => visible(context).mustSee(success.operation),
      }),
    }),
  });

builder.mutationFields((t) => ({
  startOperation: t.field({
    type: StartOperationSuccess,
    description:
      'Starts an operation. A job type is PENDING until a worker takes it; an inline type has finished (COMPLETED or FAILED) when this returns. NotFoundError / ForbiddenError: the collection it acts on is not visible / not yours to change.',
    authScopes: { loggedIn: true },
    errors: {
      types: [
        ValidationError,
        UnknownOperationTypeError,
        IdempotencyKeyConflictError,
        NotFoundError,
        ForbiddenError,
        QuotaExceededError,
        InsufficientCreditsError,
      ],
      directResult: true,
      union: {
        name: 'StartOperationResult',
        description: 'What startOperation answers: StartOperationSuccess, or one of its typed errors.',
      },
    },
    args: {
      input: t.arg({
        type: StartOperationInput,
        required: true,
        description: 'Everything the mutation needs (see StartOperationInput).',
      }),
    },
    resolve: (_, { input }, context) =>
      auditingRefusals(context.resources, context.viewer, { what: 'startOperation' }, () =>
        startOperation(context.resources, context.viewer!, input),
      ),
  }),
  cancelOperation: t.field({
    type: CancelOperationSuccess,
    description: 'Cancels a PENDING or PROCESSING operation; its running handler is aborted.',
    authScopes: { loggedIn: true },
    errors: {
      types: [ValidationError, NotFoundError, ForbiddenError, IllegalTransitionError],
      directResult: true,
      union: {
        name: 'CancelOperationResult',
        description: 'What cancelOperation answers: CancelOperationSuccess, or one of its typed errors.',
      },
    },
    args: {
      input: t.arg({
        type: CancelOperationInput,
        required: true,
        description: 'Everything the mutation needs (see CancelOperationInput).',
      }),
    },
    resolve: async (_, { input: { id, reason } }, context) => {
      checkCancelReason(reason);
      const uuid = parseGlobalId(String(id), 'Operation');
      return auditingRefusals(
        context.resources,
        context.viewer,
        { what: 'cancelOperation', operationId: uuid },
        async () => {
          // A batch is cancelled as a whole: its items too, and (atomic) its completed items undone.
          // Only a visible batch goes that way: an invisible id gives the same NotFoundError either way.
          // The one read of the operation serves both the dispatch and the cancel's access checks.
          const viewer = context.viewer!;
          const target = await readCancelTarget(context.resources, uuid);
          const operation =
            target?.type === 'batch' && canSeeOperation(viewer, target)
              ? await cancelBatch(context.resources, viewer, uuid, String(id), reason)
              : await cancelOperation(context.resources, viewer, uuid, String(id), reason, target);
          return { operation };
        },
      );
    },
  }),
}));

builder.subscriptionFields((t) => ({
  operationUpdated: t.field({
    type: OperationUpdateRef,
    description:
      'The current state, then every event in order with no gaps or repeats; completes after a terminal state. With afterSequence, first replays the events after it.',
    authScopes: { loggedIn: true },
    args: {
      id: t.arg.id({ required: true, description: 'The operation’s global ID.' }),
      afterSequence: t.arg.int({
        required: false,
        description:
          'Replay the stored events after this sequence first. Default: none, start from the current state.',
      }),
    },
    subscribe: (_, { id, afterSequence }, context) =>
      operationUpdates(
        context.resources,
        context.viewer!,
        parseGlobalId(String(id), 'Operation'),
        String(id),
        afterSequence,
      ),
    resolve: (update) => update,
  }),
}));
