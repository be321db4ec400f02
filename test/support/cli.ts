import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Exited } from './app.ts';

/** A running `opsgraph` CLI process (bin/opsgraph.mjs), its output collected as it comes. */
export interface CliProcess {
  stdoutLines: string[];
  stderrLines: string[];
  /** Resolves with the first stderr line that matches (rejects when the process exits first). */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<Exited>;
  kill(): void;
}

/**
 * Starts the CLI as a separate process (`node bin/opsgraph.mjs …`, stdio pipes: not a TTY) with
 * only PATH, HOME and `env`; it is killed after `timeoutMs`.
 */
export function spawnCli(args: string[], env: Record<string, string>, timeoutMs = 60_000): CliProcess {
  const child = spawn(process.execPath, ['bin/opsgraph.mjs', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdoutLines: string[] = [];
  const stderrLines: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => stdoutLines.push(line));
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrLines.push(line);
    for (const waiter of waiters) waiter();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  let closed = false;
  const exited = new Promise<Exited>((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      closed = true;
      for (const waiter of waiters) waiter();
      resolve({ code, stdout: stdoutLines.join('\n'), stderr: stderrLines.join('\n') });
    });
  });
  return {
    stdoutLines,
    stderrLines,
    exited,
    kill: () => child.kill('SIGKILL'),
    waitForStderr: (pattern, waitMs = 30_000) =>
      new Promise<string>((resolve, reject) => {
        const check = () => {
          const line = stderrLines.find((candidate) => pattern.test(candidate));
          if (line !== undefined) done(() => resolve(line));
          else if (closed)
            done(() => reject(new Error(`CLI exited before ${pattern}:\n${stderrLines.join('\n')}`)));
        };
        const timeout = setTimeout(
          () =>
            done(() => reject(new Error(`no ${pattern} within ${waitMs} ms:\n${stderrLines.join('\n')}`))),
          waitMs,
        );
        const done = (settle: () => void) => {
          clearTimeout(timeout);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      }),
  };
}

/** Runs the CLI to its exit. */
export const runCli = (args: string[], env: Record<string, string>, timeoutMs?: number) =>
  spawnCli(args, env, timeoutMs).exited;
