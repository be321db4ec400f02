/**
 * Expected failures, shared by every domain. Each is a small class with typed fields that the
 * GraphQL layer maps to an object type in a result union (see src/graphql/errors.ts).
 */

/** One problem with a request, located by its path in the request's arguments. */
export interface Problem {
  path: (string | number)[];
  message: string;
}

export class ValidationError extends Error {
  override name = 'ValidationError';
  constructor(readonly problems: Problem[]) {
    super(problems.map((p) => `${p.path.join('.') || '(root)'}: ${p.message}`).join('; '));
  }
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
  constructor(
    readonly resource: string,
    readonly id: string,
  ) {
    super(`${resource} ${id} was not found`);
  }
}

export class ForbiddenError extends Error {
  override name = 'ForbiddenError';
  constructor(readonly action: string) {
    super(`You are not allowed to ${action}`);
  }
}
