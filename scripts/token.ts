// `npm run token -- <user> [--admin]`: creates the user if needed and prints a bearer token.
import { issueToken } from '../src/auth/viewer.ts';
import { loadConfig } from '../src/config.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrate } from '../src/db/migrate.ts';
import { createDb } from '../src/db/prisma.ts';

const args = process.argv.slice(2);
const name = args.find((arg) => !arg.startsWith('--'));
if (!name || name.length > 100) {
  process.stderr.write('usage: npm run token -- <user name> [--admin]\n');
  process.exit(2);
}
const config = loadConfig();
const embedded = config.databaseUrl
  ? undefined
  : await startEmbeddedPostgres(config.dataDir, config.embeddedPostgresPort);
const url = config.databaseUrl ?? (embedded?.url as string);
await migrate(url);
const db = createDb(url);
try {
  process.stdout.write(`${await issueToken(db, config.jwtSecret, name, args.includes('--admin'))}\n`);
} finally {
  await db.$disconnect();
  await embedded?.stop();
}
