import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse } from 'graphql';
import { collectionUuid } from '../src/collections/ids.ts';
import { chunkText, contentHash, titleOf } from '../src/collections/text.ts';
import { type ServerProcess, spawnServer, uniquePrefix } from '../test/support/app.ts';
import { gql, tokenFor } from '../test/support/client.ts';
import { StartOperation } from '../test/support/documents.ts';
import { REDIS_URL } from '../test/support/services.ts';
import {
  cpuSeconds,
  createScratchDatabase,
  defer,
  fixed,
  median,
  percentile,
  printTable,
  prng,
  readArgs,
  runBench,
  type ScratchDatabase,
  sleep,
} from './support.ts';

/**
 * Indexing throughput of `collection.index` (SPEC §3) against a raw bulk load of the same files
 * with COPY, alternating raw, opsgraph, raw, opsgraph… on one scratch database.
 *
 *   npm run bench:index -- [--n 10000] [--rounds 2] [--batch 100] [--seed 1] [--folder 1000]
 *
 * The corpus: N Markdown files of 300–3000 words (log-uniform) of English-like prose — a title,
 * paragraphs, an occasional sub-heading — drawn with a seeded PRNG from a vocabulary of 4,000 words
 * (common English words first, then made-up ones) with Zipf frequencies; `--folder` files a folder.
 *
 * - opsgraph: the real server process (OPSGRAPH_SOURCES_ROOT at the corpus, OPSGRAPH_COLLECTION_BATCH_SIZE
 *   `--batch`); a fresh collection per round (collection.create), then collection.index with the
 *   folder source; time = mutation sent → the operation's completedAt. documentCount must be N.
 * - raw COPY: the same files read from disk, titled, hashed and chunked with the same code
 *   (chunkText, chunk size 1000), streamed through one `psql` as `COPY … FROM STDIN` (text format,
 *   one COPY of documents then one of chunks per folder) into scratch tables shaped like Document
 *   and Chunk — same columns, indexes (GIN on tsv included) and foreign keys, present during the
 *   load — whose tsv is a stored generated column computing what opsgraph's INSERT computes:
 *   setweight(to_tsvector('english', title), 'A') || to_tsvector('english', content). (psql
 *   because pg-copy-streams is not a dependency.) Time = first file read → psql exited.
 *
 * Each timed run starts after a CHECKPOINT on empty tables (opsgraph's are truncated after each
 * round, the raw ones dropped), so no run pays for the dirty pages of the one before.
 *
 * PostgreSQL's side of each run is sampled from /proc every 20 ms (the database on this machine):
 * DB CPU, the CPU seconds of the scratch database's client backends (the work PostgreSQL did,
 * much steadier than wall time on a loaded machine), and DB busy, the share of samples in which
 * one of them was running a statement (idle in transaction counts as idle: the database waiting
 * for the loader). The idle server's own use is sampled for 3 s before the rounds.
 */

const args = readArgs({
  n: { default: 10_000, min: 1 },
  rounds: { default: 2, min: 1 },
  batch: { default: 100, min: 1 },
  seed: { default: 1, min: 0 },
  folder: { default: 1000, min: 1 },
});

const CHUNK_SIZE = 1000;
const LANGUAGE = 'english';
/** How often the operation is polled: its time is read from completedAt, so this only spaces rounds. */
const POLL_MS = 500;
/** How long the idle server's own database use is sampled before the rounds. */
const IDLE_MS = 3000;
/** Issue 13: indexing at 0.95× a raw COPY of the same files or better. */
const TARGET = 0.95;

// ---------------------------------------------------------------- the corpus

