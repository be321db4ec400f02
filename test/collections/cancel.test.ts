import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { graphql } from '../gql/index.ts';
import { gql } from '../support/client.ts';
import {
  collectionFolders,
  createCollection,
  settle,
  startOk,
  startRaw,
  writeFiles,
} from '../support/collections.ts';
import { CancelOperation, GetOperation } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';

const folders = collectionFolders();
const server = useServer({ sourcesRoot: folders.sourcesRoot, storageDir: folders.storageDir });

/** A collection with the operation writing to it, if any. */
const CollectionWriter = graphql(`
  query CollectionWriter($id: ID!) {
    collection(id: $id) { ...CollectionFields busyOperation { id status } }
  }
`);

const TOTAL = 2000;
const BATCH = 20;
/** Cancel once this many documents are reported: well into the run (about 6 s here), far from its end. */
const CANCEL_AFTER = 200;
const source = { kind: 'folder', path: 'many' } as const;

beforeAll(() => {
  const files: Record<string, string> = {};
  for (let i = 0; i < TOTAL; i += 1) {
    files[`part-${Math.floor(i / 100)}/file-${String(i).padStart(4, '0')}.txt`] =
      `File ${i} of the archive. It mentions kestrel ${i % 10} and granite ${i % 7} along the shore.`;
  }
  writeFiles(join(folders.sourcesRoot, 'many'), files);
});

const uuidOf = (id: string) => Buffer.from(id, 'base64').toString().split(':')[1]!;

const operation = async (id: string, token = server.tokens.alice) =>
  (await gql(server.app.url, GetOperation, { id }, token)).data?.operation ?? null;

const writer = async (id: string) => {
  const { data } = await gql(server.app.url, CollectionWriter, { id }, server.tokens.alice);
  if (!data?.collection) throw new Error(`collection ${id} not visible`);
  return data.collection;
};

/** Documents and chunks (of the active generation) of a collection, counted in the database. */
async function rows(collectionId: string) {
  const [counted] = await server.db.query<{ documents: number; chunks: number }>(
    `SELECT (SELECT count(*)::int FROM "Document" WHERE "collectionId" = c.id) AS documents,
            (SELECT count(*)::int FROM "Chunk" WHERE "collectionId" = c.id AND generation = c."activeGeneration") AS chunks
       FROM "Collection" c WHERE c.id = $1`,
    [uuidOf(collectionId)],
  );
  return counted!;
}

/** Waits until the operation is PROCESSING and has reported at least `atLeast` documents. */
async function waitForProgress(id: string, atLeast: number) {
  await vi.waitFor(
    async () => {
      const read = await operation(id);
      expect(read?.status).toBe('PROCESSING');
      expect(read?.progress.current).toBeGreaterThanOrEqual(atLeast);
    },
    { timeout: 30_000, interval: 20 },
  );
  return (await operation(id))!.progress;
}

/** Waits until no operation holds the collection any more, and returns it. */
async function waitReleased(collectionId: string) {
  await vi.waitFor(async () => expect((await writer(collectionId)).busyOperation).toBeNull(), {
    timeout: 10_000,
    interval: 20,
  });
  return writer(collectionId);
}

const startIndex = (collectionId: string, input: Record<string, unknown> = { source, batchSize: BATCH }) =>
  startOk(server.app.url, server.tokens.alice, 'collection.index', { collectionId, ...input });

/** A collection holding two documents, and a second collection.index on it, settled. */
async function refusedIndex(name: string) {
  const collectionId = await createCollection(server.app.url, server.tokens.alice, { name });
  const documents = [
    { externalId: 'a', content: 'first' },
    { externalId: 'b', content: 'second' },
  ];
  const first = await startIndex(collectionId, { source: { kind: 'inline', name: 'letters', documents } });
  expect((await settle(server.app.url, server.tokens.alice, first.id)).status).toBe('COMPLETED');
  expect((await writer(collectionId)).status).toBe('READY');
  const again = await startRaw(server.app.url, server.tokens.alice, 'collection.index', {
    collectionId,
    source: { kind: 'inline', name: 'other', documents: [{ externalId: 'c', content: 'third' }] },
  });
  if (again.__typename !== 'StartOperationSuccess') throw new Error(JSON.stringify(again));
  const refused = await settle(server.app.url, server.tokens.alice, again.operation.id);
  return { collectionId, refused };
}

