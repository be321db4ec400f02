import type { Command } from 'commander';
import { type Connection, request } from './client.ts';
import { LIST_OPERATIONS, type OperationStatus, type OperationView } from './documents.ts';
import { EXIT } from './errors.ts';
import type { Runner } from './operations.ts';
import { printJson } from './output.ts';
import { integer, statusList } from './parsers.ts';

interface ListOptions {
  status?: OperationStatus[];
  type?: string;
  first: number;
  after?: string;
  json?: boolean;
}

interface Page {
  operations: {
    edges: { node: OperationView }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}

/** `ls`: operations you may see, newest first, one page at a time. */
export function addListCommand(program: Command, connect: () => Connection, run: Runner) {
  program
    .command('ls')
    .description('List operations you may see, newest first')
    .option('-s, --status <list>', 'only these statuses, comma-separated (e.g. failed,cancelled)', statusList)
    .option('-t, --type <type>', 'only this operation type')
    .option('-n, --first <count>', 'at most this many (1–100)', integer, 20)
    .option('--after <cursor>', 'the page after this cursor (printed at the end of a full page)')
    .option('--json', 'print the page as JSON (operations and pageInfo)')
    .action((options: ListOptions) => run(() => list(connect(), options)));
}

async function list(connection: Connection, options: ListOptions): Promise<number> {
  const filter = { status: options.status, type: options.type };
  const data = await request<Page>(
    connection,
    LIST_OPERATIONS,
    {
      filter,
      first: options.first,
      after: options.after,
    },
    { idempotent: true },
  );
  const { edges, pageInfo } = data.operations;
  if (options.json) {
    printJson({ operations: edges.map((edge) => edge.node), pageInfo });
    return EXIT.ok;
  }
  const rows = edges.map(({ node }) => [
    node.id,
    node.type,
    node.status,
    progressText(node),
    node.createdAt,
    node.error ? `${node.error.code}: ${node.error.message}` : '',
  ]);
  process.stdout.write(table([['ID', 'TYPE', 'STATUS', 'PROGRESS', 'CREATED', 'ERROR'], ...rows]));
  if (pageInfo.hasNextPage) process.stderr.write(`more: opsgraph ls --after ${pageInfo.endCursor}\n`);
  return EXIT.ok;
}

function progressText(operation: OperationView): string {
  const { current, total, fraction } = operation.progress;
  if (total === null) return `${current}`;
  return `${current}/${total} ${Math.floor((fraction ?? 0) * 100)}%`;
}

/** Left-aligned columns separated by two spaces (the last column is not padded). */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}