/** The most frequent English words, most frequent first: the head of the Zipf curve. */
const COMMON =
  `the of and to a in is that for it as was with be by on not he this are or his from at which but
have an they you were their one all we can her has there been if more when will would who so no out up into do
time about two than them some could other these its then only new like first also any may over after people my
most years such where made through what many must before work way between each under well even because state
system those both while same part during world should without own long both life city against place being
great since day used data house high however last number small three public law water found general case group
local form point program service order question report power research process market value change result
information development level energy structure model analysis design network history support control method
council area family country company school government course language music study science theory design policy`
    .split(/\s+/)
    .filter((word, i, all) => word && all.indexOf(word) === i);

/** A vocabulary of `size` distinct words: the common ones, then English-looking made-up words. */
function vocabulary(random: () => number, size: number): string[] {
  const onsets = 'b c d f g h l m n p r s t v w br cr dr fr gr pr tr st sp pl cl sh ch th str'.split(' ');
  const vowels = 'a e i o u ea ou ai io ee oa'.split(' ');
  const codas = ['', '', 'n', 'r', 's', 't', 'l', 'm', 'nd', 'nt', 'st', 'ck', 'rd', 'ng'];
  const suffixes = [
    '',
    '',
    '',
    '',
    's',
    'ed',
    'ing',
    'er',
    'ly',
    'tion',
    'ment',
    'ness',
    'able',
    'al',
    'ity',
  ];
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const words = new Set(COMMON);
  while (words.size < size) {
    const syllables = 1 + Math.floor(random() * random() * 3.5);
    let word = '';
    for (let s = 0; s < syllables; s += 1) word += pick(onsets) + pick(vowels) + pick(codas);
    words.add(word + pick(suffixes));
  }
  return [...words];
}

/** Draws words with Zipf–Mandelbrot frequencies (rank r ∝ 1 / (r + 2.7)). */
function zipf(random: () => number, words: readonly string[]): () => string {
  const cumulative = new Float64Array(words.length);
  let total = 0;
  for (let r = 0; r < words.length; r += 1) {
    total += 1 / (r + 1 + 2.7);
    cumulative[r] = total;
  }
  return () => {
    const u = random() * total;
    let lo = 0;
    let hi = words.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return words[lo]!;
  };
}

const capitalize = (word: string) => word.charAt(0).toUpperCase() + word.slice(1);

/** One document: a Markdown title, then paragraphs (and a sub-heading now and then) of ~`count` words. */
function documentText(random: () => number, word: () => string, count: number): string {
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  const phrase = (length: number) => Array.from({ length }, () => capitalize(word())).join(' ');
  const parts = [`# ${phrase(int(3, 8))}`];
  let written = 0;
  let paragraphs = 0;
  while (written < count) {
    if (paragraphs > 0 && random() < 0.15) parts.push(`## ${phrase(int(2, 5))}`);
    const sentences: string[] = [];
    for (let s = int(2, 7); s > 0 && written < count; s -= 1) {
      const length = Math.min(int(5, 22), count - written);
      const words = Array.from({ length }, (_, i) => {
        const w = word();
        return i < length - 1 && random() < 0.08 ? `${w},` : w;
      });
      words[0] = capitalize(words[0]!);
      sentences.push(`${words.join(' ')}${random() < 0.06 ? '?' : '.'}`);
      written += length;
    }
    parts.push(sentences.join(' '));
    paragraphs += 1;
  }
  return `${parts.join('\n\n')}\n`;
}

interface Corpus {
  /** The sources root (OPSGRAPH_SOURCES_ROOT). */
  root: string;
  /** The folder source's path relative to the root. */
  path: string;
  bytes: number;
  words: number;
}

