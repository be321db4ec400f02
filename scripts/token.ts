// `npm run token -- <user> [--admin | --set-admin | --revoke-admin] [--expires-in 30d]`: creates the
// user if needed and prints a bearer token (always with an expiry). An existing user's admin flag
// changes only with --set-admin or --revoke-admin; --admin on an existing non-admin is refused.
import { issueToken } from '../src/auth/viewer.ts';
import { loadConfig } from '../src/config.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrate } from '../src/db/migrate.ts';
import { createDb } from '../src/db/prisma.ts';

const USAGE =
  'usage: npm run token -- <user name> [--admin | --set-admin | --revoke-admin] [--expires-in <30d|12h|seconds>]\n';
const fail = (message: string): never => {
  process.stderr.write(message);
  process.exit(2);
};

const args = process.argv.slice(2);
let expiresIn = '30d';
const rest: string[] = [];
for (let index = 0; index < args.length; index++) {
  if (args[index] === '--expires-in') expiresIn = args[++index] ?? '';
  else rest.push(args[index] as string);
}
if (/^\d+$/.test(expiresIn)) expiresIn = `${expiresIn}s`;
if (!/^\d+\s*(s|m|h|d|w|y)$/.test(expiresIn)) fail(USAGE);
const flags = new Set(rest.filter((arg) => arg.startsWith('--')));
const name = rest.find((arg) => !arg.startsWith('--'));
const known = ['--admin', '--set-admin', '--revoke-admin'];
if (!name || name.length > 100 || [...flags].some((flag) => !known.includes(flag)) || flags.size > 1)
  fail(USAGE);

const config = loadConfig();
const embedded = config.databaseUrl
  ? undefined
  : await startEmbeddedPostgres(config.dataDir, config.embeddedPostgresPort);
const url = config.databaseUrl ?? (embedded?.url as string);
await migrate(url);
const db = createDb(url);
let exitCode = 0;
try {
  const existing = await db.user.findUnique({ where: { name: name as string } });
  let admin: boolean | undefined;
  if (flags.has('--set-admin')) admin = true;
  else if (flags.has('--revoke-admin')) admin = false;
  else if (flags.has('--admin')) {
    // --admin creates an admin; it never promotes an existing user silently.
    if (existing && !existing.isAdmin) {
      process.stderr.write(
        `token: user "${name}" exists and is not an admin; use --set-admin to make them one (nothing changed)\n`,
      );
      exitCode = 2;
    } else admin = true;
  }
  if (exitCode === 0) {
    const token = await issueToken(db, config.jwtSecret, name as string, admin, {
      expiresIn,
      initialCredits: config.defaultCredits,
    });
    if (existing && admin !== undefined && admin !== existing.isAdmin) {
      process.stderr.write(`token: user "${name}" is ${admin ? 'now an admin' : 'no longer an admin'}\n`);
    }
    process.stdout.write(`${token}\n`);
  }
} finally {
  await db.$disconnect();
  await embedded?.stop();
}
process.exit(exitCode);
