import { createRequire } from 'node:module';
import { pino } from 'pino';
import { currentRequestId } from './request-context.ts';

/** Fields of one log entry (or bindings of a child logger). */
export type LogFields = Record<string, unknown>;

/** pino's levels, lowest first; `silent` logs nothing. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A thin face over pino that keeps call sites as they read: `log.warn('message', { fields })`.
 * Each entry is one pino line (`level`, `time`, `msg`, `pid`, `hostname`, bindings, fields).
 * Errors go in `err` (pino's convention, serialized with type, message and stack); an `error`
 * field holding an `Error` is moved to `err`.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(bindings: LogFields): Logger;
  /** True when entries at `level` are written. */
  isLevelEnabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  /** Lowest level written. Default `info`. */
  level?: LogLevel;
  /** Fields on every entry. Default none. */
  bindings?: LogFields;
  /**
   * `json`: one pino JSON line per entry; `pretty`: pino-pretty's coloured lines. Default `pretty`
   * when stderr is a terminal and `NODE_ENV` is not `production`, `json` otherwise.
   */
  format?: 'json' | 'pretty';
  /** Where lines go. Default `process.stderr` (synchronous for files and pipes on Linux). */
  destination?: NodeJS.WritableStream;
}

/** Censor value for redacted fields. */
export const REDACTED = '[Redacted]';

/**
 * Fields that never reach a log line as they are: credentials are replaced by `[Redacted]`; URLs
 * keep everything but their password. Paths are pino `redact` paths (after serializers).
 */
export const REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'connectionParams.authorization',
  'connectionParams.Authorization',
  '*.connectionParams.authorization',
  '*.connectionParams.Authorization',
  'token',
  '*.token',
  'password',
  '*.password',
  'jwtSecret',
  '*.jwtSecret',
  'JWT_SECRET',
  '*.JWT_SECRET',
  'url',
  '*.url',
  'databaseUrl',
  '*.databaseUrl',
  'redisUrl',
  '*.redisUrl',
  'DATABASE_URL',
  '*.DATABASE_URL',
  'REDIS_URL',
  '*.REDIS_URL',
];

const URL_KEYS = new Set(['url', 'databaseUrl', 'redisUrl', 'DATABASE_URL', 'REDIS_URL']);

/** URLs lose only their password; everything else on a redacted path is replaced. */
function censor(value: unknown, path: string[]): unknown {
  const key = path[path.length - 1] ?? '';
  if (!URL_KEYS.has(key)) return value === undefined ? value : REDACTED;
  if (typeof value !== 'string') return value;
  try {
    const url = new URL(value);
    if (!url.password) return value;
    return `${url.protocol}//${url.username}:${REDACTED}@${url.host}${url.pathname}${url.search}${url.hash}`;
  } catch {
    return value;
  }
}

/** Creates the process's logger. Pass it down (resources, factories); never import a global one. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const format =
    options.format ?? (process.stderr.isTTY && process.env.NODE_ENV !== 'production' ? 'pretty' : 'json');
  const destination = format === 'pretty' ? prettyStream() : (options.destination ?? process.stderr);
  const base = pino(
    {
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor },
      serializers: { err: pino.stdSerializers.err, req: pino.stdSerializers.req },
      // Work started by a request carries its id (see request-context.ts).
      mixin: () => {
        const requestId = currentRequestId();
        return requestId ? { requestId } : {};
      },
    },
    destination,
  );
  return wrap(options.bindings ? base.child(options.bindings) : base);
}

/** pino-pretty, loaded only when a terminal asks for it. */
function prettyStream(): NodeJS.WritableStream {
  const require = createRequire(import.meta.url);
  const pretty = require('pino-pretty') as (options: object) => NodeJS.WritableStream;
  return pretty({ colorize: true, destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss.l' });
}

function wrap(log: pino.Logger): Logger {
  const entry =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, fields?: LogFields): void => {
      if (!log.isLevelEnabled(level)) return;
      if (fields) log[level](withErr(fields), message);
      else log[level](message);
    };
  return {
    debug: entry('debug'),
    info: entry('info'),
    warn: entry('warn'),
    error: entry('error'),
    child: (bindings) => wrap(log.child(bindings)),
    isLevelEnabled: (level) => log.isLevelEnabled(level),
  };
}

function withErr(fields: LogFields): LogFields {
  if (!(fields.error instanceof Error) || 'err' in fields) return fields;
  const { error, ...rest } = fields;
  return { ...rest, err: error };
}

/** A child of `parent` with `bindings`, created when it first logs (or is asked for a child). */
export function lazyChild(parent: Logger, bindings: () => LogFields): Logger {
  let child: Logger | undefined;
  const get = () => {
    child ??= parent.child(bindings());
    return child;
  };
  return {
    debug: (message, fields) => {
      if (parent.isLevelEnabled('debug')) get().debug(message, fields);
    },
    info: (message, fields) => {
      if (parent.isLevelEnabled('info')) get().info(message, fields);
    },
    warn: (message, fields) => get().warn(message, fields),
    error: (message, fields) => get().error(message, fields),
    child: (more) => get().child(more),
    isLevelEnabled: (level) => parent.isLevelEnabled(level),
  };
}
