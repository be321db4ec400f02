import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { builder } from './builder.ts';
import { truncate } from './hygiene.ts';

/** Every expected failure returned as data implements this interface. */
export const ErrorInterface = builder.interfaceRef<Error>('Error').implement({
  description: 'An expected failure, returned as data in a result union.',
  fields: (t) => ({
    message: t.string({
      description: 'Human-readable explanation.',
      // Messages may quote the request (a type name, a key): never echo a large input back.
      resolve: (error) => truncate(error.message),
    }),
  }),
});

const Problem = builder
  .objectRef<{ path: (string | number)[]; message: string }>('ValidationProblem')
  .implement({
    description: 'One problem with the request.',
    fields: (t) => ({
      path: t.stringList({
        description:
          'Where the problem is, from the argument name down (array indexes as numbers in strings); a mutation’s single `input` argument is left out.',
        resolve: (problem) => problem.path.map(String),
      }),
      message: t.exposeString('message', { description: 'What is wrong there.' }),
    }),
  });

builder.objectType(ValidationError, {
  name: 'ValidationError',
  description: 'The request was malformed; every problem is listed with its path.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ValidationError,
  fields: (t) => ({
    problems: t.field({
      type: [Problem],
      description: 'The problems, each at its path.',
      resolve: (error) => error.problems,
    }),
    omittedProblems: t.int({
      description: 'Problems found but not listed: at most OPSGRAPH_MAX_PROBLEMS (default 100) are listed.',
      resolve: (error) => error.omittedProblems,
    }),
  }),
});

builder.objectType(NotFoundError, {
  name: 'NotFoundError',
  description: 'Nothing with that id exists that the viewer may see.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof NotFoundError,
  fields: (t) => ({
    resource: t.exposeString('resource', { description: 'What was looked for, e.g. Operation, Collection.' }),
    id: t.exposeID('id', { description: 'The id as you sent it.' }),
  }),
});

builder.objectType(ForbiddenError, {
  name: 'ForbiddenError',
  description: 'The viewer may see the target but not do this to it.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ForbiddenError,
  fields: (t) => ({
    action: t.exposeString('action', { description: 'What you tried to do.' }),
  }),
});
