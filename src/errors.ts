/**
 * Expected failures, shared by every domain. Each is a small class with typed fields that the
 * GraphQL layer maps to an object type in a result union (see src/graphql/errors.ts).
 */

/** One problem with a request, located by its path in the request's arguments. */
export interface Problem {
  path: (string | number)[];
  message: string;
}

/** Longest list of problems a ValidationError's message spells out (the problems stay whole). */
const MESSAGE_LISTING_MAX = 400;
const cut = (text: string) =>
  text.length > MESSAGE_LISTING_MAX ? `${text.slice(0, MESSAGE_LISTING_MAX)}…` : text;

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
    const listed = cut(problems.map((p) => `${p.path.join('.') || '(root)'}: ${p.message}`).join('; '));
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
