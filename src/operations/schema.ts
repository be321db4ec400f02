import { operationsWhere } from '../auth/visibility.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import { OperationStatus } from '../generated/prisma/enums.ts';
import { builder } from '../graphql/builder.ts';
import { connectionNames } from '../graphql/connections.ts';
import { eventData, operationInput, operationResult } from './heavy.ts';
import type { OperationUpdate } from './updates.ts';

/** GraphQL object types of the operations domain. Queries, mutations, subscription: schema-api.ts. */

export const OperationStatusEnum = builder.enumType(OperationStatus, {
  name: 'OperationStatus',
  description: 'PENDING → PROCESSING → COMPLETED | FAILED | CANCELLED, and PENDING → CANCELLED.',
});

interface ProgressShape {
  current: number;
  total: number | null;
  message: string | null;
}

const Progress = builder.objectRef<ProgressShape>('Progress').implement({
  description: 'How far an operation has got, as last reported by its handler.',
  fields: (t) => ({
    current: t.exposeFloat('current'),
    total: t.exposeFloat('total', { nullable: true }),
    message: t.exposeString('message', { nullable: true }),
    fraction: t.float({
      nullable: true,
      description: 'current / total, between 0 and 1; null while the total is unknown.',
      resolve: ({ current, total }) => (total ? Math.min(1, current / total) : null),
    }),
  }),
});

interface ErrorShape {
  code: string;
  message: string;
}

const OperationError = builder.objectRef<ErrorShape>('OperationError').implement({
  description: 'Why an operation failed or was cancelled.',
  fields: (t) => ({
    code: t.exposeString('code', {
      description: 'Stable machine-readable code, e.g. REQUESTED_FAILURE, CANCELLED.',
    }),
    message: t.exposeString('message'),
  }),
});

export const OperationRef = builder.prismaNode('Operation', {
  id: { field: 'id' },
  // node(id) of something missing or not visible is null, not an error.
  nullable: true,
  description: 'One unit of long-running work.',
  // node(id) finds only what the viewer may see.
  findUnique: (id, context): Prisma.OperationWhereUniqueInput => ({
    id,
    AND: [operationsWhere(context.viewer)],
  }),
  fields: (t) => ({
    type: t.exposeString('type', { description: 'The operation type, e.g. diagnostics.sleep.' }),
    status: t.expose('status', { type: OperationStatusEnum }),
    // A published row may leave a large input or result out: read when asked (heavy.ts).
    input: t.field({
      type: 'JSON',
      resolve: (op, _, context) => operationInput(context.resources, op),
    }),
    progress: t.field({
      type: Progress,
      resolve: (op) => ({
        current: op.progressCurrent,
        total: op.progressTotal,
        message: op.progressMessage,
      }),
    }),
    attempt: t.exposeInt('attempt', { description: 'Attempts started so far (0 while never started).' }),
    result: t.field({
      type: 'JSON',
      nullable: true,
      description: 'The handler result, once COMPLETED.',
      resolve: (op, _, context) => operationResult(context.resources, op),
    }),
    error: t.field({
      type: OperationError,
      nullable: true,
      resolve: (op) => (op.error as ErrorShape | null) ?? null,
    }),
    sequence: t.exposeInt('sequence', { description: 'Sequence of the latest event (1 = CREATED).' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', nullable: true }),
    completedAt: t.expose('completedAt', { type: 'DateTime', nullable: true }),
    nextAttemptAt: t.expose('nextAttemptAt', {
      type: 'DateTime',
      nullable: true,
      description: 'While PENDING after a failed attempt: when the next attempt runs.',
    }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    owner: t.relation('owner', {
      description: 'Who started it (only the name, unless it is you or you are an admin).',
    }),
    events: t.relation('events', {
      description: 'The audit trail, in sequence order (part of the operation: visible with it).',
      args: {
        afterSequence: t.arg.int({ description: 'Only events after this sequence. Default 0.' }),
        first: t.arg.int({ description: 'At most this many (1–1000). Default 100.' }),
      },
      query: ({ afterSequence, first }) => ({
        where: { sequence: { gt: afterSequence ?? 0 } },
        orderBy: { sequence: 'asc' },
        take: Math.min(Math.max(first ?? 100, 1), 1000),
      }),
    }),
  }),
});

const operationConnection = connectionNames('Operation', 'operations');
/** The one connection of operations (Query.operations, Schedule.operations). */
export const OperationConnection = builder.connectionObject(
  { type: OperationRef, ...operationConnection.connection },
  operationConnection.edge,
);

export const OperationEventRef = builder.prismaObject('OperationEvent', {
  description: 'One transition or persisted progress step; the audit trail and the replay log.',
  fields: (t) => ({
    sequence: t.exposeInt('sequence'),
    kind: t.exposeString('kind', {
      description:
        'CREATED, STARTED, PROGRESS, SOFT_TIMEOUT, RETRY_SCHEDULED, RELEASED, REQUEUED, COMPLETED, FAILED or CANCELLED.',
    }),
    status: t.expose('status', { type: OperationStatusEnum, description: 'Status after this event.' }),
    progress: t.field({
      type: Progress,
      resolve: (e) => ({ current: e.progressCurrent, total: e.progressTotal, message: e.message }),
    }),
    message: t.exposeString('message', { nullable: true }),
    data: t.field({
      type: 'JSON',
      nullable: true,
      resolve: (event, _, context) => eventData(context.resources, event),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

export const OperationUpdateRef = builder.objectRef<OperationUpdate>('OperationUpdate').implement({
  description: 'A message of operationUpdated: the current state first, then one per event.',
  fields: (t) => ({
    sequence: t.exposeInt('sequence', { description: 'The sequence this message brings you up to.' }),
    event: t.field({
      type: OperationEventRef,
      nullable: true,
      description: 'The event; null on the first message, which carries the current state.',
      resolve: (update) => update.event,
    }),
    operation: t.field({
      type: OperationRef,
      description: 'The latest state of the operation known when the message was sent.',
      resolve: (update) => update.operation,
    }),
  }),
});
