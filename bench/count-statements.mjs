// Loaded into a benchmark's server process (NODE_OPTIONS=--import …) by bench/batch-chain.ts: counts
// every statement the process sends through `pg` (Prisma's driver adapter and pg-boss both use it)
// and the rows they return, and writes the totals to OPSGRAPH_BENCH_STATEMENTS_FILE every 50 ms.
// Plain JavaScript: it runs before tsx is registered.
import { renameSync, writeFileSync } from 'node:fs';
import pg from 'pg';

const file = process.env.OPSGRAPH_BENCH_STATEMENTS_FILE;
if (file) {
  let statements = 0;
  let rows = 0;
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
    writeFileSync(`${file}.tmp`, JSON.stringify({ statements, rows }));
    renameSync(`${file}.tmp`, file);
  }, 50).unref();
}