/** Writes the N files of the corpus (and a small warm-up folder) under a new temporary root. */
async function writeCorpus(): Promise<Corpus> {
  const root = await mkdtemp(join(tmpdir(), 'opsgraph-bench-index-'));
  defer(() => rm(root, { recursive: true, force: true }));
  const random = prng(args.seed);
  const word = zipf(random, vocabulary(random, 4000));
  const path = 'corpus';
  let bytes = 0;
  let words = 0;
  const write = async (dir: string, count: number) => {
    for (let i = 0; i < count; i += 1) {
      const folder = join(root, dir, `f${String(Math.floor(i / args.folder)).padStart(3, '0')}`);
      if (i % args.folder === 0) await mkdir(folder, { recursive: true });
      const length = Math.round(300 * 10 ** random()); // log-uniform in 300…3000
      const text = documentText(random, word, length);
      await writeFile(join(folder, `doc-${String(i).padStart(6, '0')}.md`), text);
      if (dir === path) {
        bytes += Buffer.byteLength(text);
        words += length;
      }
    }
  };
  await write(path, args.n);
  await write('warmup', 20);
  return { root, path, bytes, words };
}

// ---------------------------------------------------------------- opsgraph

type Status = 'PENDING' | 'PROCESSING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

interface OperationData {
  operation: {
    status: Status;
    attempt: number;
    createdAt: string;
    startedAt: string | null;
    completedAt: string | null;
    result: unknown;
    error: { code: string; message: string } | null;
  } | null;
}
const PollOperation = parse(`
  query BenchIndexOperation($id: ID!) {
    operation(id: $id) { status attempt createdAt startedAt completedAt result error { code message } }
  }
`) as TypedDocumentNode<OperationData, { id: string }>;

interface EventsData {
  operation: { events: { edges: { node: { sequence: number; kind: string; createdAt: string } }[] } } | null;
}
const OperationEvents = parse(`
  query BenchIndexEvents($id: ID!, $after: Int) {
    operation(id: $id) { events(afterSequence: $after, first: 1000) { edges { node { sequence kind createdAt } } } }
  }
`) as TypedDocumentNode<EventsData, { id: string; after: number }>;

interface CollectionData {
  collection: { documentCount: number; chunkCount: number; status: string } | null;
}
const GetCollection = parse(`
  query BenchIndexCollection($id: ID!) { collection(id: $id) { documentCount chunkCount status } }
`) as TypedDocumentNode<CollectionData, { id: string }>;

interface Server {
  app: ServerProcess;
  token: string;
}

async function startOperation(server: Server, type: string, input: unknown) {
  const response = await gql(server.app.url, StartOperation, { input: { type, input } }, server.token);
  const started = response.data?.startOperation;
  if (started?.__typename !== 'StartOperationSuccess') {
    throw new Error(`${type} refused: ${JSON.stringify(response)}`);
  }
  return started.operation;
}

/** Polls the operation over HTTP until it has ended. */
async function settle(server: Server, id: string) {
  for (;;) {
    const response = await gql(server.app.url, PollOperation, { id }, server.token);
    const operation = response.data?.operation;
    if (!operation) throw new Error(`operation ${id}: ${JSON.stringify(response)}`);
    if (['COMPLETED', 'FAILED', 'CANCELLED'].includes(operation.status)) return operation;
    await sleep(POLL_MS);
  }
}

/** Creates a collection and indexes `path` into it; returns the operation and how long it took. */
async function indexFolder(server: Server, name: string, path: string) {
  const created = await startOperation(server, 'collection.create', {
    name,
    language: LANGUAGE,
    chunkSize: CHUNK_SIZE,
  });
  const collectionId = (created.result as { collectionId: string }).collectionId;
  return { collectionId, ...(await indexInto(server, collectionId, path)) };
}

async function indexInto(server: Server, collectionId: string, path: string) {
  const sentAt = Date.now();
  const started = await startOperation(server, 'collection.index', {
    collectionId,
    source: { kind: 'folder', path },
  });
  const operation = await settle(server, started.id);
  if (operation.status !== 'COMPLETED') {
    throw new Error(`collection.index ended ${operation.status}: ${JSON.stringify(operation.error)}`);
  }
  return { id: started.id, sentAt, operation };
}

/** Empties opsgraph's document tables (after a round), so every round starts on empty ones. */
async function emptyOurTables(db: ScratchDatabase, collectionId: string): Promise<void> {
  await db.pool.query('TRUNCATE "Chunk", "Document"');
  await db.pool.query('DELETE FROM "Collection" WHERE id = $1::uuid', [collectionUuid(collectionId)]);
}

