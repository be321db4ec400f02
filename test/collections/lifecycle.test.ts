import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { graphql } from '../gql/index.ts';
import { gql } from '../support/client.ts';
import {
  collectionFolders,
  createCollection,
  GetCollection,
  Search,
  settle,
  startOk,
  writeFiles,
} from '../support/collections.ts';
import { useServer } from '../support/fixtures.ts';

const folders = collectionFolders();
const server = useServer({ sourcesRoot: folders.sourcesRoot, storageDir: folders.storageDir });

/** A search that also says which generation of the index the collection had in service. */
const SearchGeneration = graphql(`
  query SearchGeneration($collectionId: ID!, $query: String!) {
    search(collectionId: $collectionId, query: $query) {
      __typename
      ... on SearchSuccess { hits { document { externalId } } collection { generation language } }
    }
  }
`);

const WORDS = 'harbour tide granite meadow orchard lantern river willow copper thistle ferry pebble'.split(
  ' ',
);
const filler = (i: number, words = 60) =>
  Array.from({ length: words }, (_, k) => WORDS[(i * 7 + k * 13 + k * k) % WORDS.length]).join(' ');
const times = (word: string, n: number) => Array.from({ length: n }, () => `The ${word} shines.`).join(' ');

/** 407 files: one about a lighthouse, six beacons mentioning it 1–6 times, 400 notes that do not. */
const NOTES = 400;
const INITIAL = NOTES + 7;
function docsFolder(): Record<string, string> {
  const files: Record<string, string> = {
    'lighthouse.md': `# The lighthouse keeper\n\n${times('lighthouse', 8)}\n\n${filler(1, 20)}`,
  };
  for (let k = 1; k <= 6; k += 1)
    files[`coast/beacon-${k}.md`] = `# Beacon ${k}\n\n${filler(k)} ${times('lighthouse', k)}`;
  for (let i = 0; i < NOTES; i += 1)
    files[`notes/note-${String(i).padStart(3, '0')}.md`] = `# Note ${i}\n\n${filler(i)}`;
  return files;
}

const uuidOf = (id: string) => Buffer.from(id, 'base64').toString().split(':')[1]!;
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Starts an operation as alice, waits for it, expects COMPLETED and returns the operation. */
async function run(type: string, input: Record<string, unknown>) {
  const started = await startOk(server.app.url, server.tokens.alice, type, input);
  const done = await settle(server.app.url, server.tokens.alice, started.id, 60_000);
  expect(done.error).toBeNull();
  expect(done.status).toBe('COMPLETED');
  return { ...done, result: done.result as Record<string, unknown> };
}

async function collection(id: string) {
  const { data } = await gql(server.app.url, GetCollection, { id }, server.tokens.alice);
  return data?.collection ?? null;
}

/** Reads the collection through the API and checks its counts against the rows in the database. */
async function expectCountsMatchRows(id: string) {
  const read = await collection(id);
  if (!read) throw new Error(`collection ${id} not visible`);
  const [rows] = await server.db.query<{ documents: number; chunks: number; other: number }>(
    `SELECT (SELECT count(*)::int FROM "Document" WHERE "collectionId" = $1) AS documents,
            (SELECT count(*)::int FROM "Chunk" WHERE "collectionId" = $1 AND generation = $2) AS chunks,
            (SELECT count(*)::int FROM "Chunk" WHERE "collectionId" = $1 AND generation <> $2) AS other`,
    [uuidOf(id), read.generation],
  );
  expect({ documents: read.documentCount, chunks: read.chunkCount, other: 0 }).toEqual(rows);
  return read;
}

/** Hits of a search as (source, externalId, score), best first. */
async function hits(collectionId: string, query: string) {
  const { data } = await gql(server.app.url, Search, { collectionId, query, first: 50 }, server.tokens.alice);
  if (data?.search.__typename !== 'SearchSuccess') throw new Error(JSON.stringify(data));
  return data.search.hits.map(({ document, score }) => ({
    source: document.source,
    externalId: document.externalId,
    title: document.title,
    score,
  }));
}

