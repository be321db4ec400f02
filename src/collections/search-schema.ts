import { builder } from '../graphql/builder.ts';
import { ErrorInterface } from '../graphql/errors.ts';
import { SearchTimeoutError, SearchTooComplexError } from './search.ts';

/** GraphQL types of the search refusals (members of the SearchResult union). */

builder.objectType(SearchTooComplexError, {
  name: 'SearchTooComplexError',
  description:
    'The query has more words or "quoted phrases" than a search may hold (OPSGRAPH_SEARCH_MAX_TERMS, OPSGRAPH_SEARCH_MAX_PHRASES).',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof SearchTooComplexError,
  fields: (t) => ({
    measure: t.exposeString('measure', { description: 'What was counted: `terms` or `phrases`.' }),
    limit: t.exposeInt('limit', { description: 'The most allowed.' }),
    measured: t.exposeInt('measured', { description: 'How many the query has.' }),
  }),
});

builder.objectType(SearchTimeoutError, {
  name: 'SearchTimeoutError',
  description: 'The search ran past its time limit (OPSGRAPH_SEARCH_TIMEOUT_MS) and was stopped.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof SearchTimeoutError,
  fields: (t) => ({
    timeoutMs: t.exposeInt('timeoutMs', { description: 'The time limit, in milliseconds.' }),
  }),
});

export { SearchTimeoutError, SearchTooComplexError };
