import { type Connection, follow, request } from './client.ts';
import {
  BATCH_UPDATED,
  GET_BATCH_OUTCOME,
  GET_OPERATION,
  OPERATION_UPDATED,
  type OperationView,
} from './documents.ts';
import { CliError, EXIT } from './errors.ts';
import { printJson } from './output.ts';
import { progressView } from './progress.ts';

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

export interface WatchOptions {
  /** Print the final operation (and a batch's outcome) as JSON on stdout. */
  json?: boolean;
  /** Follow with batchUpdated and report item changes; decided from the type when omitted. */
  batch?: boolean;
}

interface ItemEventData {
  item?: string;
  status?: string;
  error?: { code?: string; message?: string };
}

interface BatchOutcomeView {
  status: string;
  counts: Record<string, number>;
  items: {
    id: string;
    status: string;
    operationId: string | null;
    error: { code: string; message: string } | null;
    reason: string | null;
    rootCause: string | null;
  }[];
}

/**
 * Follows an operation to its end with a live progress view on stderr, then prints its final
 * status on stdout. Returns the exit code: 0 only when it COMPLETED (a batch: every item).
 */
export async function watchOperation(connection: Connection, id: string, options: WatchOptions = {}) {
  const batch = options.batch ?? (await isBatch(connection, id));
  const view = progressView();
  const stopWatching = () => {
    view.stop();
    process.stderr.write(`stopped watching ${id}; it goes on (opsgraph cancel ${id} cancels it)\n`);
    process.exit(130);
  };
  process.once('SIGINT', stopWatching);
  let last: OperationView | undefined;
  try {
    const updates = follow(connection, batch ? BATCH_UPDATED : OPERATION_UPDATED, id, {
      // A batch's items may all have started, even ended, before this stream opens (items without
      // dependencies start at submission): its ITEM events are replayed so each item is reported.
      ...(batch ? { afterSequence: 0 } : {}),
      onResume: (reason, after) => view.note(`stream ended (${reason}); resuming after sequence ${after}`),
    });
    for await (const update of updates) {
      last = update.operation;
      const event = update.event;
      if (event?.kind === 'ITEM') view.note(itemLine(event.data as ItemEventData));
      else if (event?.kind === 'RETRY_SCHEDULED' && event.message) view.note(`retry: ${event.message}`);
      // A replayed event is shown as it was then: `operation` is already the latest state.
      view.update(event ? { status: event.status, progress: event.progress } : update.operation);
    }
  } finally {
    view.stop();
    process.removeListener('SIGINT', stopWatching);
  }
  // The stream completes after a terminal state; read it once more if it ended otherwise.
  if (!last || !TERMINAL.has(last.status)) last = await getOperation(connection, id);
  return batch ? reportBatch(connection, last, options) : reportOperation(last, options);
}

async function isBatch(connection: Connection, id: string): Promise<boolean> {
  return (await getOperation(connection, id)).type === 'batch';
}

async function getOperation(connection: Connection, id: string): Promise<OperationView> {
  const data = await request<{ operation: OperationView | null }>(
    connection,
    GET_OPERATION,
    { id },
    { idempotent: true },
  );
  if (!data.operation) throw new CliError(`NotFoundError: no operation ${id} that you may see`);
  return data.operation;
}

function itemLine(data: ItemEventData): string {
  const error = data.error ? ` (${data.error.code}: ${data.error.message})` : '';
  return `item ${data.item}: ${data.status}${error}`;
}

/** The final status: COMPLETED with its result on stdout; anything else on stderr, exit 1. */
function reportOperation(operation: OperationView, options: WatchOptions): number {
  if (options.json) printJson(operation);
  if (operation.status === 'COMPLETED') {
    if (!options.json) {
      const result = operation.result === null ? '' : ` ${JSON.stringify(operation.result)}`;
      process.stdout.write(`COMPLETED${result}\n`);
    }
    return EXIT.ok;
  }
  const error = operation.error ? `: ${operation.error.code}: ${operation.error.message}` : '';
  process.stderr.write(`${operation.status}${error}\n`);
  return EXIT.notCompleted;
}

/** A batch's outcome item by item; exit 0 only when the batch COMPLETED. */
async function reportBatch(connection: Connection, batch: OperationView, options: WatchOptions) {
  const data = await request<{
    operation: (OperationView & { batchOutcome: BatchOutcomeView | null }) | null;
  }>(connection, GET_BATCH_OUTCOME, { id: batch.id }, { idempotent: true });
  const outcome = data.operation?.batchOutcome;
  if (!data.operation || !outcome) throw new CliError(`NotFoundError: no batch ${batch.id} that you may see`);
  if (options.json) printJson(data.operation);
  else {
    for (const item of outcome.items) {
      const why = item.error
        ? ` ${item.error.code}: ${item.error.message}`
        : item.reason
          ? ` ${item.reason}${item.rootCause ? ` (root cause: ${item.rootCause})` : ''}`
          : '';
      process.stdout.write(`${item.id}\t${item.status}${why}\n`);
    }
    const counts = Object.entries(outcome.counts)
      .filter(([, count]) => count > 0)
      .map(([status, count]) => `${count} ${status}`)
      .join(', ');
    process.stdout.write(`${outcome.status} (${counts})\n`);
  }
  return outcome.status === 'COMPLETED' ? EXIT.ok : EXIT.notCompleted;
}
