import { operationsWhere } from '../auth/visibility.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import { OperationStatus } from '../generated/prisma/enums.ts';
import { builder } from '../graphql/builder.ts';
import { connectionNames } from '../graphql/connections.ts';
import { eventData, operationInput, operationResult } from './heavy.ts';
import type { OperationUpdate } from './updates.ts';

/** GraphQL object types of the operations domain. Queries, mutations, subscription: schema-api.ts. */

export const OperationStatusEnum = builder.enumType('OperationStatus', {
  description: 'PENDING → PROCESSING → COMPLETED | FAILED | CANCELLED, and PENDING → CANCELLED.',
  values: {
    PENDING: {
      value: OperationStatus.PENDING,
      description: 'Waiting for a worker (or its runAt, or its next attempt).',
    },
    PROCESSING: { value: OperationStatus.PROCESSING, description: 'Its handler is running.' },
    COMPLETED: { value: OperationStatus.COMPLETED, description: 'Finished with a result (terminal).' },
    FAILED: {
      value: OperationStatus.FAILED,
      description: 'Ended with an error after its last attempt (terminal).',
    },
    CANCELLED: { value: OperationStatus.CANCELLED, description: 'Cancelled before it finished (terminal).' },
  } as const,
});

interface ProgressShape {
  current: number;
  total: number | null;
  message: string | null;
}

const Progress = builder.objectRef<ProgressShape>('Progress').implement({
  description: 'How far an operation has got, as last reported by its handler.',
  fields: (t) => ({
    current: t.exposeFloat('current', { description: 'Work done so far, in the handler’s own units.' }),
    total: t.exposeFloat('total', { nullable: true, description: 'Work in all; null while unknown.' }),
    message: t.exposeString('message', { nullable: true, description: 'What the handler is doing now.' }),
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
    message: t.exposeString('message', { description: 'Human-readable explanation.' }),
  }),
});

/** Page sizes of Operation.events (a batch of 1000 items writes a few thousand events). */
export const EVENTS_DEFAULT_PAGE = 100;
export const EVENTS_MAX_PAGE = 1000;

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
    status: t.expose('status', { type: OperationStatusEnum, description: 'Where it is in its lifecycle.' }),
    // A published row may leave a large input or result out: read when asked (heavy.ts).
    input: t.field({
      type: 'JSON',
      description: 'The input it was started with (up to 1 MB).',
      resolve: (op, _, context) => operationInput(context.resources, op),
    }),
    progress: t.field({
      type: Progress,
      description: 'How far it has got, as last reported by its handler.',
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
      description: 'Why it FAILED or was CANCELLED; null otherwise.',
      resolve: (op) => (op.error as ErrorShape | null) ?? null,
    }),
    sequence: t.exposeInt('sequence', { description: 'Sequence of the latest event (1 = CREATED).' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was started (requested).' }),
    startedAt: t.expose('startedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When a worker first began it; null while never begun.',
    }),
    completedAt: t.expose('completedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When it reached a terminal status; null before.',
    }),
    nextAttemptAt: t.expose('nextAttemptAt', {
      type: 'DateTime',
      nullable: true,
      description: 'While PENDING after a failed attempt: when the next attempt runs.',
    }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', description: 'When its row last changed.' }),
    owner: t.relation('owner', {
      description: 'Who started it (only the name, unless it is you or you are an admin).',
      // For a row no planned query loaded (the operation a start or cancel answers with), load the
      // owner alone: without this the row itself was read again to include its owner, two
      // statements after every start (issue 13, point 6). Lists load owners with their rows.
      resolve: (query, op, _args, context) =>
        context.resources.db.user.findUniqueOrThrow({ ...query, where: { id: op.ownerId } }),
    }),
    events: t.relatedConnection(
      'events',
      {
        cursor: 'id',
        description: `Its events, the audit trail, in sequence order (part of the operation: visible with it). Pages hold at most ${EVENTS_MAX_PAGE} (default ${EVENTS_DEFAULT_PAGE}).`,
        defaultSize: EVENTS_DEFAULT_PAGE,
        maxSize: EVENTS_MAX_PAGE,
        totalCount: true,
        args: {
          afterSequence: t.arg.int({
            description: 'Only events after this sequence (pages and totalCount alike). Default 0.',
          }),
        },
        query: ({ afterSequence }) => ({
          where: { sequence: { gt: afterSequence ?? 0 } },
          orderBy: { sequence: 'asc' },
        }),
      },
      OperationEventConnection,
    ),
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
    sequence: t.exposeInt('sequence', {
      description: 'Its number within the operation: 1, 2, 3… with no gaps.',
    }),
    kind: t.exposeString('kind', {
      description:
        'CREATED, STARTED, PROGRESS, SOFT_TIMEOUT, RETRY_SCHEDULED, RELEASED, REQUEUED, COMPLETED, FAILED or CANCELLED.',
    }),
    status: t.expose('status', { type: OperationStatusEnum, description: 'Status after this event.' }),
    progress: t.field({
      type: Progress,
      description: 'The progress of the operation right after this event.',
      resolve: (e) => ({ current: e.progressCurrent, total: e.progressTotal, message: e.message }),
    }),
    message: t.exposeString('message', { nullable: true, description: 'What happened, for people.' }),
    data: t.field({
      type: 'JSON',
      nullable: true,
      description: 'Details by kind (e.g. attempt and error of RETRY_SCHEDULED; item and status of ITEM).',
      resolve: (event, _, context) => eventData(context.resources, event),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the event was written.' }),
  }),
});

const eventConnection = connectionNames('OperationEvent', 'events of an operation');
/** Operation.events: pages of events by sequence. */
const OperationEventConnection = builder.connectionObject(
  { type: OperationEventRef, ...eventConnection.connection },
  eventConnection.edge,
);

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
