import { operationsWhere, schedulesWhere } from '../auth/visibility.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import type { Prisma, Schedule } from '../generated/prisma/client.ts';
import { builder } from '../graphql/builder.ts';
import { COUNT_CAP, capped, connectionNames } from '../graphql/connections.ts';
import { ErrorInterface } from '../graphql/errors.ts';
import { parseGlobalId } from '../graphql/ids.ts';
import { IllegalTransitionError, UnknownOperationTypeError } from '../operations/errors.ts';
import { OperationConnection } from '../operations/schema.ts';
import { deleteOperation } from './retention.ts';
import { createSchedule, deleteSchedule, ScheduleLimitError } from './schedules.ts';

/** GraphQL of schedules (createSchedule, deleteSchedule, schedules) and of deleteOperation. */

builder.objectType(ScheduleLimitError, {
  name: 'ScheduleLimitError',
  description:
    'You already have as many schedules as allowed (OPSGRAPH_SCHEDULES_PER_USER); nothing was created.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ScheduleLimitError,
  fields: (t) => ({ limit: t.exposeInt('limit') }),
});

export const ScheduleRef = builder.prismaNode('Schedule', {
  id: { field: 'id' },
  nullable: true,
  description: 'A recurring start: on every tick of its cron it starts an operation owned by its owner.',
  // node(id) finds only what the viewer may see: their own schedules (admins: all).
  findUnique: (id, context): Prisma.ScheduleWhereUniqueInput => ({
    id,
    AND: [schedulesWhere(context.viewer)],
  }),
  fields: (t) => ({
    name: t.exposeString('name'),
    cron: t.exposeString('cron', { description: 'Cron expression (5 fields, or 6 with seconds first).' }),
    timezone: t.exposeString('timezone', { description: 'IANA time zone the cron is read in.' }),
    type: t.exposeString('type', { description: 'The operation type each firing starts.' }),
    input: t.expose('input', { type: 'JSON' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    operations: t.prismaConnection(
      {
        type: 'Operation',
        cursor: 'id',
        description: 'The operations its firings started (that you may see), newest first.',
        resolve: (query, schedule, _, context) =>
          context.resources.db.operation.findMany({
            ...query,
            where: { AND: [{ scheduleId: schedule.id }, operationsWhere(context.viewer)] },
            orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
          }),
        totalCount: (schedule, _, context) =>
          capped(
            context.resources.db.operation.count({
              where: { AND: [{ scheduleId: schedule.id }, operationsWhere(context.viewer)] },
              take: COUNT_CAP,
            }),
          ),
      },
      OperationConnection,
    ),
  }),
});

const scheduleConnection = connectionNames('Schedule', 'schedules');
const ScheduleConnection = builder.connectionObject(
  { type: ScheduleRef, ...scheduleConnection.connection },
  scheduleConnection.edge,
);

builder.prismaObjectFields('Operation', (t) => ({
  schedule: t.prismaField({
    type: 'Schedule',
    nullable: true,
    description: 'The schedule whose firing started it; null when none, deleted, or not yours.',
    resolve: (query, operation, _, context) =>
      operation.scheduleId
        ? context.resources.db.schedule.findFirst({
            ...query,
            where: { AND: [{ id: operation.scheduleId }, schedulesWhere(context.viewer)] },
          })
        : null,
  }),
}));

builder.queryFields((t) => ({
  schedules: t.prismaConnection(
    {
      type: 'Schedule',
      cursor: 'id',
      description: 'Your schedules (admins: everyone’s), newest first.',
      authScopes: { loggedIn: true },
      resolve: (query, _, __, context) =>
        context.resources.db.schedule.findMany({
          ...query,
          where: schedulesWhere(context.viewer),
          orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        }),
      totalCount: (_, __, context) =>
        capped(
          context.resources.db.schedule.count({ where: schedulesWhere(context.viewer), take: COUNT_CAP }),
        ),
    },
    ScheduleConnection,
  ),
}));

const DeleteScheduleInput = builder.inputType('DeleteScheduleInput', {
  description: 'The schedule deleteSchedule removes.',
  fields: (t) => ({ id: t.id({ required: true, description: 'The schedule to delete.' }) }),
});

const DeleteOperationInput = builder.inputType('DeleteOperationInput', {
  description: 'The terminal operation deleteOperation removes.',
  fields: (t) => ({
    id: t.id({ required: true, description: 'The operation (or batch) to delete.' }),
  }),
});

const CreateScheduleInput = builder.inputType('CreateScheduleInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'Unique among your schedules (1–100 characters).' }),
    cron: t.string({
      required: true,
      description:
        'When it fires: a cron expression, at most once per OPSGRAPH_SCHEDULE_MIN_INTERVAL_SECONDS (60).',
    }),
    timezone: t.string({ required: false, description: 'IANA time zone of the cron. Default UTC.' }),
    type: t.string({
      required: true,
      description: 'The operation type each firing starts (not an inline one).',
    }),
    input: t.field({
      type: 'JSON',
      required: true,
      description: "Its input, checked now like startOperation's.",
    }),
  }),
});

