import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { diagnosticsSleep } from '../src/operations/types/diagnostics-sleep.ts';
import { spawnServer, uniquePrefix } from '../test/support/app.ts';
import { gql, tokenFor } from '../test/support/client.ts';
import { StartOperation, StartTrivial } from '../test/support/documents.ts';
import { REDIS_URL } from '../test/support/services.ts';
import { BENCH_QUOTAS, createScratchDatabase, defer, readArgs, runBench } from './support.ts';

/**
 * Where the API process spends its CPU on a serial stream of `startOperation` requests (issue 13,
 * point 6: the API side of the start latency). An API process (OPSGRAPH_ROLE=api) runs under
 * `node --cpu-prof`, a worker process runs the operations; this process sends `--requests`
 * mutations one after the other (after `--warmup` untimed ones), then stops the API and reads its
 * profile: CPU ms per request (non-idle samples of the measured window / requests), and the
 * heaviest functions and packages, inclusive and self.
 *
 *   npx tsx bench/api-profile.ts [--requests 400] [--warmup 50] [--top 30] [--profile 0]
 *                                [--clients 1] [--trivial 0]
 *
 * `--profile 0` runs without the profiler: the API process's CPU time per request (from /proc,
 * not inflated by waiting for a core as wall times are) and statements per request only.
 * `--clients 16 --trivial 1` sends them as bench/throughput.ts does: 16 at a time, each asking for
 * the operation's id alone (StartTrivial), not its fields and owner (StartOperation).
 */

const args = readArgs({
  requests: { default: 400, min: 1 },
  warmup: { default: 50, min: 0 },
  top: { default: 30, min: 1 },
  profile: { default: 1, min: 0 },
  clients: { default: 1, min: 1 },
  trivial: { default: 0, min: 0 },
});

/** CPU time (user + system) a process has used, in ms, from /proc (Linux; 10 ms ticks). */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
/** Inclusive time is also listed for the frames whose file matches this (our code, the GraphQL server). */
const OURS = /\/src\/|graphql-armor|@envelop|graphql-yoga|@pothos|\/graphql\/|@graphql-tools/;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

/** A short name for a frame: function, then package (or file under src/) and line. */
function frameLabel(frame: ProfileNode['callFrame']): string {
  const url = frame.url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules)(.*)$/.exec(url);
  const where = pkg ? `${pkg[1]}/${pkg[2]?.split('/').at(-1)}` : url.replace(/^.*\/(src|bench)\//, '$1/');
  return `${frame.functionName || '(anon)'} ${where}:${frame.lineNumber + 1}`;
}

/** The package a frame belongs to, `src/<folder>` for ours, or the node internal/V8 name. */
function packageOf(frame: ProfileNode['callFrame']): string {
  const url = frame.url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(url);
  if (pkg) return pkg[1] as string;
  const ours = /\/src\/([^/]+)\//.exec(url);
  if (ours) return `src/${ours[1]}`;
  if (url.includes('/src/')) return 'src';
  if (url.startsWith('node:')) return url;
  return frame.functionName.startsWith('(') ? frame.functionName : url || '(native)';
}

function analyse(profile: Profile, from: number, to: number, requests: number, top: number) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const packages = new Map<string, number>();
  const ours = new Map<string, number>();
  let busy = 0;
  let at = profile.startTime;
  profile.samples.forEach((sample, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < from || at > to) return;
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const leaf = byId.get(sample) as ProfileNode;
    if (leaf.callFrame.functionName === '(idle)') return;
    busy += dt;
    self.set(frameLabel(leaf.callFrame), (self.get(frameLabel(leaf.callFrame)) ?? 0) + dt);
    packages.set(packageOf(leaf.callFrame), (packages.get(packageOf(leaf.callFrame)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) {
      const label = frameLabel((byId.get(id) as ProfileNode).callFrame);
      if (seen.has(label)) continue;
      seen.add(label);
      inclusive.set(label, (inclusive.get(label) ?? 0) + dt);
      if (OURS.test((byId.get(id) as ProfileNode).callFrame.url))
        ours.set(label, (ours.get(label) ?? 0) + dt);
    }
  });
  const show = (title: string, map: Map<string, number>, n: number) => {
    console.log(`\n${title} (ms per request)`);
    for (const [name, ms] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n))
      console.log(`  ${(ms / requests).toFixed(3).padStart(7)}  ${name}`);
  };
  console.log(`API CPU per request: ${(busy / requests).toFixed(2)} ms (${requests} requests)`);
  show('self time by package', packages, 20);
  show('self time by function', self, top);
  show('inclusive time by function', inclusive, top);
  show('inclusive time, our code and the GraphQL server', ours, top);
}

