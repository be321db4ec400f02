// `npm install` / `npm ci` run this. It generates what the code imports but git does not hold:
// the Prisma client and the Pothos types (src/generated), and in a development install the typed
// documents (test/gql, client/src/gql) and the built client package (client/dist). Plain
// JavaScript, so it needs nothing but Node.
//
// A production install (`npm ci --omit=dev`) has no graphql-codegen: that step is skipped. It does
// have the Prisma CLI, which npm installs as an optional peer of @prisma/client (only
// `--omit=optional` leaves it out; then src/generated must come from a build stage).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const has = (bin) => existsSync(`node_modules/.bin/${bin}`);
const run = (script) => {
  const result = spawnSync('npm', ['run', '-s', script], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
};

if (has('prisma')) {
  run('prisma:generate');
} else if (existsSync('src/generated/prisma/client.ts')) {
  console.log('postinstall: no Prisma CLI here; keeping the generated client in src/generated');
} else {
  console.error(
    'postinstall: the Prisma client is not generated and the Prisma CLI is not installed ' +
      '(install without --omit=optional, or copy src/generated from a build stage)',
  );
  process.exit(1);
}

if (has('graphql-codegen')) run('codegen');
else console.log('postinstall: no graphql-codegen (production install): typed test documents skipped');

// The client package (client/, @opsgraph/client) is imported from client/dist: build it in a
// development install, so tests and the dashboard use it as other projects would.
if (has('graphql-codegen') && has('tsc')) run('build:client');
