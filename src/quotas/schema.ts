import { builder } from '../graphql/builder.ts';
import { ErrorInterface } from '../graphql/errors.ts';
import { QuotaExceededError } from '../operations/errors.ts';

/** GraphQL of quotas: the refusal that startOperation and startBatch return. */

const QuotaKindEnum = builder.enumType('QuotaKind', {
  description: 'A per-user quota on starting operations.',
  values: {
    ACTIVE_OPERATIONS: {
      description:
        "Unfinished (PENDING or PROCESSING) operations at once; a batch's items count (OPSGRAPH_QUOTA_MAX_ACTIVE).",
    },
    STARTS_PER_MINUTE: {
      description:
        "Operations started in any 60 s window; a batch's items count (OPSGRAPH_QUOTA_STARTS_PER_MINUTE).",
    },
  } as const,
});

builder.objectType(QuotaExceededError, {
  name: 'QuotaExceededError',
  description: 'A per-user quota refused the start; nothing was created.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof QuotaExceededError,
  fields: (t) => ({
    quota: t.expose('quota', { type: QuotaKindEnum, description: 'The quota that refused it.' }),
    limit: t.exposeInt('limit', { description: 'Its limit.' }),
    retryAfterSeconds: t.exposeInt('retryAfterSeconds', {
      nullable: true,
      description:
        'When trying again may succeed (for ACTIVE_OPERATIONS a hint: it depends on when your operations finish). Null when this request alone exceeds the limit.',
    }),
  }),
});

export { QuotaExceededError };
