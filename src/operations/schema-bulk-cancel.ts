import { ValidationError } from '../errors.ts';
import { builder } from '../graphql/builder.ts';
import { type BulkCancelled, cancelOperations } from './bulk-cancel.ts';
import { checkCancelReason } from './cancel.ts';
import { OperationFilter } from './schema-api.ts';

/** GraphQL of bulk cancel: `cancelOperations(input: { filter, reason })`. */

const CancelOperationsInput = builder.inputType('CancelOperationsInput', {
  description: 'Which operations cancelOperations cancels, and why.',
  fields: (t) => ({
    filter: t.field({
      type: OperationFilter,
      required: true,
      description:
        'The same filter as `operations`. Only PENDING and PROCESSING operations you may cancel are cancelled; `{}` means all of them.',
    }),
    reason: t.string({ required: false, description: 'Recorded on each operation (max 1000 chars).' }),
  }),
});

const CancelOperationsSuccess = builder.objectRef<BulkCancelled>('CancelOperationsSuccess').implement({
  description: 'What cancelOperations did.',
  fields: (t) => ({
    count: t.exposeInt('count', {
      description:
        'Operations cancelled (a running batch counts once its cancel is accepted; it ends CANCELLED when its coordinator has undone its items).',
    }),
    hasMore: t.exposeBoolean('hasMore', {
      description:
        'True when the per-call bound (OPSGRAPH_BULK_CANCEL_MAX) was reached with matching operations left: call again.',
    }),
  }),
});

builder.mutationFields((t) => ({
  cancelOperations: t.field({
    type: CancelOperationsSuccess,
    description:
      'Cancels every PENDING or PROCESSING operation matching the filter that you may cancel (yours, those on your collections; admins: all), oldest first and at most OPSGRAPH_BULK_CANCEL_MAX per call, each exactly as cancelOperation would (events, refund, audit, running handler aborted). An operation you see only through a public collection is left alone.',
    authScopes: { loggedIn: true },
    errors: {
      types: [ValidationError],
      directResult: true,
      union: {
        name: 'CancelOperationsResult',
        description: 'What cancelOperations answers: CancelOperationsSuccess, or a ValidationError.',
      },
    },
    args: {
      input: t.arg({
        type: CancelOperationsInput,
        required: true,
        description: 'The filter (as for operations) and the reason recorded on each.',
      }),
    },
    resolve: (_, { input }, context) => {
      checkCancelReason(input.reason, ['input', 'reason']);
      return cancelOperations(context.resources, context.viewer!, input.filter, input.reason);
    },
  }),
}));
