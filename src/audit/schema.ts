import { encodeGlobalID, resolveCursorConnection } from '@pothos/plugin-relay';
import { builder } from '../graphql/builder.ts';
import { COUNT_CAP, capped, connectionNames } from '../graphql/connections.ts';
import { parseGlobalId, rowCursor, rowOfCursor } from '../graphql/ids.ts';
import { type AuditRow, auditCount, auditPage } from './query.ts';
import type { AuditAction } from './record.ts';

/** GraphQL of the audit log: auditEvents (admins: all; users: their own). */

const ACTIONS: Record<AuditAction, string> = {
  OPERATION_STARTED: 'startOperation created an operation.',
  OPERATION_CANCELLED: 'cancelOperation cancelled an operation.',
  OPERATION_RETRIED: 'retryOperation created a new operation from a failed or cancelled one.',
  OPERATION_DELETED: 'deleteOperation removed a terminal operation.',
  BATCH_STARTED: 'startBatch created a batch (its items are not listed one by one).',
  BATCH_CANCELLED: 'cancelBatch was asked for.',
  CREDITS_GRANTED: 'An admin granted credits (targetUserId, data.amount, data.reason).',
  QUOTA_EXCEEDED: 'A start was refused by a quota (bounded rows per user per minute; see count).',
  ACCESS_DENIED:
    'A request named something the actor may not see or change (bounded rows per user per minute; see count).',
  SCHEDULE_CREATED: 'createSchedule created a recurring schedule.',
  SCHEDULE_DELETED: 'deleteSchedule removed a schedule.',
};

const AuditActionEnum = builder.enumType('AuditAction', {
  values: Object.fromEntries(
    Object.entries(ACTIONS).map(([name, description]) => [name, { description }]),
  ) as {
    [K in AuditAction]: { description: string };
  },
});

const global = (type: string, id: string | null) => (id ? encodeGlobalID(type, id) : null);

const AuditEventRef = builder.objectRef<AuditRow>('AuditEvent').implement({
  description:
    'One entry of the audit log: who did what, when. Ids are global ids; what they name may be gone or not visible to you.',
  fields: (t) => ({
    id: t.exposeID('id'),
    action: t.field({ type: AuditActionEnum, resolve: (row) => row.action }),
    actorId: t.id({
      description: 'The user who acted (a User global id).',
      resolve: (row) => encodeGlobalID('User', row.actorId),
    }),
    operationId: t.id({ nullable: true, resolve: (row) => global('Operation', row.operationId) }),
    collectionId: t.id({ nullable: true, resolve: (row) => global('Collection', row.collectionId) }),
    targetUserId: t.id({
      nullable: true,
      description: 'The user acted upon (a User global id).',
      resolve: (row) => global('User', row.targetUserId),
    }),
    data: t.field({ type: 'JSON', nullable: true, resolve: (row) => row.data }),
    count: t.exposeInt('count', {
      description: 'How many refusals this row stands for (1 for everything else).',
    }),
    createdAt: t.field({ type: 'DateTime', resolve: (row) => new Date(row.createdAt) }),
    lastAt: t.field({
      type: 'DateTime',
      description: 'The last refusal this row counts.',
      resolve: (row) => new Date(row.lastAt),
    }),
  }),
});

const AuditFilterInput = builder.inputType('AuditEventFilter', {
  fields: (t) => ({
    actorId: t.id({ required: false, description: 'A User global id (users: only their own matches).' }),
    action: t.field({ type: AuditActionEnum, required: false }),
    operationId: t.id({ required: false }),
    collectionId: t.id({ required: false }),
    from: t.field({ type: 'DateTime', required: false, description: 'At or after.' }),
    to: t.field({ type: 'DateTime', required: false, description: 'Before.' }),
  }),
});

const auditConnection = connectionNames('AuditEvent', 'audit log entries');
const AuditEventConnection = builder.connectionObject(
  { type: AuditEventRef, ...auditConnection.connection },
  auditConnection.edge,
);

builder.queryField('auditEvents', (t) =>
  t.connection(
    {
      type: AuditEventRef,
      description:
        'The audit log, newest first: admins see every entry, users the entries they are the actor of.',
      authScopes: { loggedIn: true },
      args: { filter: t.arg({ type: AuditFilterInput, required: false }) },
      resolve: async (_, args, context) => {
        const f = args.filter ?? {};
        const filter = {
          actorId: f.actorId ? parseGlobalId(String(f.actorId), 'User', ['filter', 'actorId']) : null,
          action: f.action ?? null,
          operationId: f.operationId
            ? parseGlobalId(String(f.operationId), 'Operation', ['filter', 'operationId'])
            : null,
          collectionId: f.collectionId
            ? parseGlobalId(String(f.collectionId), 'Collection', ['filter', 'collectionId'])
            : null,
          from: f.from ?? null,
          to: f.to ?? null,
        };
        const { db } = context.resources;
        const connection = await resolveCursorConnection<Promise<AuditRow[]>>(
          { args, toCursor: (row: AuditRow) => rowCursor(row.id), defaultSize: 20, maxSize: 100 },
          (page) =>
            auditPage(db, context.viewer!, filter, {
              ...page,
              after: rowOfCursor(page.after),
              before: rowOfCursor(page.before),
            }),
        );
        return {
          ...connection,
          totalCount: () => capped(auditCount(db, context.viewer!, filter, COUNT_CAP)),
        };
      },
    },
    AuditEventConnection,
  ),
);
