// Prints the SDL to schema/schema.graphql (committed). With --check, exits 1 when the committed
// file differs from the schema the code builds.
import { readFileSync, writeFileSync } from 'node:fs';
import { printSchema } from 'graphql';
import { schema } from '../src/graphql/schema.ts';

const path = new URL('../schema/schema.graphql', import.meta.url);
const printed = `${printSchema(schema)}\n`;
if (process.argv.includes('--check')) {
  const committed = readFileSync(path, 'utf8');
  if (committed !== printed) {
    process.stderr.write('schema/schema.graphql is stale: run `npm run schema:print` and commit it\n');
    process.exit(1);
  }
  process.stdout.write('schema/schema.graphql is current\n');
} else {
  writeFileSync(path, printed);
  process.stdout.write(`wrote ${path.pathname}\n`);
}
