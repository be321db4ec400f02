import DataLoader from 'dataloader';
import { operationsWhere } from '../auth/visibility.ts';
import { type PrismaQuery, visible } from '../auth/visible.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import type { Operation } from '../generated/prisma/client.ts';
import { builder } from '../graphql/builder.ts';
import type { Context } from '../graphql/context.ts';
import { parseGlobalId } from '../graphql/ids.ts';
import { IllegalTransitionError, UnknownOperationTypeError } from '../operations/errors.ts';
import { OperationRef } from '../operations/schema.ts';
import { QuotaExceededError } from '../quotas/schema.ts';
import { retryOperation } from './retry.ts';

/** GraphQL of retries: retryOperation and the links between an operation and its retries. */

/** Most retries listed per operation. */
const MAX_RETRIES_LISTED = 100;

const retryLoaders = new WeakMap<Context, Map<string, DataLoader<string, Operation[]>>>();

/**
 * The retries of an operation that the viewer may see (src/auth/visibility.ts), loaded for every
 * operation of a page in one statement per query shape (like src/auth/visible.ts does for ids).
 */
function retriesOf(context: Context, id: string, query: PrismaQuery): Promise<Operation[]> {
  let loaders = retryLoaders.get(context);
  if (!loaders) {
    loaders = new Map();
    retryLoaders.set(context, loaders);
  }
  const key = JSON.stringify(query);
  let loader = loaders.get(key);
  if (!loader) {
    const shaped = query.select ? { select: { ...query.select, retryOfId: true } } : query;
    loader = new DataLoader<string, Operation[]>(
      async (ids) => {
        const rows = (await context.resources.db.operation.findMany({
          ...(shaped as object),
          where: { AND: [{ retryOfId: { in: [...new Set(ids)] } }, operationsWhere(context.viewer)] },
          orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        })) as Operation[];
        const byParent = new Map<string, Operation[]>();
        for (const row of rows) {
          const list = byParent.get(row.retryOfId as string) ?? [];
          if (list.length < MAX_RETRIES_LISTED) list.push(row);
          byParent.set(row.retryOfId as string, list);
        }
        return ids.map((one) => byParent.get(one) ?? []);
      },
      { cache: false },
    );
    loaders.set(key, loader);
  }
  return loader.load(id);
}

builder.prismaObjectFields('Operation', (t) => ({
  scheduledFor: t.expose('scheduledFor', {
    type: 'DateTime',
    nullable: true,
    description: 'A delayed start (runAt): the operation stays PENDING until then.',
  }),
  retryOf: t.prismaField({
    type: 'Operation',
    nullable: true,
    description: 'The FAILED or CANCELLED operation this one retries; null when you may not see it.',
    resolve: (query, operation, _, context) => visible(context).operation(operation.retryOfId, query),
  }),
  retries: t.prismaField({
    type: ['Operation'],
    description: 'Operations started by retrying this one (that you may see), oldest first; at most 100.',
    resolve: (query, operation, _, context) => retriesOf(context, operation.id, query),
  }),
}));

const RetryOperationSuccess = builder.objectRef<{ operation: Operation }>('RetryOperationSuccess').implement({
  fields: (t) => ({
    operation: t.field({
      type: OperationRef,
      description: 'The new operation (PENDING; an inline type has already finished).',
      resolve: (success, _, context) => visible(context).mustSee(success.operation),
    }),
  }),
});

const RetryOperationInput = builder.inputType('RetryOperationInput', {
  description: 'The operation retryOperation starts again, and optionally a new input for it.',
  fields: (t) => ({
    id: t.id({ required: true, description: 'The FAILED or CANCELLED operation (or batch) to retry.' }),
    input: t.field({
      type: 'JSON',
      required: false,
      description: "A replacement input, validated against the type's inputSchema. Default: the old one.",
    }),
  }),
});

builder.mutationFields((t) => ({
  retryOperation: t.field({
    type: RetryOperationSuccess,
    description:
      "Starts a new operation of the same type from a FAILED or CANCELLED one (IllegalTransitionError otherwise), with its input or `input` instead, validated like startOperation's. A batch reruns only its items that did not complete. Owner or admin only: NotFoundError when you may not see it, ForbiddenError when you may see but not change it.",
    authScopes: { loggedIn: true },
    errors: {
      types: [
        ValidationError,
        NotFoundError,
        ForbiddenError,
        IllegalTransitionError,
        UnknownOperationTypeError,
        QuotaExceededError,
      ],
      directResult: true,
      union: { name: 'RetryOperationResult' },
    },
    args: { input: t.arg({ type: RetryOperationInput, required: true }) },
    resolve: async (_, { input: { id, input } }, context) => {
      const uuid = parseGlobalId(String(id), 'Operation');
      const operation = await retryOperation(context.resources, context.viewer!, uuid, String(id), input);
      return { operation };
    },
  }),
}));
