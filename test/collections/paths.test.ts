import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { gql } from '../support/client.ts';
import {
  collectionFolders,
  createCollection,
  ListCollections,
  Search,
  settle,
  startOk,
  startRaw,
  writeFiles,
} from '../support/collections.ts';
import { useServer } from '../support/fixtures.ts';

const folders = collectionFolders();
const server = useServer({ sourcesRoot: folders.sourcesRoot, storageDir: folders.storageDir });

/** A word that exists only in the file outside the sources root. */
const SECRET = 'quokkaplumbago';
const outside = join(folders.base, 'outside');

beforeAll(() => {
  writeFiles(outside, { 'secret.txt': `The password is ${SECRET}.`, 'notes.md': `# Notes\n${SECRET}` });
  writeFiles(folders.sourcesRoot, {
    'docs/a.md': '# Aardvarks\nThe aardvark digs burrows at night.',
    'docs/b.txt': 'Badgers are related to weasels.',
    'leaky/own.md': 'A file that belongs here.',
    'mixed/own.md': 'Mixed folder with a neighbour linked in.',
  });
  symlinkSync(outside, join(folders.sourcesRoot, 'linkout'));
  symlinkSync(join(outside, 'secret.txt'), join(folders.sourcesRoot, 'leaky', 'secret.md'));
  symlinkSync(join(folders.sourcesRoot, 'docs'), join(folders.sourcesRoot, 'alias'));
  symlinkSync(join(folders.sourcesRoot, 'docs', 'b.txt'), join(folders.sourcesRoot, 'mixed', 'linked.txt'));
});

async function counts() {
  const [row] = await server.db.query(
    `SELECT (SELECT count(*) FROM "Operation") AS operations, (SELECT count(*) FROM "OperationEvent") AS events,
            (SELECT count(*) FROM pgboss.job) AS jobs, (SELECT count(*) FROM "Collection") AS collections,
            (SELECT count(*) FROM "Document") AS documents`,
  );
  return row;
}

let collectionId: string;
beforeAll(async () => {
  collectionId = await createCollection(server.app.url, server.tokens.alice, { name: 'target' });
  // An export of alice's, recorded as finished, whose file is really a link to the secret file.
  const [alice] = await server.db.query<{ id: string }>(`SELECT id FROM "User" WHERE name = 'alice'`);
  mkdirSync(join(folders.storageDir, alice!.id), { recursive: true });
  symlinkSync(join(outside, 'secret.txt'), join(folders.storageDir, alice!.id, 'stolen.ndjson.gz'));
  await server.db.query(
    `INSERT INTO "ExportFile" ("ownerId", file, "operationId", size, sha256, "documentCount", "completedAt")
     VALUES ($1, 'stolen.ndjson.gz', gen_random_uuid(), 30, repeat('0', 64), 1, now())`,
    [alice!.id],
  );
});

const folder = (path: string) => ({ collectionId, source: { kind: 'folder', path } });
const SOURCE_PATH = ['input', 'source', 'path'];
/** The export file name rule, however it is worded. */
const FILE_NAME_RULE = /must match pattern|plain file name/;

