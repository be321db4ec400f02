import type { Viewer } from '../auth/viewer.ts';
import { ValidationError } from '../errors.ts';
import { builder } from '../graphql/builder.ts';
import { parseGlobalId } from '../graphql/ids.ts';
import { CURSOR_MAX_CHARS } from './live-cursor.ts';
import type { LiveFilter } from './live-replay.ts';
import { type OperationChange, operationsUpdates } from './live-updates.ts';
import { OperationRef } from './schema.ts';
import { OperationFilter } from './schema-api.ts';

/** GraphQL of live lists: `operationsUpdated` (src/operations/live-updates.ts). */

const OperationChangeRef = builder.objectRef<OperationChange>('OperationChange').implement({
  description: 'One change of one operation.',
  fields: (t) => ({
    cursor: t.exposeString('cursor', {
      description:
        'Opaque resume cursor: subscribe again with after: cursor to continue right after this message.',
    }),
    operation: t.field({
      type: OperationRef,
      description: 'The operation as it is after this change.',
      resolve: (change) => change.operation,
    }),
  }),
});

type FilterArg = typeof OperationFilter.$inferInput | null | undefined;

/** The filter argument as the stream applies it (ids checked: BAD_USER_INPUT at their path). */
function liveFilter(viewer: Viewer, filter: FilterArg): LiveFilter {
  const collectionId = filter?.collectionId
    ? parseGlobalId(String(filter.collectionId), 'Collection', ['filter', 'collectionId'])
    : null;
  return {
    status: filter?.status ?? [],
    type: filter?.type ?? null,
    collectionId,
    batchId: filter?.batchId
      ? parseGlobalId(String(filter.batchId), 'Operation', ['filter', 'batchId'])
      : null,
    createdAfter: filter?.createdAfter ?? null,
    createdBefore: filter?.createdBefore ?? null,
    ownerId: collectionId || viewer.isAdmin ? null : viewer.id,
  };
}

builder.subscriptionFields((t) => ({
  operationsUpdated: t.field({
    type: OperationChangeRef,
    description: `Every change of each operation visible to you that matches the filter, in commit order;
resumable: pass the last message's cursor as \`after\` to get every change made since.
Without filter.collectionId it follows your own operations (an admin's: everyone's); with it, every
operation on that collection you may see. A resume delivers each operation that changed meanwhile
once, in its current state. Ends with RESYNC_REQUIRED when the cursor is older than
OPSGRAPH_LIVE_LIST_CURSOR_MAX_AGE_SECONDS or more than OPSGRAPH_LIVE_LIST_MAX_REPLAY operations
changed since: query operations again, then subscribe without after.`,
    authScopes: { loggedIn: true },
    args: {
      filter: t.arg({
        type: OperationFilter,
        required: false,
        description: 'Which changes to deliver, tested on the operation as it is after each change.',
      }),
      after: t.arg.string({
        required: false,
        description:
          'A cursor from an earlier message (or error) of this subscription: resume right after it.',
      }),
    },
    subscribe: (_, { filter, after }, context) => {
      if (after && after.length > CURSOR_MAX_CHARS) {
        throw new ValidationError([
          { path: ['after'], message: `must be at most ${CURSOR_MAX_CHARS} characters` },
        ]);
      }
      const viewer = context.viewer as Viewer;
      return operationsUpdates(
        context.resources,
        viewer,
        liveFilter(viewer, filter),
        after,
        filter?.collectionId ? String(filter.collectionId) : null,
      );
    },
    resolve: (change) => change,
  }),
}));
