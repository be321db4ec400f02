import type { Progress } from './registry.ts';

/** Persists one progress step; returns false when the attempt no longer holds the operation. */
export type WriteProgress = (step: {
  current: number;
  total: number | null;
  message: string | null;
}) => Promise<boolean>;

/**
 * Throttles a handler's progress reports: at most one write per `intervalMs`, always the latest
 * report, writes one at a time and in order. `flush()` writes what is still pending, so the last
 * progress before a terminal state is never dropped. After a write finds the operation no longer
 * ours (`onLost`), later reports are discarded.
 */
export class ProgressThrottle {
  private latest: Progress | undefined;
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly intervalMs: number,
    private readonly write: WriteProgress,
    private readonly onLost: () => void,
    private readonly onError: (error: unknown) => void,
  ) {}

  report(progress: Progress): void {
    if (this.closed) return;
    this.latest = checked(progress);
    if (this.timer) return;
    const wait = Math.max(0, this.lastWriteAt + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.enqueue();
    }, wait);
  }

  /** Writes any pending report, waits for writes in flight, and accepts no more reports. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.enqueue();
    this.closed = true;
    await this.chain;
  }

  /** Drops pending reports and accepts no more. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.latest = undefined;
    this.closed = true;
  }

  private enqueue(): void {
    this.chain = this.chain.then(() => this.writeLatest()).catch(this.onError);
  }

  private async writeLatest(): Promise<void> {
    const progress = this.latest;
    this.latest = undefined;
    if (!progress) return;
    this.lastWriteAt = Date.now();
    const held = await this.write({
      current: progress.current,
      total: progress.total ?? null,
      message: progress.message ?? null,
    });
    if (!held) {
      this.close();
      this.onLost();
    }
  }
}

function checked(progress: Progress): Progress {
  const { current, total, message } = progress;
  if (!Number.isFinite(current) || current < 0)
    throw new RangeError('progress.current must be a finite number ≥ 0');
  if (total !== undefined && total !== null && (!Number.isFinite(total) || total < 0)) {
    throw new RangeError('progress.total must be a finite number ≥ 0');
  }
  return {
    current,
    total,
    message: message === undefined || message === null ? null : String(message).slice(0, 1000),
  };
}
