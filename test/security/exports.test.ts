import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import pg from 'pg';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp } from '../support/app.ts';
import { itemsById, settleBatch, startBatchOk } from '../support/batches.ts';
import { gql, tokenFor } from '../support/client.ts';
import {
  collectionFolders,
  createCollection,
  ListCollections,
  settle,
  startOk,
  startRaw,
} from '../support/collections.ts';
import { CancelOperation, GetOperation } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';

/** Exports are owned (issue 9, point 2): only their owner and admins read them, and every read verifies. */

const NO_SUCH_EXPORT = 'no export with this name is available to you';
const MAX_LINE = 64 * 1024;
/** Generous: on a loaded CI machine a queued operation may wait a while for its worker. */
const SETTLE_MS = 60_000;
const folders = collectionFolders();
const server = useServer({
  sourcesRoot: folders.sourcesRoot,
  storageDir: folders.storageDir,
  exportMaxLineBytes: MAX_LINE,
});

const docs = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    externalId: `${prefix}-${i}`,
    content: `${prefix} note ${i} zebra`,
  }));
const inline = (collectionId: string, name: string, documents: unknown[]) => ({
  collectionId,
  source: { kind: 'inline', name, documents },
});

async function done(token: string, type: string, input: unknown) {
  const started = await startOk(server.app.url, token, type, input);
  return settle(server.app.url, token, started.id, SETTLE_MS);
}
async function completed(token: string, type: string, input: unknown) {
  const op = await done(token, type, input);
  expect(op.error).toBeNull();
  expect(op.status).toBe('COMPLETED');
  return op.result as Record<string, unknown>;
}

/** What a refusal may change: nothing at all. */
async function counts() {
  const [row] = await server.db.query(
    `SELECT (SELECT count(*)::int FROM "Operation") AS operations, (SELECT count(*)::int FROM pgboss.job) AS jobs,
            (SELECT count(*)::int FROM "Collection") AS collections, (SELECT count(*)::int FROM "Document") AS documents,
            (SELECT count(*)::int FROM "ExportFile") AS exports`,
  );
  return row;
}
const uuidOf = (id: string) => Buffer.from(id, 'base64').toString().split(':')[1]!;
const userId = async (name: string) =>
  (await server.db.query<{ id: string }>(`SELECT id FROM "User" WHERE name = $1`, [name]))[0]!.id;

let plans: string;
let bobs: string;
let alice: string;
beforeAll(async () => {
  const { tokens } = server;
  plans = await createCollection(server.app.url, tokens.alice, { name: 'plans', language: 'simple' });
  await completed(tokens.alice, 'collection.index', inline(plans, 'memo', docs('alice', 5)));
  await completed(tokens.alice, 'collection.export', { collectionId: plans, file: 'secret-plan' });
  bobs = await createCollection(server.app.url, tokens.bob, { name: 'bobs' });
  alice = await userId('alice');
});

