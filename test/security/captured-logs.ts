import type { Logger } from '../../src/logger.ts';

export interface LogEntry {
  level: 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps every entry (children included), so a test can assert what was logged. */
export function capturingLogger(): { logger: Logger; entries: LogEntry[]; errors(): LogEntry[] } {
  const entries: LogEntry[] = [];
  const make = (bindings: Record<string, unknown>): Logger => {
    const write = (level: LogEntry['level']) => (message: string, fields?: Record<string, unknown>) => {
      entries.push({ level, message, fields: { ...bindings, ...fields } });
      if (process.env.TEST_VERBOSE) process.stderr.write(`${level} ${message}\n`);
    };
    return {
      debug: () => {},
      info: write('info'),
      warn: write('warn'),
      error: write('error'),
      child: (more) => make({ ...bindings, ...more }),
      isLevelEnabled: (level) => level !== 'debug' && level !== 'trace',
    };
  };
  return { logger: make({}), entries, errors: () => entries.filter((entry) => entry.level === 'error') };
}