await runBench(async () => {
  const db = await createScratchDatabase('apiprofile', { migrate: true });
  const dir = mkdtempSync(join(tmpdir(), 'opsgraph-api-profile-'));
  const shared = {
    DATABASE_URL: db.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
    OPSGRAPH_SHUTDOWN_GRACE_MS: '2000',
    ...BENCH_QUOTAS,
  };
  const counter = fileURLToPath(new URL('./count-statements.mjs', import.meta.url));
  const statementsFile = join(dir, 'statements.json');
  const api = await spawnServer({
    ...shared,
    OPSGRAPH_ROLE: 'api',
    OPSGRAPH_BENCH_STATEMENTS_FILE: statementsFile,
    NODE_OPTIONS: `--import ${counter}${args.profile ? ` --cpu-prof --cpu-prof-dir=${dir} --cpu-prof-interval=100` : ''}`,
  });
  const statements = async () => {
    await new Promise((resolve) => setTimeout(resolve, 120)); // the counter writes every 50 ms
    return (JSON.parse(readFileSync(statementsFile, 'utf8')) as { statements: number }).statements;
  };
  const worker = await spawnServer({ ...shared, OPSGRAPH_ROLE: 'worker' });
  defer(() => worker.stop());
  const token = await tokenFor(db.url, 'bench');
  const variables = { input: { type: diagnosticsSleep.name, input: { steps: 0, stepMs: 0 } } };
  const start = async () => {
    const response = args.trivial
      ? await gql(api.url, StartTrivial, variables, token)
      : await gql(api.url, StartOperation, variables, token);
    if (response.data?.startOperation?.__typename !== 'StartOperationSuccess')
      throw new Error(`startOperation failed: ${JSON.stringify(response)}`);
  };
  /** `count` starts, `args.clients` at a time. */
  const starts = async (count: number) => {
    let next = 0;
    const client = async () => {
      while (next < count) {
        next += 1;
        await start();
      }
    };
    await Promise.all(Array.from({ length: Math.min(args.clients, count) }, client));
  };
  await starts(args.warmup);
  // The profile's clock is CLOCK_MONOTONIC in µs, as process.hrtime is (both processes).
  const statementsBefore = await statements();
  const pid = api.child.pid as number;
  const cpuBefore = cpuMsOf(pid);
  const from = Number(process.hrtime.bigint() / 1000n);
  const wall = performance.now();
  await starts(args.requests);
  const to = Number(process.hrtime.bigint() / 1000n);
  console.log(
    `${args.requests} startOperation, ${args.clients} at a time: ${((performance.now() - wall) / args.requests).toFixed(2)} ms each (wall)`,
  );
  const cpuPer = (cpuMsOf(pid) - cpuBefore) / args.requests;
  const statementsPer = ((await statements()) - statementsBefore) / args.requests;
  console.log(`API process CPU per request (/proc, user + system): ${cpuPer.toFixed(2)} ms`);
  console.log(`statements per request (API process): ${statementsPer.toFixed(2)}`);
  await api.stop();
  if (!args.profile) return;
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no CPU profile in ${dir}`);
  analyse(JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile, from, to, args.requests, args.top);
});