/** Times between persisted progress events (one per batch while a batch takes longer than the throttle). */
async function batchTimes(server: Server, id: string): Promise<number[]> {
  const times: number[] = [];
  let after = 0;
  for (;;) {
    const response = await gql(server.app.url, OperationEvents, { id, after }, server.token);
    const events = (response.data?.operation?.events.edges ?? []).map((edge) => edge.node);
    if (events.length === 0) break;
    for (const event of events) {
      if (event.kind === 'STARTED' || event.kind === 'PROGRESS') times.push(Date.parse(event.createdAt));
    }
    after = events.at(-1)!.sequence;
  }
  return times.slice(1).map((time, i) => time - times[i]!);
}

// ---------------------------------------------------------------- raw COPY

/** COPY's text format: backslash, newline, carriage return and tab escaped. */
const copyText = (value: string) =>
  value.replace(/[\\\n\r\t]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t',
  );

/** psql reading a script (and the COPY data in it) from its stdin. */
function startPsql(url: string) {
  const child: ChildProcess = spawn('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (data) => {
    stderr += data;
  });
  const stdin = child.stdin!;
  stdin.on('error', () => {}); // psql died: reported by `exited`
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`psql exited with ${code}: ${stderr.trim()}`)),
    );
  });
  exited.catch(() => {}); // handled where it is awaited (write, end)
  const stop = defer(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return {
    async write(text: string) {
      if (!stdin.write(text)) await Promise.race([once(stdin, 'drain'), exited]);
    },
    async end() {
      stdin.end();
      await exited;
      await stop();
    },
  };
}

/** The sorted text files of one folder of the corpus. */
async function listFiles(folder: string): Promise<string[]> {
  const names = (await readdir(folder)).filter((name) => name.endsWith('.md')).sort();
  return names.map((name) => join(folder, name));
}