describe('who may read an export', () => {
  it('lets its owner import it and append from it', async () => {
    const imported = await completed(server.tokens.alice, 'collection.import', {
      file: 'secret-plan',
      name: 'plans-restored',
    });
    expect(imported).toMatchObject({ documents: 5 });
    const target = await createCollection(server.app.url, server.tokens.alice, { name: 'plans-appended' });
    const appended = await completed(server.tokens.alice, 'collection.append', {
      collectionId: target,
      source: { kind: 'export', file: 'secret-plan.ndjson.gz' },
    });
    expect(appended).toMatchObject({ source: 'export:secret-plan.ndjson.gz', added: 5 });
  });

  it('refuses an import whose given checksum is not the recorded one, creating no collection', async () => {
    const op = await done(server.tokens.alice, 'collection.import', {
      file: 'secret-plan',
      sha256: '0'.repeat(64),
      name: 'wrong-sum',
    });
    expect(op).toMatchObject({
      status: 'FAILED',
      error: { code: 'CHECKSUM_MISMATCH', message: 'the export is not the one the given checksum names' },
    });
    expect(await server.db.query(`SELECT 1 FROM "Collection" WHERE name = 'wrong-sum'`)).toEqual([]);
  });

  it("lets an admin import anyone's export", async () => {
    const op = await done(server.tokens.root, 'collection.import', { file: 'secret-plan', name: 'audit' });
    expect(op).toMatchObject({ status: 'COMPLETED', owner: { name: 'root' }, result: { documents: 5 } });
  });

  const refusals: [string, () => { type: string; input: unknown }][] = [
    [
      'collection.import',
      () => ({ type: 'collection.import', input: { file: 'secret-plan', name: 'stolen' } }),
    ],
    [
      'collection.append from an export source',
      () => ({
        type: 'collection.append',
        input: { collectionId: bobs, source: { kind: 'export', file: 'secret-plan' } },
      }),
    ],
    [
      'collection.index from an export source',
      () => ({
        type: 'collection.index',
        input: { collectionId: bobs, source: { kind: 'export', file: 'secret-plan' } },
      }),
    ],
  ];

  it.each(refusals)(
    "refuses bob's %s of alice's private export exactly as one of a file that does not exist",
    async (_, request) => {
      const before = await counts();
      const { type, input } = request();
      const theirs = await startRaw(server.app.url, server.tokens.bob, type, input);
      const absent = await startRaw(
        server.app.url,
        server.tokens.bob,
        type,
        JSON.parse(JSON.stringify(input).replaceAll('secret-plan', 'no-such-export')),
      );
      expect(theirs.__typename).toBe('ValidationError');
      if (theirs.__typename !== 'ValidationError') return;
      expect(theirs.problems.map((problem) => problem.message)).toEqual([NO_SUCH_EXPORT]);
      // Same type, same message, same path: nothing tells "not yours" from "absent".
      expect(absent).toEqual(theirs);
      expect(await counts()).toEqual(before);
      // The server is still answering, and alice's collection is untouched.
      const listed = await gql(server.app.url, ListCollections, { first: 50 }, server.tokens.alice);
      expect(listed.data?.collections.edges.find((edge) => edge.node.id === plans)?.node.documentCount).toBe(
        5,
      );
    },
  );

  it("gives bob his own export when he names one like alice's, never hers", async () => {
    await completed(server.tokens.bob, 'collection.index', inline(bobs, 'bob', docs('bob', 2)));
    const mine = await completed(server.tokens.bob, 'collection.export', {
      collectionId: bobs,
      file: 'secret-plan',
    });
    expect(mine).toMatchObject({ file: 'secret-plan.ndjson.gz', documentCount: 2 });
    expect(mine).not.toHaveProperty('path');
    const imported = await completed(server.tokens.bob, 'collection.import', {
      file: 'secret-plan',
      name: 'mine',
    });
    expect(imported).toMatchObject({ documents: 2 });
    const theirs = await completed(server.tokens.alice, 'collection.import', {
      file: 'secret-plan',
      name: 'again',
    });
    expect(theirs).toMatchObject({ documents: 5 });
    // Two users' exports of one name: an admin who has none is not guessed one.
    const admin = await startRaw(server.app.url, server.tokens.root, 'collection.import', {
      file: 'secret-plan',
      name: 'which',
    });
    expect(admin).toMatchObject({ __typename: 'ValidationError', problems: [{ message: NO_SUCH_EXPORT }] });
  });

  it('shows no server path in results, events or the output schema', async () => {
    const rows = await server.db.query<{ text: string }>(
      `SELECT coalesce(result::text, '') || coalesce(error::text, '') AS text FROM "Operation"
        UNION ALL SELECT coalesce(message, '') || coalesce(data::text, '') FROM "OperationEvent"`,
    );
    expect(rows.filter((row) => row.text.includes(folders.base))).toEqual([]);
    const response = await fetch(server.app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.tokens.alice}` },
      body: JSON.stringify({ query: '{ operationTypes { name outputSchema } }' }),
    });
    const { data } = (await response.json()) as {
      data: { operationTypes: { name: string; outputSchema: unknown }[] };
    };
    const exportType = data.operationTypes.find((type) => type.name === 'collection.export');
    expect(JSON.stringify(exportType?.outputSchema)).toContain('sha256');
    expect(JSON.stringify(exportType?.outputSchema)).not.toContain('"path"');
  });
});

describe('two exports to one file name', () => {
  it('lets exactly one claim the file; the other fails typed at the claim', async () => {
    // Writes to ExportFile wait (reads do not): both exports are accepted, then meet at the claim.
    const lock = new pg.Client({ connectionString: server.db.url });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE "ExportFile" IN EXCLUSIVE MODE');
    let ops: { id: string }[];
    try {
      ops = await Promise.all(
        [1, 2].map(() =>
          startOk(server.app.url, server.tokens.alice, 'collection.export', {
            collectionId: plans,
            file: 'race',
          }),
        ),
      );
      await vi.waitFor(
        async () => {
          const [row] = await server.db.query<{ waiting: number }>(
            `SELECT count(*)::int AS waiting FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
              WHERE c.relname = 'ExportFile' AND NOT l.granted`,
          );
          expect(row?.waiting).toBeGreaterThanOrEqual(1);
        },
        { timeout: 15_000, interval: 20 },
      );
    } finally {
      await lock.query('COMMIT');
      await lock.end();
    }
    const outcomes = await Promise.all(
      ops.map((op) => settle(server.app.url, server.tokens.alice, op.id, SETTLE_MS)),
    );
    const won = outcomes.filter((op) => op.status === 'COMPLETED');
    const lost = outcomes.filter((op) => op.status !== 'COMPLETED');
    expect(won).toHaveLength(1);
    expect(lost.map((op) => [op.status, op.error])).toEqual([
      ['FAILED', { code: 'FILE_EXISTS', message: 'you already have an export with this name' }],
    ]);
    const rows = await server.db.query(
      `SELECT "operationId", sha256, "completedAt" IS NOT NULL AS completed FROM "ExportFile" WHERE file = 'race.ndjson.gz'`,
    );
    const winner = won[0]!;
    const sha256 = (winner.result as { sha256: string }).sha256;
    expect(rows).toEqual([{ operationId: uuidOf(winner.id), sha256, completed: true }]);
    const bytes = readFileSync(join(folders.storageDir, alice, 'race.ndjson.gz'));
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(sha256);
    // The loser left nothing behind: no partial file in the owner's folder.
    expect(readdirSync(join(folders.storageDir, alice)).filter((name) => name.includes('race'))).toEqual([
      'race.ndjson.gz',
      'race.ndjson.gz.sha256',
    ]);
  });
});

describe('an export file read as outside data', () => {
  const path = (file: string) => join(folders.storageDir, alice, file);
  const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

  /** Lines of a real export of alice's, to edit. */
  let lines: string[];
  /** Bob's operation, running while alice's hostile files are read. */
  let bystander: string;
  beforeAll(async () => {
    bystander = (
      await startOk(server.app.url, server.tokens.bob, 'diagnostics.echo', { value: 1, sleepMs: 1500 })
    ).id;
    await completed(server.tokens.alice, 'collection.export', { collectionId: plans, file: 'pristine' });
    lines = gunzipSync(readFileSync(path('pristine.ndjson.gz')))
      .toString('utf8')
      .trimEnd()
      .split('\n');
  });

  /**
   * Writes bytes over a real export of alice's (tampered), or — `blessed` — as an export of hers
   * whose row records their checksum, as if someone had hand-edited one and recorded it again.
   */
  async function plant(file: string, bytes: Buffer, blessed: boolean) {
    if (!blessed) await completed(server.tokens.alice, 'collection.export', { collectionId: plans, file });
    writeFileSync(path(`${file}.ndjson.gz`), bytes);
    if (blessed) {
      await server.db.query(
        `INSERT INTO "ExportFile" ("ownerId", file, "operationId", size, sha256, "documentCount", "completedAt")
         VALUES ($1, $2, gen_random_uuid(), $3, $4, 5, now())`,
        [alice, `${file}.ndjson.gz`, bytes.length, sha(bytes)],
      );
    }
  }

  /** Import and append from the planted file: both fail with `code`, store nothing, leak no path. */
  async function expectRefused(file: string, code: string, message: RegExp) {
    const before = await counts();
    const target = await createCollection(server.app.url, server.tokens.alice, { name: `into-${file}` });
    const documentsBefore = before?.documents;
    const imported = await done(server.tokens.alice, 'collection.import', { file, name: `from-${file}` });
    const appended = await done(server.tokens.alice, 'collection.append', {
      collectionId: target,
      source: { kind: 'export', file },
    });
    for (const op of [imported, appended]) {
      expect(op.status).toBe('FAILED');
      expect(op.error).toEqual({ code, message: expect.stringMatching(message) });
      expect(JSON.stringify(op.error)).not.toContain(folders.base);
    }
    const [row] = await server.db.query<{ collections: number; documents: number }>(
      `SELECT (SELECT count(*)::int FROM "Collection" WHERE name = $1) AS collections,
              (SELECT count(*)::int FROM "Document") AS documents`,
      [`from-${file}`],
    );
    expect(row).toEqual({ collections: 0, documents: documentsBefore });
  }

  const gz = (text: string) => gzipSync(Buffer.from(text));
  const edit = (index: number, change: (value: Record<string, unknown>) => unknown) =>
    lines.map((text, i) => (i === index ? JSON.stringify(change(JSON.parse(text))) : text)).join('\n');

  it('refuses a file whose header was changed after export: checksum first', async () => {
    await plant('tampered-header', gz(`${edit(0, (h) => ({ ...h, chunkSize: 5 }))}\n`), false);
    await expectRefused('tampered-header', 'CHECKSUM_MISMATCH', /checksum mismatch/);
  });

  it('refuses a file with one document line changed after export', async () => {
    await plant('tampered-line', gz(`${edit(3, (d) => ({ ...d, content: 'planted' }))}\n`), false);
    await expectRefused('tampered-line', 'CHECKSUM_MISMATCH', /checksum mismatch/);
  });

  const deep = (depth: number): unknown => (depth === 0 ? 1 : { a: deep(depth - 1) });
  const edited: [string, () => Buffer, RegExp][] = [
    [
      'not gzip at all',
      () => Buffer.from('plain text, not an export'),
      /not a valid gzipped opsgraph export/,
    ],
    [
      'a header that is not JSON',
      () => gz(`{"format":\n${lines.slice(1).join('\n')}\n`),
      /header \(line 1\) is not JSON/,
    ],
    [
      'a header with an unknown language',
      () => gz(`${edit(0, (h) => ({ ...h, language: 'klingon' }))}\n`),
      /header.*language/,
    ],
    [
      'a header with an extra field',
      () => gz(`${edit(0, (h) => ({ ...h, admin: true }))}\n`),
      /header.*not valid/,
    ],
    [
      'a document whose content is a number',
      () => gz(`${edit(2, (d) => ({ ...d, content: 42 }))}\n`),
      /line 3 is not valid: content/,
    ],
    [
      'a document holding a NUL character',
      () => gz(`${edit(2, (d) => ({ ...d, title: 'a\u0000b' }))}\n`),
      /line 3: contains a NUL/,
    ],
    [
      'a lone surrogate',
      () => gz(`${edit(2, (d) => ({ ...d, content: '\ud800' }))}\n`),
      /line 3: contains a lone surrogate/,
    ],
    [
      'metadata nested 200 deep',
      () => gz(`${edit(2, (d) => ({ ...d, metadata: { x: deep(200) } }))}\n`),
      /nested deeper than 64/,
    ],
    [
      'a line longer than the limit',
      () => gz(`${edit(2, (d) => ({ ...d, content: 'z'.repeat(MAX_LINE) }))}\n`),
      /line 3 is longer than 65536 bytes/,
    ],
    [
      'a repeated document',
      () => gz(`${edit(2, () => JSON.parse(lines[1]!))}\n`),
      /line 3 repeats an earlier document/,
    ],
    [
      'fewer documents than exported',
      () => gz(`${lines.slice(0, -1).join('\n')}\n`),
      /holds 4 documents, 5 were exported/,
    ],
    ['an empty file', () => gz(''), /the file is empty/],
  ];

  it.each(edited)(
    'validates every line of a hand-edited file with a matching checksum: %s',
    async (_, bytes, message) => {
      const file = `edited-${edited.findIndex((c) => c[1] === bytes)}`;
      await plant(file, bytes(), true);
      await expectRefused(file, 'BAD_EXPORT_FILE', message);
    },
  );

  it("leaves another user's operation running meanwhile to complete", async () => {
    const op = await settle(server.app.url, server.tokens.bob, bystander, SETTLE_MS);
    expect(op).toMatchObject({ status: 'COMPLETED', error: null });
  });
});

describe('the export folder', () => {
  it('keeps each owner apart: a file nobody recorded is not an export', async () => {
    writeFileSync(
      join(folders.storageDir, alice, 'unrecorded.ndjson.gz'),
      readFileSync(join(folders.storageDir, alice, 'pristine.ndjson.gz')),
    );
    const refused = await startRaw(server.app.url, server.tokens.alice, 'collection.import', {
      file: 'unrecorded',
      name: 'unrecorded',
    });
    expect(refused).toMatchObject({ __typename: 'ValidationError', problems: [{ message: NO_SUCH_EXPORT }] });
    rmSync(join(folders.storageDir, alice, 'unrecorded.ndjson.gz'));
  });
});

describe('after a crash', () => {
  it('a reservation left by an ended export is readable by nobody, and the next export takes it over', async () => {
    // What a worker killed between reserving and completing leaves: a row without completedAt
    // (its operation FAILED since), the file perhaps already in place.
    const [dead] = await server.db.query<{ id: string }>(
      `INSERT INTO "Operation" (type, input, "ownerId", status) VALUES ('collection.export', '{}', $1, 'FAILED') RETURNING id`,
      [alice],
    );
    await server.db.query(
      `INSERT INTO "ExportFile" ("ownerId", file, "operationId", "claimId") VALUES ($1, 'crashed.ndjson.gz', $2, gen_random_uuid())`,
      [alice, dead!.id],
    );
    writeFileSync(join(folders.storageDir, alice, 'crashed.ndjson.gz'), 'half-written');
    const read = await startRaw(server.app.url, server.tokens.alice, 'collection.import', {
      file: 'crashed',
      name: 'c',
    });
    expect(read).toMatchObject({ __typename: 'ValidationError', problems: [{ message: NO_SUCH_EXPORT }] });
    const again = await completed(server.tokens.alice, 'collection.export', {
      collectionId: plans,
      file: 'crashed',
    });
    const rows = await server.db.query(
      `SELECT "operationId" <> $2 AS taken, sha256, "completedAt" IS NOT NULL AS completed FROM "ExportFile"
        WHERE "ownerId" = $1 AND file = 'crashed.ndjson.gz'`,
      [alice, dead!.id],
    );
    expect(rows).toEqual([{ taken: true, sha256: again.sha256, completed: true }]);
    const imported = await completed(server.tokens.alice, 'collection.import', {
      file: 'crashed',
      name: 'c',
    });
    expect(imported).toMatchObject({ documents: 5 });
  });
});

describe('an export the file system refuses', () => {
  it('records the errno code, never a server path, and keeps no reservation', async () => {
    // A plain file where carol's export folder would go: creating the folder fails (EEXIST).
    const carol = await tokenFor(server.db.url, 'carol');
    writeFileSync(join(folders.storageDir, await userId('carol')), 'not a folder');
    const collectionId = await createCollection(server.app.url, carol, { name: 'carols' });
    const op = await startOk(server.app.url, carol, 'collection.export', { collectionId, file: 'blocked' });
    const failed = await vi.waitFor(
      async () => {
        const read = await gql(server.app.url, GetOperation, { id: op.id }, carol);
        expect(read.data?.operation?.error).not.toBeNull();
        return read.data!.operation!;
      },
      { timeout: SETTLE_MS, interval: 50 },
    );
    expect(failed.error).toEqual({
      code: 'EXPORT_WRITE_FAILED',
      message: 'the export file could not be written (EEXIST)',
    });
    expect(await server.db.query(`SELECT 1 FROM "ExportFile" WHERE file = 'blocked.ndjson.gz'`)).toEqual([]);
    await gql(server.app.url, CancelOperation, { id: op.id }, carol);
  });
});

describe('an export undone by an atomic batch', () => {
  it('is withdrawn: its file and its row are gone, and the name can be used again', async () => {
    const { id } = await startBatchOk(server.app.url, server.tokens.alice, {
      items: [
        { id: 'out', type: 'collection.export', input: { collectionId: plans, file: 'undone' } },
        { id: 'fail', type: 'diagnostics.echo', input: { failWith: 'give up' }, dependsOn: ['out'] },
      ],
    });
    const batch = await settleBatch(server.app.url, server.tokens.alice, id);
    const items = Object.entries(itemsById(batch)).map(([item, { status }]) => [item, status]);
    expect(Object.fromEntries(items)).toEqual({ out: 'ROLLED_BACK', fail: 'FAILED' });
    expect(await server.db.query(`SELECT 1 FROM "ExportFile" WHERE file = 'undone.ndjson.gz'`)).toEqual([]);
    expect(readdirSync(join(folders.storageDir, alice)).filter((name) => name.includes('undone'))).toEqual(
      [],
    );
    const again = await completed(server.tokens.alice, 'collection.export', {
      collectionId: plans,
      file: 'undone',
    });
    expect(again).toMatchObject({ file: 'undone.ndjson.gz', documentCount: 5 });
  });
});

describe('an import checks the export again when it runs', () => {
  // API only: started operations wait in the queue until a worker of this test starts.
  const runtime = collectionFolders();
  const api = useServer({ role: 'api', sourcesRoot: runtime.sourcesRoot, storageDir: runtime.storageDir });
  const worker = () =>
    startTestApp(api.db.url, {
      role: 'worker',
      sourcesRoot: runtime.sourcesRoot,
      storageDir: runtime.storageDir,
    });
  const start = (token: string, type: string, input: unknown) => startOk(api.app.url, token, type, input);

  it("fails one that is gone and one no longer the viewer's with the same code and message", async () => {
    const { tokens } = api;
    const id = await createCollection(api.app.url, tokens.alice, { name: 'notes' });
    const first = await worker();
    try {
      for (const file of ['kept', 'gone', 'vanished']) {
        const op = await start(tokens.alice, 'collection.export', { collectionId: id, file });
        expect((await settle(api.app.url, tokens.alice, op.id, SETTLE_MS)).status).toBe('COMPLETED');
      }
    } finally {
      await first.close();
    }
    // Accepted now: the admin may read alice's export, and alice her own.
    const byAdmin = await start(tokens.root, 'collection.import', { file: 'kept', name: 'audit' });
    const gone = await start(tokens.alice, 'collection.import', { file: 'gone', name: 'restored' });
    const target = await createCollection(api.app.url, tokens.alice, { name: 'target' });
    const goneAppend = await start(tokens.alice, 'collection.append', {
      collectionId: target,
      source: { kind: 'export', file: 'gone' },
    });
    const vanished = await start(tokens.alice, 'collection.import', { file: 'vanished', name: 'vanished' });
    // Before they run: root is no longer an admin, alice's "gone" is no longer recorded, and the
    // file of her "vanished" was deleted from the disk.
    await api.db.query(`UPDATE "User" SET "isAdmin" = false WHERE name = 'root'`);
    await api.db.query(`DELETE FROM "ExportFile" WHERE file = 'gone.ndjson.gz'`);
    const [alice] = await api.db.query<{ id: string }>(`SELECT id FROM "User" WHERE name = 'alice'`);
    rmSync(join(runtime.storageDir, alice!.id, 'vanished.ndjson.gz'));
    const second = await worker();
    try {
      const ended = await Promise.all(
        [
          [tokens.root, byAdmin.id],
          [tokens.alice, gone.id],
          [tokens.alice, goneAppend.id],
          [tokens.alice, vanished.id],
        ].map(([token, op]) => settle(api.app.url, token!, op!, SETTLE_MS)),
      );
      const failure = { code: 'EXPORT_NOT_FOUND', message: NO_SUCH_EXPORT };
      expect(ended.map((op) => [op.status, op.error])).toEqual([
        ['FAILED', failure],
        ['FAILED', failure],
        ['FAILED', failure],
        ['FAILED', failure],
      ]);
      const collections = await api.db.query(`SELECT name FROM "Collection" ORDER BY name`);
      expect(collections).toEqual([{ name: 'notes' }, { name: 'target' }]);
    } finally {
      await second.close();
      await api.db.query(`UPDATE "User" SET "isAdmin" = true WHERE name = 'root'`);
    }
  });
});