const CreateScheduleSuccess = builder.objectRef<{ schedule: Schedule }>('CreateScheduleSuccess').implement({
  fields: (t) => ({ schedule: t.field({ type: ScheduleRef, resolve: (success) => success.schedule }) }),
});

const DeletedSuccess = (name: string) =>
  builder.objectRef<{ deletedId: string }>(name).implement({
    fields: (t) => ({
      deletedId: t.exposeID('deletedId', { description: 'The global id of what was deleted.' }),
    }),
  });
const DeleteScheduleSuccess = DeletedSuccess('DeleteScheduleSuccess');
const DeleteOperationSuccess = DeletedSuccess('DeleteOperationSuccess');

builder.mutationFields((t) => ({
  createSchedule: t.field({
    type: CreateScheduleSuccess,
    description:
      'Creates a recurring start. Invalid cron or time zone: ValidationError at input.cron / input.timezone; the type and input are checked like startOperation’s.',
    authScopes: { loggedIn: true },
    errors: {
      types: [ValidationError, UnknownOperationTypeError, NotFoundError, ForbiddenError, ScheduleLimitError],
      directResult: true,
      union: { name: 'CreateScheduleResult' },
    },
    args: { input: t.arg({ type: CreateScheduleInput, required: true }) },
    resolve: async (_, { input }, context) => ({
      schedule: await createSchedule(context.resources, context.viewer!, input),
    }),
  }),
  deleteSchedule: t.field({
    type: DeleteScheduleSuccess,
    description: 'Deletes one of your schedules (admins: any): it fires no more; what it started stays.',
    authScopes: { loggedIn: true },
    errors: {
      types: [ValidationError, NotFoundError],
      directResult: true,
      union: { name: 'DeleteScheduleResult' },
    },
    args: { input: t.arg({ type: DeleteScheduleInput, required: true }) },
    resolve: async (_, { input: { id } }, context) => {
      await deleteSchedule(
        context.resources,
        context.viewer!,
        parseGlobalId(String(id), 'Schedule'),
        String(id),
      );
      return { deletedId: String(id) };
    },
  }),
  deleteOperation: t.field({
    type: DeleteOperationSuccess,
    description:
      'Deletes a COMPLETED, FAILED or CANCELLED operation with its events (a batch with its items). Owner or admin only; an unfinished one is IllegalTransitionError.',
    authScopes: { loggedIn: true },
    errors: {
      types: [ValidationError, NotFoundError, ForbiddenError, IllegalTransitionError],
      directResult: true,
      union: { name: 'DeleteOperationResult' },
    },
    args: { input: t.arg({ type: DeleteOperationInput, required: true }) },
    resolve: async (_, { input: { id } }, context) => {
      await deleteOperation(
        context.resources,
        context.viewer!,
        parseGlobalId(String(id), 'Operation'),
        String(id),
      );
      return { deletedId: String(id) };
    },
  }),
}));
