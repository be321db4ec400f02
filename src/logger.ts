/** Structured, one-line-per-entry logging to stderr. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

type Level = 'info' | 'warn' | 'error';

export function createLogger(bindings: Record<string, unknown> = {}, quiet = false): Logger {
  const write = (level: Level, message: string, fields?: Record<string, unknown>) => {
    if (quiet && level !== 'error') return;
    const entry = { time: new Date().toISOString(), level, message, ...bindings, ...fields };
    process.stderr.write(`${JSON.stringify(entry, errorFields)}\n`);
  };
  return {
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
    child: (more) => createLogger({ ...bindings, ...more }, quiet),
  };
}

function errorFields(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}
