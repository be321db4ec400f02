import { createRequire } from 'node:module';
import { Command, CommanderError, Option } from 'commander';
import { addBatchCommand } from './batch.ts';
import type { Connection } from './client.ts';
import { CliError, EXIT } from './errors.ts';
import { addListCommand } from './list.ts';
import { addLocalCommands } from './local.ts';
import { addOperationCommands, type Runner } from './operations.ts';

/** The server's GraphQL endpoint when neither --url nor OPSGRAPH_URL says otherwise. */
export const DEFAULT_URL = 'http://localhost:4000/graphql';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** The `opsgraph` program. `run` receives each action and records its exit code. */
export function buildProgram(run: Runner): Command {
  const program = new Command('opsgraph')
    .description('Start, watch, cancel and list opsgraph operations on a running server')
    .version(version)
    .exitOverride()
    .showHelpAfterError(true)
    .configureOutput({ writeErr: (text) => process.stderr.write(text) })
    .addOption(new Option('--url <url>', 'GraphQL endpoint').env('OPSGRAPH_URL').default(DEFAULT_URL))
    .addOption(
      new Option('--token <token>', 'bearer token (opsgraph token NAME makes one)').env('OPSGRAPH_TOKEN'),
    );
  const connect = (): Connection => {
    const { url, token } = program.opts<{ url: string; token?: string }>();
    if (!/^https?:\/\//.test(url))
      throw new CliError(`--url must be an http(s) URL, not "${url}"`, EXIT.usage);
    return { url, token: token || undefined };
  };
  addOperationCommands(program, connect, run);
  addListCommand(program, connect, run);
  addBatchCommand(program, connect, run);
  addLocalCommands(program, run);
  return program;
}

/**
 * Runs the CLI with `argv` (as process.argv: node, script, then arguments) and resolves to the exit
 * code: expected failures print one line on stderr, never a stack trace (OPSGRAPH_DEBUG=1 adds it
 * for unexpected ones).
 */
export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const run: Runner = async (action) => {
    exitCode = await action();
  };
  const program = buildProgram(run);
  if (argv.length <= 2) {
    program.outputHelp({ error: true });
    return EXIT.usage;
  }
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; every other parse error is a usage error.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CliError) {
      process.stderr.write(`opsgraph: ${error.message}\n`);
      return error.exitCode;
    }
    const detail = process.env.OPSGRAPH_DEBUG ? (error as Error).stack : (error as Error).message;
    process.stderr.write(`opsgraph: unexpected error: ${detail}\n`);
    return EXIT.refused;
  }
}
