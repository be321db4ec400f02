import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { type App, type AppOptions, startApp } from '../../src/app.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { REDIS_URL } from './services.ts';

export const TEST_JWT_SECRET = 'opsgraph-test-secret-0123456789';

/** A unique Redis channel prefix, so parallel test files never hear each other. */
export const uniquePrefix = () => `opsgraph-test-${randomBytes(4).toString('hex')}:`;

/** Configuration for a test instance: a random port, test secret, Redis, quiet by default. */
export function testConfig(databaseUrl: string, overrides: Partial<Config> = {}): Config {
  return {
    ...loadConfig({
      DATABASE_URL: databaseUrl,
      REDIS_URL,
      PORT: '0',
      HOST: '127.0.0.1',
      JWT_SECRET: TEST_JWT_SECRET,
      OPSGRAPH_SHUTDOWN_GRACE_MS: '2000',
      // Two test files run at once, some with several processes: keep within PostgreSQL's 100
      // connections (a process also has pg-boss's pool).
      OPSGRAPH_API_POOL_SIZE: '5',
      OPSGRAPH_WORKER_POOL_SIZE: '5',
    }),
    channelPrefix: uniquePrefix(),
    ...overrides,
  };
}

/** Starts opsgraph in this process (a real HTTP/WebSocket server on a random port). */
export async function startTestApp(
  databaseUrl: string,
  overrides: Partial<Config> = {},
  options: AppOptions = {},
): Promise<App & { url: string }> {
  const app = await startApp(testConfig(databaseUrl, overrides), {
    logger: createLogger({ level: process.env.TEST_VERBOSE ? 'info' : 'error' }),
    ...options,
  });
  return { ...app, url: app.url ?? '' };
}

export interface ServerProcess {
  /** GraphQL URL (empty for a worker-only process). */
  url: string;
  child: ChildProcess;
  /** Lines the process wrote to stderr (its logs). */
  logs: string[];
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `src/main.ts` as a separate OS process and waits for its ready line (up to
 * `startTimeoutMs`, default 30 s).
 */
export async function spawnServer(
  env: Record<string, string>,
  { startTimeoutMs = 30_000 } = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      JWT_SECRET: TEST_JWT_SECRET,
      OPSGRAPH_API_POOL_SIZE: '5',
      OPSGRAPH_WORKER_POOL_SIZE: '5',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => logs.push(line));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within ${startTimeoutMs} ms:\n${logs.join('\n')}`));
    }, startTimeoutMs);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /^opsgraph ready: (\S+)/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      resolve(match[1]!.startsWith('http') ? match[1]! : '');
    });
    exited.then((code) => reject(new Error(`server exited with ${code}:\n${logs.join('\n')}`)));
  });
  return {
    url,
    child,
    logs,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its exit, collecting its output; kills it after `timeoutMs`. */
export function runToExit(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 20_000,
): Promise<Exited> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise<Exited>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`${command} ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${stdout}\n${stderr}`),
      );
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