/** Creates scratch tables shaped like Document and Chunk (indexes, keys, GIN) and a collection row. */
async function createRawTables(db: ScratchDatabase, round: number) {
  const docs = `bench_raw_document_${round}`;
  const chunks = `bench_raw_chunk_${round}`;
  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO "Collection" (name, "ownerId", language, "chunkSize")
     SELECT $1, id, $2, $3 FROM "User" WHERE name = 'bench' RETURNING id`,
    [`raw-${round}`, LANGUAGE, CHUNK_SIZE],
  );
  await db.pool.query(`
    CREATE TABLE ${docs} (LIKE "Document" INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
    ALTER TABLE ${docs} ADD FOREIGN KEY ("collectionId") REFERENCES "Collection"(id) ON DELETE CASCADE;
    CREATE TABLE ${chunks} (
      id BIGSERIAL PRIMARY KEY,
      "collectionId" UUID NOT NULL,
      "documentId" UUID NOT NULL REFERENCES ${docs}(id) ON DELETE CASCADE,
      generation INTEGER NOT NULL,
      ordinal INTEGER NOT NULL,
      content TEXT NOT NULL,
      title TEXT NOT NULL,
      tsv tsvector NOT NULL GENERATED ALWAYS AS (
        setweight(to_tsvector('${LANGUAGE}'::regconfig, title), 'A') || to_tsvector('${LANGUAGE}'::regconfig, content)
      ) STORED
    );
    CREATE INDEX ON ${chunks} ("collectionId", generation);
    CREATE INDEX ON ${chunks} ("documentId");
    CREATE INDEX ON ${chunks} USING GIN (tsv);
  `);
  return { docs, chunks, collectionId: rows[0]!.id };
}

/** Reads, titles, hashes and chunks every file as opsgraph does, and COPYs them per folder. */
async function copyCorpus(
  db: ScratchDatabase,
  corpus: Corpus,
  tables: { docs: string; chunks: string; collectionId: string },
) {
  const psql = startPsql(db.url);
  const operationId = randomUUID();
  const source = `folder:${corpus.path}`;
  const base = join(corpus.root, corpus.path);
  const folders = (await readdir(base)).sort();
  for (const folder of folders) {
    const files = await listFiles(join(base, folder));
    const docRows: string[] = [];
    const chunkRows: string[] = [];
    for (let i = 0; i < files.length; i += 100) {
      const read = await Promise.all(files.slice(i, i + 100).map((file) => readFile(file, 'utf8')));
      read.forEach((raw, j) => {
        const file = files[i + j]!;
        const externalId = `${folder}/${basename(file)}`;
        const content = raw.replaceAll('\0', '');
        const title = titleOf(raw, basename(file));
        const metadata = { path: externalId, bytes: Buffer.byteLength(raw) };
        const id = randomUUID();
        const hash = contentHash({ title, content, metadata });
        docRows.push(
          [
            id,
            tables.collectionId,
            copyText(source),
            copyText(externalId),
            copyText(title),
            copyText(content),
            hash,
            copyText(JSON.stringify(metadata)),
            operationId,
          ].join('\t'),
        );
        chunkText(content, CHUNK_SIZE).forEach((chunk, ordinal) => {
          chunkRows.push(
            [
              tables.collectionId,
              id,
              '1',
              String(ordinal),
              copyText(chunk),
              ordinal === 0 ? copyText(title) : '',
            ].join('\t'),
          );
        });
      });
    }
    await psql.write(
      `COPY ${tables.docs} (id, "collectionId", source, "externalId", title, content, "contentHash", metadata, "operationId") FROM STDIN;\n`,
    );
    await psql.write(`${docRows.join('\n')}\n\\.\n`);
    await psql.write(
      `COPY ${tables.chunks} ("collectionId", "documentId", generation, ordinal, content, title) FROM STDIN;\n`,
    );
    await psql.write(`${chunkRows.join('\n')}\n\\.\n`);
  }
  await psql.end();
}

// ---------------------------------------------------------------- PostgreSQL's side

/** What the backends of the scratch database did during one run (sampled from /proc). */
interface DbUse {
  /** CPU seconds the database's client backends used (the work PostgreSQL did for the load). */
  cpu: number;
  /** Share of samples in which at least one backend was running a statement (not idle). */
  busy: number;
  samples: number;
}

/**
 * Samples the client backends of database `name` every `everyMs` while `run` runs, from /proc
 * (PostgreSQL on this machine; their process titles say the database and what they are doing, e.g.
 * `postgres: 15/main: postgres <db> 127.0.0.1(5432) INSERT`). A backend that appears midway counts
 * from its start (psql's), one that exits with its last sample. NaN where /proc shows none.
 */
async function watchBackends<T>(name: string, run: () => Promise<T>, everyMs = 20) {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  let samples = 0;
  let busySamples = 0;
  let known: number[] = [];
  let scannedAt = 0;
  /** Backends there before the run count from their first sample, later ones from 0 (their start). */
  let before: Set<number> | undefined;
  const scan = async () => {
    const pids = (await readdir('/proc').catch(() => [])).filter((entry) => /^\d+$/.test(entry));
    const found: number[] = [];
    await Promise.all(
      pids.map(async (entry) => {
        const title = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
        if (title.startsWith('postgres: ') && title.split(' ').includes(name)) found.push(Number(entry));
      }),
    );
    known = found;
    scannedAt = performance.now();
  };
  const sample = async () => {
    if (performance.now() - scannedAt > 250) await scan();
    let busy = false;
    await Promise.all(
      known.map(async (pid) => {
        try {
          const [title, stat] = await Promise.all([
            readFile(`/proc/${pid}/cmdline`, 'utf8'),
            readFile(`/proc/${pid}/stat`, 'utf8'),
          ]);
          const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          const ticks = Number(fields[11]) + Number(fields[12]);
          if (!first.has(pid)) first.set(pid, before?.has(pid) === false ? 0 : ticks);
          last.set(pid, ticks);
          const state = title.replace(/\0/g, ' ').trim().split(') ').at(-1) ?? '';
          if (!state.startsWith('idle')) busy = true;
        } catch {
          // exited: its last sample stands
        }
      }),
    );
    samples += 1;
    if (busy) busySamples += 1;
  };
  await scan();
  await sample();
  before = new Set(known);
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await sleep(everyMs);
      await sample();
    }
  })();
  try {
    return { result: await run(), use: await finish() };
  } finally {
    stopped = true;
    await loop;
  }
  async function finish(): Promise<DbUse> {
    stopped = true;
    await loop;
    await sample();
    let ticks = 0;
    for (const [pid, end] of last) ticks += end - first.get(pid)!;
    return samples > 1 && first.size > 0
      ? { cpu: ticks / 100, busy: busySamples / samples, samples }
      : { cpu: Number.NaN, busy: Number.NaN, samples };
  }
}

// ---------------------------------------------------------------- the runs

interface Run {
  system: 'raw COPY' | 'opsgraph';
  round: number;
  ms: number;
  documents: number;
  chunks: number;
  /** opsgraph only: mutation sent → job started, started → completed, and per-batch times (ms). */
  queuedMs?: number;
  /**
   * CPU seconds of the loader (not PostgreSQL) meanwhile: opsgraph's server process, or this
   * process for the raw load (reading, hashing, chunking, escaping; psql itself not counted).
   */
  loaderCpu: number;
  /** PostgreSQL's side of the run (its client backends of the scratch database). */
  db: DbUse;
  runMs?: number;
  batchMs?: number[];
}

async function runRaw(db: ScratchDatabase, corpus: Corpus, round: number): Promise<Run> {
  const tables = await createRawTables(db, round);
  try {
    await db.pool.query('CHECKPOINT');
    const cpu = process.cpuUsage();
    const t = performance.now();
    const { use } = await watchBackends(db.name, () => copyCorpus(db, corpus, tables));
    const ms = performance.now() - t;
    const used = process.cpuUsage(cpu);
    const loaderCpu = (used.user + used.system) / 1e6;
    const { rows } = await db.pool.query<{ documents: number; chunks: number }>(
      `SELECT (SELECT count(*)::int FROM ${tables.docs}) AS documents, (SELECT count(*)::int FROM ${tables.chunks}) AS chunks`,
    );
    const { documents, chunks } = rows[0]!;
    return { system: 'raw COPY', round, ms, documents, chunks, loaderCpu, db: use };
  } finally {
    await db.pool.query(`DROP TABLE IF EXISTS ${tables.chunks}, ${tables.docs}`);
    await db.pool.query('DELETE FROM "Collection" WHERE id = $1::uuid', [tables.collectionId]);
  }
}

async function runOpsgraph(db: ScratchDatabase, server: Server, corpus: Corpus, round: number): Promise<Run> {
  const created = await startOperation(server, 'collection.create', {
    name: `bench-${round}`,
    language: LANGUAGE,
    chunkSize: CHUNK_SIZE,
  });
  const collectionId = (created.result as { collectionId: string }).collectionId;
  try {
    await db.pool.query('CHECKPOINT');
    const cpu = await cpuSeconds(server.app.child.pid);
    const {
      result: { id, sentAt, operation },
      use,
    } = await watchBackends(db.name, () => indexInto(server, collectionId, corpus.path));
    const loaderCpu = (await cpuSeconds(server.app.child.pid)) - cpu;
    const completedAt = Date.parse(operation.completedAt!);
    const startedAt = Date.parse(operation.startedAt!);
    const response = await gql(server.app.url, GetCollection, { id: collectionId }, server.token);
    const collection = response.data?.collection;
    if (!collection) throw new Error(`collection ${collectionId}: ${JSON.stringify(response)}`);
    return {
      system: 'opsgraph',
      round,
      ms: completedAt - sentAt,
      documents: collection.documentCount,
      chunks: collection.chunkCount,
      queuedMs: startedAt - sentAt,
      loaderCpu,
      db: use,
      runMs: completedAt - startedAt,
      batchMs: await batchTimes(server, id),
    };
  } finally {
    await emptyOurTables(db, collectionId);
  }
}

const docsPerSecond = (run: Run) => (run.documents / run.ms) * 1000;

await runBench(async () => {
  const t = performance.now();
  const corpus = await writeCorpus();
  const mb = corpus.bytes / 1e6;
  console.log(
    `index: N=${args.n} generated documents (seed ${args.seed}), ${fixed(mb, 1)} MB, ` +
      `${fixed(corpus.words / args.n, 0)} words/document on average, folders of ${args.folder}; ` +
      `written in ${fixed((performance.now() - t) / 1000, 1)} s`,
  );

  const db = await createScratchDatabase('index', { migrate: true });
  const token = await tokenFor(db.url, 'bench');
  const app = await spawnServer({
    DATABASE_URL: db.url,
    REDIS_URL,
    OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
    OPSGRAPH_ROLE: 'all',
    OPSGRAPH_SOURCES_ROOT: corpus.root,
    OPSGRAPH_STORAGE_DIR: join(corpus.root, '.exports'),
    OPSGRAPH_COLLECTION_BATCH_SIZE: String(args.batch),
  });
  const close = defer(async () => {
    await app.stop();
  });
  const server: Server = { app, token };
  const { rows } = await db.pool.query<{ server_version: string }>('SHOW server_version');
  console.log(
    `env: node ${process.version}, PostgreSQL ${rows[0]?.server_version}, ${availableParallelism()} cores; ` +
      `opsgraph batch size ${args.batch} (OPSGRAPH_COLLECTION_BATCH_SIZE), chunk size ${CHUNK_SIZE}, ` +
      `language ${LANGUAGE}; ${args.rounds} round(s) of raw COPY then opsgraph`,
  );

  // Warm-up (untimed): the server's code paths and connections.
  const warm = await indexFolder(server, 'warmup', 'warmup');
  await emptyOurTables(db, warm.collectionId);

  // What the idle server costs PostgreSQL (pg-boss's polling and maintenance): part of every
  // opsgraph run's DB CPU that a COPY does not pay.
  const { use: idle } = await watchBackends(db.name, () => sleep(IDLE_MS));
  const idleCpuPerSecond = idle.cpu / (IDLE_MS / 1000);
  console.log(
    `idle server: ${fixed(idleCpuPerSecond * 1000, 0)} ms of DB CPU per second, DB busy ${fixed(idle.busy * 100, 0)} % ` +
      `(${IDLE_MS / 1000} s with no operation running)`,
  );

  const runs: Run[] = [];
  for (let round = 1; round <= args.rounds; round += 1) {
    for (const system of ['raw COPY', 'opsgraph'] as const) {
      const run =
        system === 'raw COPY'
          ? await runRaw(db, corpus, round)
          : await runOpsgraph(db, server, corpus, round);
      runs.push(run);
      if (run.documents !== args.n) {
        throw new Error(`${system} round ${round}: ${run.documents} documents stored, expected ${args.n}`);
      }
      console.log(
        `  round ${round} ${system.padEnd(8)} ${fixed(docsPerSecond(run), 0).padStart(6)} docs/s, ` +
          `${run.documents} documents (${run.chunks} chunks) in ${fixed(run.ms / 1000, 2)} s`,
      );
    }
  }
  await close();

  const chunkCounts = new Set(runs.map((run) => run.chunks));
  printTable(
    'Runs (opsgraph: mutation sent → completedAt; raw: first file read → psql exited; ' +
      'loader CPU: the opsgraph server process, or this process for raw — PostgreSQL not counted; ' +
      "DB CPU: the scratch database's backends; DB busy: share of 20 ms samples with a statement running)",
    [
      'round',
      'system',
      'docs/s',
      'MB/s',
      'seconds',
      'loader CPU s',
      'DB CPU s',
      'DB busy %',
      'documents',
      'chunks',
    ],
    runs.map((run) => [
      String(run.round),
      run.system,
      fixed(docsPerSecond(run), 0),
      fixed((mb / run.ms) * 1000, 2),
      fixed(run.ms / 1000, 2),
      fixed(run.loaderCpu, 2),
      fixed(run.db.cpu, 2),
      fixed(run.db.busy * 100, 0),
      String(run.documents),
      String(run.chunks),
    ]),
  );
  const ours = runs.filter((run) => run.system === 'opsgraph');
  printTable(
    `Where opsgraph's time goes (queued = mutation → job started; server busy = its CPU / the run's time, ` +
      `the rest it waits for PostgreSQL; batch = between progress events, ${args.batch} documents)`,
    [
      'round',
      'queued ms',
      'run s',
      'server CPU s',
      'server busy %',
      'batches',
      'batch p50 ms',
      'batch p95 ms',
      'batch max ms',
    ],
    ours.map((run) => [
      String(run.round),
      fixed(run.queuedMs!, 0),
      fixed(run.runMs! / 1000, 2),
      fixed(run.loaderCpu, 2),
      fixed((run.loaderCpu * 1e5) / run.ms, 0),
      String(run.batchMs!.length),
      fixed(percentile(run.batchMs!, 50), 0),
      fixed(percentile(run.batchMs!, 95), 0),
      fixed(Math.max(...run.batchMs!), 0),
    ]),
  );

  const raws = runs.filter((run) => run.system === 'raw COPY');
  const raw = median(raws.map(docsPerSecond));
  const mine = median(ours.map(docsPerSecond));
  const ratio = mine / raw;
  const rawDb = median(raws.map((run) => run.db.cpu));
  const ourDb = median(ours.map((run) => run.db.cpu));
  printTable(
    `Summary (median of ${args.rounds} run(s) each; DB CPU ratio = raw's / opsgraph's, the share of ` +
      `opsgraph's PostgreSQL work that a COPY would do)`,
    ['system', 'docs/s', 'ratio', 'target', 'DB CPU s', 'DB CPU ratio', 'DB busy %'],
    [
      [
        'opsgraph collection.index',
        fixed(mine, 0),
        fixed(ratio, 2),
        `≥ ${fixed(TARGET, 2)}`,
        fixed(ourDb, 2),
        fixed(rawDb / ourDb, 2),
        fixed(median(ours.map((run) => run.db.busy * 100)), 0),
      ],
      [
        'raw COPY',
        fixed(raw, 0),
        '1.00',
        '',
        fixed(rawDb, 2),
        '1.00',
        fixed(median(raws.map((run) => run.db.busy * 100)), 0),
      ],
    ],
  );
  const background = idleCpuPerSecond * (median(ours.map((run) => run.ms)) / 1000);
  console.log(
    `opsgraph's DB CPU beyond the raw COPY's: ${fixed(ourDb - rawDb, 2)} s, of which ~${fixed(background, 2)} s ` +
      'is what the idle server uses in as long (pg-boss polling)',
  );
  console.log(
    `ratio per round (opsgraph / the raw COPY just before it): ${ours
      .map((run, i) => fixed(docsPerSecond(run) / docsPerSecond(raws[i]!), 2))
      .join(', ')}`,
  );
  console.log(
    `\nratio opsgraph / raw COPY = ${fixed(ratio, 2)} (target ≥ ${fixed(TARGET, 2)}: ${ratio >= TARGET ? 'met' : 'not met'})`,
  );
  if (chunkCounts.size > 1) {
    console.log(`warning: the runs stored different chunk counts: ${[...chunkCounts].join(', ')}`);
  }
});
