// Loaded into a benchmark's server process (NODE_OPTIONS=--import …) by bench/batch-chain.ts: counts
// every statement the process sends through `pg` (Prisma's driver adapter and pg-boss both use it)
// and the rows they return, and the socket writes (system calls) to Redis (port 6379) and to
// PostgreSQL (port 5432), and writes the totals to OPSGRAPH_BENCH_STATEMENTS_FILE every 50 ms.
// Plain JavaScript: it runs before tsx is registered.
import { renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';

const file = process.env.OPSGRAPH_BENCH_STATEMENTS_FILE;
if (file) {
  let statements = 0;
  let rows = 0;
  const writes = { redis: 0, postgres: 0 };
  for (const method of ['_write', '_writev']) {
    const original = net.Socket.prototype[method];
    net.Socket.prototype[method] = function countedWrite(...args) {
      if (this.remotePort === 6379) writes.redis += 1;
      else if (this.remotePort === 5432) writes.postgres += 1;
      return original.apply(this, args);
    };
  }
  const rowsOf = (result) =>
    Array.isArray(result) ? result.reduce((sum, one) => sum + rowsOf(one), 0) : (result?.rows?.length ?? 0);
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function countedQuery(...args) {
    statements += 1;
    const last = args.length - 1;
    if (typeof args[last] === 'function') {
      const callback = args[last];
      args[last] = (error, value) => {
        if (!error) rows += rowsOf(value);
        return callback(error, value);
      };
    }
    const result = query.apply(this, args);
    if (result && typeof result.then === 'function') {
      result.then(
        (value) => {
          rows += rowsOf(value);
        },
        () => {},
      );
    }
    return result;
  };
  // Written aside and renamed, so that a reader never sees a half-written file.
  setInterval(() => {
    writeFileSync(
      `${file}.tmp`,
      JSON.stringify({ statements, rows, redisWrites: writes.redis, postgresWrites: writes.postgres }),
    );
    renameSync(`${file}.tmp`, file);
  }, 50).unref();
}