describe('collection lifecycle through GraphQL', () => {
  let id = '';
  let total = INITIAL;
  let exported: Record<string, unknown> = {};
  let beforeDelete: Awaited<ReturnType<typeof hits>> = [];

  it('creates a collection inline and indexes a folder into it; search finds the best document first', async () => {
    id = await createCollection(server.app.url, server.tokens.alice, { name: 'handbook' });
    expect(await collection(id)).toMatchObject({ status: 'EMPTY', documentCount: 0, language: 'english' });

    writeFiles(join(folders.sourcesRoot, 'docs'), docsFolder());
    const indexed = await run('collection.index', {
      collectionId: id,
      source: { kind: 'folder', path: 'docs' },
      batchSize: 50,
    });
    expect(indexed.result).toMatchObject({ source: 'folder:docs', documents: INITIAL, added: INITIAL });
    expect(indexed.result).toMatchObject({ updated: 0, unchanged: 0 });
    const read = await expectCountsMatchRows(id);
    expect(read).toMatchObject({ status: 'READY', generation: 1, documentCount: INITIAL });
    expect(read.chunkCount).toBe(indexed.result.chunks);

    const found = await hits(id, 'lighthouse');
    expect(found.map((hit) => hit.externalId)).toEqual([
      'lighthouse.md',
      ...[6, 5, 4, 3, 2, 1].map((k) => `coast/beacon-${k}.md`),
    ]);
    // English stems: the plural finds the same documents.
    expect(await hits(id, 'lighthouses')).toHaveLength(7);
  });

  it('appends the same folder again: unchanged files are skipped, new ones added, a changed one updated', async () => {
    const added: Record<string, string> = { 'notes/note-000.md': `# Note 0\n\n${filler(0)} amended` };
    for (let i = 0; i < 20; i += 1) added[`new/added-${i}.md`] = `# Added ${i}\n\n${filler(i + 1000)}`;
    writeFiles(join(folders.sourcesRoot, 'docs'), added);
    const appended = await run('collection.append', {
      collectionId: id,
      source: { kind: 'folder', path: 'docs' },
      batchSize: 50,
    });
    total += 20;
    expect(appended.result).toMatchObject({
      documents: total,
      added: 20,
      updated: 1,
      unchanged: INITIAL - 1,
    });
    expect((await expectCountsMatchRows(id)).documentCount).toBe(total);

    const logbook = [
      { externalId: 'log-1', title: 'Lighthouse log', content: times('lighthouse', 12) },
      ...[2, 3, 4].map((n) => ({ externalId: `log-${n}`, content: filler(n + 2000), metadata: { n } })),
    ];
    const inline = await run('collection.append', {
      collectionId: id,
      source: { kind: 'inline', name: 'logbook', documents: logbook },
    });
    expect(inline.result).toMatchObject({ source: 'logbook', added: 4, unchanged: 0 });
    expect((await expectCountsMatchRows(id)).documentCount).toBe(total + 4);
    expect((await hits(id, 'lighthouse'))[0]).toMatchObject({ source: 'logbook', externalId: 'log-1' });
  });

  it('reindexes with another language while searches keep answering from the index in service', async () => {
    const samples: { start: number; end: number; typename: string; hits: number; generation?: number }[] = [];
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const start = Date.now();
        const { data } = await gql(
          server.app.url,
          SearchGeneration,
          { collectionId: id, query: 'lighthouse' },
          server.tokens.alice,
        );
        const search = data?.search;
        samples.push({
          start,
          end: Date.now(),
          typename: search?.__typename ?? 'none',
          hits: search?.__typename === 'SearchSuccess' ? search.hits.length : 0,
          generation: search?.__typename === 'SearchSuccess' ? search.collection?.generation : undefined,
        });
        await sleep(20);
      }
    })();
    await sleep(100);
    // Small batches: a reindex long enough (about a second on a quiet machine) for many searches to run during it.
    const reindexed = await run('collection.reindex', { collectionId: id, language: 'simple', batchSize: 1 });
    await sleep(100);
    stop = true;
    await loop;

    expect(reindexed.result).toMatchObject({ generation: 2, language: 'simple', documents: total + 4 });
    const read = await expectCountsMatchRows(id);
    expect(read).toMatchObject({ generation: 2, language: 'simple', status: 'READY' });
    expect(read.chunkCount).toBe(reindexed.result.chunks);
    // `simple` does not stem: the plural no longer matches.
    expect(await hits(id, 'lighthouses')).toEqual([]);

    const from = Date.parse(reindexed.startedAt!);
    const to = Date.parse(reindexed.completedAt!);
    const during = samples.filter((s) => s.start >= from && s.end <= to);
    const onOld = during.filter((s) => s.generation === 1).length;
    console.log(
      `reindex of ${total + 4} documents took ${to - from} ms; ${samples.length} searches in all, ${during.length} while it ran (${onOld} on generation 1, ${during.length - onOld} on generation 2)`,
    );
    // Every search answered, with every lighthouse document (7 in the folder, 1 in the logbook).
    expect(samples.filter((s) => s.typename !== 'SearchSuccess' || s.hits !== 8)).toEqual([]);
    expect(during.length).toBeGreaterThanOrEqual(10);
    // Every search saw one generation or the other, never going back once it had switched.
    const generations = samples.map((s) => s.generation);
    expect(generations[0]).toBe(1);
    expect(generations.at(-1)).toBe(2);
    expect(generations.indexOf(1, generations.indexOf(2))).toBe(-1);
  });

  it('removes one source in batches, leaving the others', async () => {
    const removed = await run('collection.removeSource', {
      collectionId: id,
      source: 'logbook',
      batchSize: 3,
    });
    expect(removed.result).toMatchObject({ source: 'logbook', removed: 4 });
    const read = await expectCountsMatchRows(id);
    expect(read).toMatchObject({ documentCount: total, status: 'READY' });
    const found = await hits(id, 'lighthouse');
    expect(found[0]?.externalId).toBe('lighthouse.md');
    expect(found.filter((hit) => hit.source === 'logbook')).toEqual([]);
  });

  it('exports to a gzipped file of its own, recorded with its checksum, showing no server path', async () => {
    const { result } = await run('collection.export', { collectionId: id, file: 'handbook-backup' });
    const [owner] = await server.db.query<{ id: string }>(`SELECT id FROM "User" WHERE name = 'alice'`);
    const path = join(folders.storageDir, owner!.id, 'handbook-backup.ndjson.gz');
    expect(result).toEqual({
      collectionId: id,
      file: 'handbook-backup.ndjson.gz',
      size: statSync(path).size,
      documentCount: total,
      sha256: sha256(path),
    });
    expect(readFileSync(`${path}.sha256`, 'utf8')).toBe(`${result.sha256}  handbook-backup.ndjson.gz\n`);
    const rows = await server.db.query(
      `SELECT "ownerId", size::int, sha256, "documentCount", "completedAt" IS NOT NULL AS completed
         FROM "ExportFile" WHERE file = 'handbook-backup.ndjson.gz'`,
    );
    expect(rows).toEqual([
      { ownerId: owner!.id, size: result.size, sha256: result.sha256, documentCount: total, completed: true },
    ]);
    exported = { ...result, path };
  });

  it('deletes the collection with all of its rows', async () => {
    beforeDelete = await hits(id, 'lighthouse');
    expect(beforeDelete).toHaveLength(7);
    // Distinct scores: the order cannot depend on the document ids, which an import changes.
    expect(new Set(beforeDelete.map((hit) => hit.score)).size).toBe(beforeDelete.length);

    const deleted = await run('collection.delete', { collectionId: id, batchSize: 100 });
    expect(deleted.result).toEqual({ collectionId: id, removedDocuments: total });
    expect(await collection(id)).toBeNull();
    const [rows] = await server.db.query(
      `SELECT (SELECT count(*)::int FROM "Collection" WHERE id = $1) AS collections,
              (SELECT count(*)::int FROM "Document" WHERE "collectionId" = $1) AS documents,
              (SELECT count(*)::int FROM "Chunk" WHERE "collectionId" = $1) AS chunks`,
      [uuidOf(id)],
    );
    expect(rows).toEqual({ collections: 0, documents: 0, chunks: 0 });
    const { data } = await gql(
      server.app.url,
      Search,
      { collectionId: id, query: 'lighthouse' },
      server.tokens.alice,
    );
    expect(data?.search.__typename).toBe('NotFoundError');
  });

  it('imports the export into a new collection that answers searches exactly as before', async () => {
    expect(existsSync(exported.path as string)).toBe(true);
    const imported = await run('collection.import', { file: exported.file, name: 'handbook-restored' });
    const restored = imported.result.collectionId as string;
    expect(restored).not.toBe(id);
    expect(imported.result).toMatchObject({ documents: total, sha256: exported.sha256 });
    const read = await expectCountsMatchRows(restored);
    expect(read).toMatchObject({
      name: 'handbook-restored',
      status: 'READY',
      language: 'simple',
      generation: 1,
      documentCount: total,
      chunkCount: imported.result.chunks,
    });
    expect(await hits(restored, 'lighthouse')).toEqual(beforeDelete);
  });
});