describe('a path that leaves its root', () => {
  const cases: [string, () => { type: string; input: unknown }, (string | number)[], RegExp][] = [
    [
      '"../outside"',
      () => ({ type: 'collection.index', input: folder('../outside') }),
      SOURCE_PATH,
      /"\.\."/,
    ],
    [
      '"docs/../../outside"',
      () => ({ type: 'collection.append', input: folder('docs/../../outside') }),
      SOURCE_PATH,
      /"\.\."/,
    ],
    [
      'the absolute path "/etc"',
      () => ({ type: 'collection.index', input: folder('/etc') }),
      SOURCE_PATH,
      /absolute/,
    ],
    [
      'the absolute path of the outside folder',
      () => ({ type: 'collection.append', input: folder(outside) }),
      SOURCE_PATH,
      /absolute/,
    ],
    [
      'a folder that is a symlink to a folder outside the root',
      () => ({ type: 'collection.index', input: folder('linkout') }),
      SOURCE_PATH,
      /points outside/,
    ],
    [
      'a folder holding a symlink to a file outside the root',
      () => ({ type: 'collection.append', input: folder('leaky') }),
      SOURCE_PATH,
      /"secret\.md", a symlink pointing outside/,
    ],
    [
      'collection.import of "../x.ndjson.gz"',
      () => ({ type: 'collection.import', input: { file: '../x.ndjson.gz', name: 'imported' } }),
      ['input', 'file'],
      FILE_NAME_RULE,
    ],
    [
      'collection.import of an export-folder symlink to a file outside it',
      () => ({ type: 'collection.import', input: { file: 'stolen.ndjson.gz', name: 'imported' } }),
      ['input', 'file'],
      /^no export with this name is available to you$/,
    ],
    [
      'an export source "../../etc/passwd"',
      () => ({
        type: 'collection.index',
        input: { collectionId, source: { kind: 'export', file: '../../etc/passwd' } },
      }),
      ['input', 'source', 'file'],
      FILE_NAME_RULE,
    ],
    [
      'collection.export to "../x"',
      () => ({ type: 'collection.export', input: { collectionId, file: '../x' } }),
      ['input', 'file'],
      /plain file name/,
    ],
    [
      'a folder that does not exist',
      () => ({ type: 'collection.index', input: folder('no-such-folder') }),
      SOURCE_PATH,
      /does not exist/,
    ],
  ];

  it.each(cases)('is refused before anything runs: %s', async (_, request, path, message) => {
    const before = await counts();
    const { type, input } = request();
    const result = await startRaw(server.app.url, server.tokens.alice, type, input);
    expect(result.__typename).toBe('ValidationError');
    if (result.__typename !== 'ValidationError') return;
    expect(result.problems).toEqual([{ path, message: expect.stringMatching(message) }]);
    expect(await counts()).toEqual(before);
  });

  it('is refused for an admin too', async () => {
    const before = await counts();
    for (const path of ['../outside', 'linkout', 'leaky']) {
      const result = await startRaw(server.app.url, server.tokens.root, 'collection.append', folder(path));
      expect(result).toMatchObject({ __typename: 'ValidationError', problems: [{ path: SOURCE_PATH }] });
    }
    expect(await counts()).toEqual(before);
  });
});

describe('a symlink that stays inside the root', () => {
  const search = async (id: string, query: string) => {
    const { data } = await gql(server.app.url, Search, { collectionId: id, query }, server.tokens.root);
    if (data?.search.__typename !== 'SearchSuccess') throw new Error(JSON.stringify(data));
    return data.search.hits;
  };

  it('is accepted as the source folder, and its files are indexed', async () => {
    const id = await createCollection(server.app.url, server.tokens.alice, { name: 'aliased' });
    const op = await startOk(server.app.url, server.tokens.alice, 'collection.index', {
      collectionId: id,
      source: { kind: 'folder', path: 'alias' },
    });
    expect(await settle(server.app.url, server.tokens.alice, op.id)).toMatchObject({
      status: 'COMPLETED',
      result: { source: 'folder:alias', documents: 2, added: 2 },
    });
    const hits = await search(id, 'aardvark');
    expect(hits.map((hit) => hit.document)).toMatchObject([{ source: 'folder:alias', externalId: 'a.md' }]);
  });

  it('is accepted as a file inside the source folder', async () => {
    const id = await createCollection(server.app.url, server.tokens.alice, { name: 'mixed' });
    const op = await startOk(server.app.url, server.tokens.alice, 'collection.index', {
      collectionId: id,
      source: { kind: 'folder', path: 'mixed' },
    });
    expect(await settle(server.app.url, server.tokens.alice, op.id)).toMatchObject({
      status: 'COMPLETED',
      result: { documents: 2, added: 2 },
    });
    const hits = await search(id, 'badgers');
    expect(hits.map((hit) => hit.document.externalId)).toEqual(['linked.txt']);
  });
});

describe('after every refused attempt', () => {
  it('no collection holds the secret word, and no document mentions it', async () => {
    const { data } = await gql(server.app.url, ListCollections, { first: 100 }, server.tokens.root);
    const ids = data!.collections.edges.map((edge) => edge.node.id);
    expect(ids.length).toBeGreaterThanOrEqual(3);
    for (const id of ids) {
      const { data: found } = await gql(
        server.app.url,
        Search,
        { collectionId: id, query: SECRET },
        server.tokens.root,
      );
      expect(found?.search).toEqual({ __typename: 'SearchSuccess', hits: [] });
    }
    const leaked = await server.db.query(
      `SELECT id FROM "Document" WHERE content ILIKE $1 OR title ILIKE $1 OR metadata::text ILIKE $1`,
      [`%${SECRET}%`],
    );
    expect(leaked).toEqual([]);
  });
});
