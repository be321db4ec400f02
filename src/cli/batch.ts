import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { type Connection, request } from './client.ts';
import { type OperationView, START_BATCH } from './documents.ts';
import { EXIT, unwrap, usageError } from './errors.ts';
import type { Runner } from './operations.ts';
import { parseJsonArgument, printJson } from './output.ts';
import { watchOperation } from './watch.ts';

interface BatchOptions {
  watch?: boolean;
  json?: boolean;
  validateOnly?: boolean;
}

interface BatchStarted {
  replayed: boolean;
  plan: { itemCount: number; levels: { level: number; items: string[] }[] };
  batch: OperationView | null;
}

/** Largest batch file read, in bytes (the server refuses larger requests anyway). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** `batch FILE.json`: starts a batch described by a file (startBatch's input, or just its items). */
export function addBatchCommand(program: Command, connect: () => Connection, run: Runner) {
  program
    .command('batch')
    .description(
      'Start a batch from a JSON file: {"items": [{"id", "type", "input", "dependsOn"}], "atomic", ...} or just the items array',
    )
    .argument('<file>', 'JSON file ("-" reads standard input)')
    .option('-w, --watch', 'follow it, item by item; exit 0 only when every item COMPLETED')
    .option('--validate-only', 'print the execution plan; start nothing')
    .option('--json', 'print the batch (or the plan) as JSON')
    .action((file: string, options: BatchOptions) => run(() => startBatch(connect(), file, options)));
}

async function readBatchFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (error) {
    throw usageError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  if (text.length > MAX_FILE_BYTES) throw usageError(`${file} is larger than ${MAX_FILE_BYTES} bytes`);
  const parsed = parseJsonArgument(text, file);
  if (Array.isArray(parsed)) return { items: parsed };
  if (parsed && typeof parsed === 'object' && Array.isArray((parsed as { items?: unknown }).items)) {
    return parsed as Record<string, unknown>;
  }
  throw usageError(`${file} must hold an array of items or an object with "items"`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function startBatch(connection: Connection, file: string, options: BatchOptions): Promise<number> {
  const input = await readBatchFile(file);
  if (options.validateOnly) input.validateOnly = true;
  const data = await request<{ startBatch: { __typename: string } }>(connection, START_BATCH, { input });
  const started = unwrap<BatchStarted>(data.startBatch, 'StartBatchSuccess');
  if (!started.batch) {
    if (options.json) printJson(started.plan);
    else {
      for (const level of started.plan.levels)
        process.stdout.write(`level ${level.level}: ${level.items.join(' ')}\n`);
      process.stdout.write(`valid: ${started.plan.itemCount} items\n`);
    }
    return EXIT.ok;
  }
  if (!options.watch) {
    if (options.json) printJson(started.batch);
    else process.stdout.write(`${started.batch.id}\n`);
    return EXIT.ok;
  }
  process.stderr.write(`started batch ${started.batch.id} (${started.plan.itemCount} items)\n`);
  return watchOperation(connection, started.batch.id, { json: options.json, batch: true });
}
