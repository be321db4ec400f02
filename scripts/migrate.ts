// `npm run db:migrate`: applies prisma/migrations to DATABASE_URL (or the embedded PostgreSQL).
import { loadConfig } from '../src/config.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrate } from '../src/db/migrate.ts';

const config = loadConfig();
const embedded = config.databaseUrl
  ? undefined
  : await startEmbeddedPostgres(config.dataDir, config.embeddedPostgresPort);
try {
  const applied = await migrate(config.databaseUrl ?? (embedded?.url as string));
  process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
} finally {
  await embedded?.stop();
}
