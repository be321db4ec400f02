import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { Runner } from './operations.ts';

/**
 * `token`, `doctor` and `migrate` work on the database (DATABASE_URL, or the embedded PostgreSQL),
 * not through the server: each runs its script in scripts/ as a child process with the same Node
 * and tsx, forwarding the arguments, standard streams and exit code.
 */
export function addLocalCommands(program: Command, run: Runner) {
  program
    .command('token')
    .description(
      'Create the user if needed and print a bearer token (signed with JWT_SECRET; uses DATABASE_URL)',
    )
    .argument('<name>', 'user name')
    .option('--admin', 'create the user as an admin (refused for an existing non-admin)')
    .option('--set-admin', 'make an existing user an admin')
    .option('--revoke-admin', 'make an existing user a non-admin')
    .option('--expires-in <duration>', 'lifetime: 30d, 12h, 90m or seconds', '30d')
    .action(
      (
        name: string,
        options: { admin?: boolean; setAdmin?: boolean; revokeAdmin?: boolean; expiresIn: string },
      ) => {
        const flags = [
          options.admin ? '--admin' : undefined,
          options.setAdmin ? '--set-admin' : undefined,
          options.revokeAdmin ? '--revoke-admin' : undefined,
        ].filter((flag) => flag !== undefined);
        return run(() => runScript('token.ts', [name, ...flags, '--expires-in', options.expiresIn]));
      },
    );

  program
    .command('doctor')
    .description(
      'Find drift in the database (report only; --fix repairs what is safe); exit 0 clean, 1 found, 2 not fixable, 3 could not run (uses DATABASE_URL)',
    )
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .argument('[args...]', 'passed to scripts/doctor.ts')
    .action((args: string[]) => run(() => runScript('doctor.ts', args)));

  program
    .command('migrate')
    .description('Apply the database migrations to DATABASE_URL (or the embedded PostgreSQL)')
    .action(() => run(() => runScript('migrate.ts', [])));
}

/** Runs `scripts/<name>` under tsx with the given arguments; resolves to its exit code. */
function runScript(name: string, args: string[]): Promise<number> {
  const script = fileURLToPath(new URL(`../../scripts/${name}`, import.meta.url));
  const tsx = import.meta.resolve('tsx');
  const child = spawn(process.execPath, ['--import', tsx, script, ...args], { stdio: 'inherit' });
  // Ctrl-C reaches the child too (same process group): wait for it to finish instead of dying first.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  return new Promise<number>((resolve) => {
    child.once('error', (error) => {
      process.stderr.write(`opsgraph: cannot run ${name}: ${error.message}\n`);
      resolve(3);
    });
    child.once('exit', (code, signal) => {
      process.removeListener('SIGINT', ignore);
      resolve(code ?? (signal ? 128 + 2 : 1));
    });
  });
}
