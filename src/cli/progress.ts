import cliProgress from 'cli-progress';
import type { OperationStatus, ProgressView as Progress } from './documents.ts';

/** An operation's status and progress at one point of its history. */
export interface ProgressState {
  status: OperationStatus;
  progress: Progress;
}

/** Shows an operation's progress while it is watched. */
export interface ProgressView {
  /** The state as of the latest message. */
  update(state: ProgressState): void;
  /** A line printed above the bar (or as a plain line). */
  note(line: string): void;
  /** Stops redrawing; the last state stays on screen. */
  stop(): void;
}

const percent = (operation: ProgressState) =>
  operation.progress.fraction === null ? '' : `${Math.floor(operation.progress.fraction * 100)}%`;

/** The bar's values: a total that is not known yet shows as an empty bar. */
function values(operation: ProgressState) {
  const { current, total, message } = operation.progress;
  return {
    value: current,
    total: total ?? 0,
    payload: {
      status: operation.status,
      message: message ?? '',
      percent: percent(operation),
      count: total === null ? `${current}` : `${current}/${total}`,
    },
  };
}

/**
 * A progress bar redrawn in place (cli-progress) when `stream` is a terminal; otherwise (CI, pipes,
 * tests) one plain line per change: `PROCESSING 60% 3/5 step 3 of 5`.
 */
export function progressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  return stream.isTTY ? barView(stream) : lineView(stream);
}

function barView(stream: NodeJS.WriteStream): ProgressView {
  // A MultiBar with one bar: its log() prints notes above the bar without breaking it.
  const bars = new cliProgress.MultiBar(
    {
      stream,
      format: '{bar} {percent} {count} | {status} {message}',
      hideCursor: true,
      emptyOnZero: true,
      // Redraw on every tick, also after a note cleared the bar's line.
      forceRedraw: true,
      // SIGINT is handled by the watch (it stops the view, then says how to cancel).
      gracefulExit: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let bar: cliProgress.SingleBar | undefined;
  let stopped = false;
  return {
    update(operation) {
      const { value, total, payload } = values(operation);
      if (!bar) {
        bar = bars.create(total, value, payload);
        return;
      }
      if (total !== bar.getTotal()) bar.setTotal(total);
      bar.update(value, payload);
    },
    note(line) {
      if (bar && !stopped) bars.log(`${line}\n`);
      else stream.write(`${line}\n`);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bars.stop();
    },
  };
}

function lineView(stream: NodeJS.WriteStream): ProgressView {
  let lastLine = '';
  return {
    update(operation) {
      const { current, total, message } = operation.progress;
      const count = total === null ? `${current}` : `${current}/${total}`;
      const line = [operation.status, percent(operation), count, message ?? ''].filter(Boolean).join(' ');
      if (line === lastLine) return;
      lastLine = line;
      stream.write(`${line}\n`);
    },
    note(line) {
      stream.write(`${line}\n`);
    },
    stop() {},
  };
}
