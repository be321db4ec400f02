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
  /**
   * @param problems the problems listed (callers bound their number, see ProblemList).
   * @param omittedProblems how many more problems were found but not listed. Default 0.
   */
  constructor(
    readonly problems: Problem[],
    readonly omittedProblems = 0,
  ) {
    const listed = problems.map((p) => `${p.path.join('.') || '(root)'}: ${p.message}`).join('; ');
    super(omittedProblems ? `${listed}; and ${omittedProblems} more problems` : listed);
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