describe('cancelling collection.index', () => {
  it('stops at a batch boundary, keeps the committed batches, and collection.append finishes the job', async () => {
    const collectionId = await createCollection(server.app.url, server.tokens.alice, { name: 'archive' });
    const index = await startIndex(collectionId);
    const seen = await waitForProgress(index.id, CANCEL_AFTER);
    expect(seen.total).toBe(TOTAL);
    expect(seen.current).toBeLessThan(TOTAL);

    const cancelledAt = Date.now();
    const { data } = await gql(server.app.url, CancelOperation, { id: index.id }, server.tokens.alice);
    if (data?.cancelOperation.__typename !== 'CancelOperationSuccess') throw new Error(JSON.stringify(data));
    expect(data.cancelOperation.operation.status).toBe('CANCELLED');

    const stopped = await waitReleased(collectionId);
    const counted = await rows(collectionId);
    console.log(
      `cancel sent at ${seen.current}/${seen.total} documents reported; ${counted.documents} documents kept, ` +
        `collection released ${Date.now() - cancelledAt} ms after the cancel: "${stopped.statusMessage}"`,
    );
    expect((await operation(index.id))?.status).toBe('CANCELLED');
    expect(stopped.status).toBe('INCOMPLETE');
    expect(stopped.documentCount).toBe(counted.documents);
    expect(stopped.chunkCount).toBe(counted.chunks);
    expect(counted.documents).toBeGreaterThanOrEqual(seen.current);
    expect(counted.documents).toBeLessThan(TOTAL);
    expect(counted.documents % BATCH).toBe(0);
    // Whether the bus's abort or the next batch's lost claim stops it first, it says "cancelled".
    expect(stopped.statusMessage).toMatch(/^collection\.index was cancelled after /);
    expect(stopped.statusMessage).toMatch(
      new RegExp(` after ${counted.documents} of ${TOTAL} documents; committed batches were kept$`),
    );
    // Nothing is written after the collection was released.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await rows(collectionId)).toEqual(counted);

    const append = await startOk(server.app.url, server.tokens.alice, 'collection.append', {
      collectionId,
      source,
      batchSize: 200,
    });
    const appended = await settle(server.app.url, server.tokens.alice, append.id, 60_000);
    expect(appended.status).toBe('COMPLETED');
    expect(appended.result).toMatchObject({
      documents: TOTAL,
      unchanged: counted.documents,
      added: TOTAL - counted.documents,
      updated: 0,
    });
    const finished = await writer(collectionId);
    expect(finished).toMatchObject({ status: 'READY', documentCount: TOTAL, busyOperation: null });
    expect(await rows(collectionId)).toEqual({ documents: TOTAL, chunks: finished.chunkCount });
  });

  it('refuses a cancel from a user who can see neither the operation nor its collection', async () => {
    const collectionId = await createCollection(server.app.url, server.tokens.alice, { name: 'private' });
    const index = await startIndex(collectionId);
    await waitForProgress(index.id, 1);

    const { data } = await gql(server.app.url, CancelOperation, { id: index.id }, server.tokens.bob);
    expect(data?.cancelOperation).toMatchObject({ __typename: 'NotFoundError', id: index.id });
    expect(await operation(index.id, server.tokens.bob)).toBeNull();
    expect((await operation(index.id))?.status).toBe('PROCESSING');
    expect((await writer(collectionId)).status).toBe('BUSY');

    // An admin may cancel anyone's operation.
    const byRoot = await gql(server.app.url, CancelOperation, { id: index.id }, server.tokens.root);
    expect(byRoot.data?.cancelOperation.__typename).toBe('CancelOperationSuccess');
    expect((await waitReleased(collectionId)).status).toBe('INCOMPLETE');
  });

  it('fails collection.index on a collection that already holds documents with COLLECTION_NOT_EMPTY', async () => {
    const { collectionId, refused } = await refusedIndex('filled');
    expect(refused.status).toBe('FAILED');
    expect(refused.attempt).toBe(1);
    expect(refused.error?.code).toBe('COLLECTION_NOT_EMPTY');
    expect(refused.error?.message).toMatch(/collection\.append/);
    expect(await rows(collectionId)).toEqual({ documents: 2, chunks: 2 });
    expect(await writer(collectionId)).toMatchObject({ documentCount: 2, busyOperation: null });
  });

  it('leaves the collection READY when collection.index is refused', async () => {
    const { collectionId } = await refusedIndex('still-ready');
    expect(await writer(collectionId)).toMatchObject({ status: 'READY', documentCount: 2 });
  });
});
