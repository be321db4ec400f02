import type { Command } from 'commander';
import { type Connection, request } from './client.ts';
import { CANCEL_OPERATION, type OperationView, START_OPERATION } from './documents.ts';
import { EXIT, unwrap } from './errors.ts';
import { parseJsonArgument, printJson } from './output.ts';
import { integer } from './parsers.ts';
import { watchOperation } from './watch.ts';

/** `start`, `watch` and `cancel`: one operation at a time. */
export function addOperationCommands(program: Command, connect: () => Connection, run: Runner) {
  program
    .command('start')
    .description('Start an operation; prints its id (with --watch: follows it to its end)')
    .argument('<type>', 'operation type, e.g. diagnostics.sleep')
    .option('-i, --input <json>', 'its input as JSON', '{}')
    .option('-w, --watch', 'follow it with a progress bar; exit 0 only when it COMPLETED')
    .option('--idempotency-key <key>', 'a repeat with the same key returns the same operation')
    .option('--priority <0-9>', 'higher runs first among queued jobs of equal fair-share rank', integer)
    .option('--json', 'print the operation as JSON')
    .action((type: string, options: StartOptions) => run(() => start(connect(), type, options)));

  program
    .command('watch')
    .description('Follow an operation (or batch) with a live progress bar; exit 0 only when it COMPLETED')
    .argument('<id>', 'operation id')
    .option('--json', 'print the final operation as JSON')
    .action((id: string, options: { json?: boolean }) => run(() => watchOperation(connect(), id, options)));

  program
    .command('cancel')
    .description('Cancel a PENDING or PROCESSING operation')
    .argument('<id>', 'operation id')
    .option('-r, --reason <text>', 'recorded on the operation')
    .option('--json', 'print the cancelled operation as JSON')
    .action((id: string, options: { reason?: string; json?: boolean }) =>
      run(() => cancel(connect(), id, options)),
    );
}

/** Runs an action to its exit code (see main.ts). */
export type Runner = (action: () => Promise<number>) => Promise<void>;

interface StartOptions {
  input: string;
  watch?: boolean;
  idempotencyKey?: string;
  priority?: number;
  json?: boolean;
}

async function start(connection: Connection, type: string, options: StartOptions): Promise<number> {
  const input = parseJsonArgument(options.input, '--input');
  const data = await request<{ startOperation: { __typename: string } }>(connection, START_OPERATION, {
    input: { type, input, idempotencyKey: options.idempotencyKey, priority: options.priority },
  });
  const { operation } = unwrap<{ operation: OperationView }>(data.startOperation, 'StartOperationSuccess');
  if (!options.watch) {
    if (options.json) printJson(operation);
    else process.stdout.write(`${operation.id}\n`);
    return EXIT.ok;
  }
  process.stderr.write(`started ${operation.id} (${operation.type})\n`);
  return watchOperation(connection, operation.id, { json: options.json, batch: false });
}

async function cancel(connection: Connection, id: string, options: { reason?: string; json?: boolean }) {
  const data = await request<{ cancelOperation: { __typename: string } }>(connection, CANCEL_OPERATION, {
    input: { id, reason: options.reason },
  });
  const { operation } = unwrap<{ operation: OperationView }>(data.cancelOperation, 'CancelOperationSuccess');
  if (options.json) printJson(operation);
  else process.stdout.write(`${operation.id} ${operation.status}\n`);
  return EXIT.ok;
}
