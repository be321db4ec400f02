import { usageError } from './errors.ts';

/** Writes a value as pretty JSON on stdout (the `--json` output for scripts). */
export function printJson(value: unknown) {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Parses a JSON argument; text that is not JSON is a usage error naming `what`. */
export function parseJsonArgument(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw usageError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
}
