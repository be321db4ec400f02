import type { ErrorView } from './documents.ts';

/**
 * Exit codes of `opsgraph`: 0 success (a watched operation COMPLETED), 1 a watched operation or
 * batch ended otherwise (FAILED, CANCELLED, PARTIALLY_COMPLETED), 2 a usage error (bad flags,
 * bad JSON, unreadable file), 3 the server refused the request or could not be reached.
 */
export const EXIT = { ok: 0, notCompleted: 1, usage: 2, refused: 3 } as const;

/** An expected failure: printed as one line on stderr (no stack trace), then the process exits. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.refused,
  ) {
    super(message);
  }
}

/** A usage error (exit code 2). */
export const usageError = (message: string) => new CliError(message, EXIT.usage);

/** One line for a mutation's failure member, e.g. `ValidationError: input.steps: Too small: …`. */
export function describeError(error: ErrorView): string {
  const known = error.knownTypes?.length ? ` (known types: ${error.knownTypes.join(', ')})` : '';
  return `${error.__typename}: ${error.message}${known}`;
}

/**
 * The success member of a mutation's result union, or a CliError describing the failure member.
 * `success` is the success type's name (e.g. StartOperationSuccess).
 */
export function unwrap<T>(
  result: ({ __typename: string } & Record<string, unknown>) | undefined,
  success: string,
): T {
  if (!result) throw new CliError('the server returned no result');
  if (result.__typename !== success) throw new CliError(describeError(result as unknown as ErrorView));
  return result as T;
}
