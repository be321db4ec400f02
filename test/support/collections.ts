import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect, vi } from 'vitest';
import type { GetOperationQuery } from '../gql/graphql.ts';
import { graphql } from '../gql/index.ts';
import { gql } from './client.ts';
import { GetOperation, StartOperation } from './documents.ts';

/** GraphQL documents and helpers for the collection tests. */

export const CollectionFields = graphql(`
  fragment CollectionFields on Collection {
    id
    name
    isPublic
    language
    chunkSize
    status
    statusMessage
    documentCount
    chunkCount
    generation
    owner { name }
  }
`);

export const GetCollection = graphql(`
  query GetCollection($id: ID!) {
    collection(id: $id) { ...CollectionFields }
  }
`);

export const ListCollections = graphql(`
  query ListCollections($first: Int, $after: String) {
    collections(first: $first, after: $after) {
      edges { cursor node { ...CollectionFields } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const Search = graphql(`
  query Search($collectionId: ID!, $query: String!, $first: Int) {
    search(collectionId: $collectionId, query: $query, first: $first) {
      __typename
      ... on SearchSuccess {
        hits { score snippet document { id source externalId title metadata } }
      }
      ... on NotFoundError { message resource }
      ... on ValidationError { message problems { path message } }
    }
  }
`);

/** Folders for one test file: a sources root and an export folder (config overrides). */
export function collectionFolders() {
  const base = mkdtempSync(join(tmpdir(), 'opsgraph-collections-'));
  const sourcesRoot = join(base, 'sources');
  const storageDir = join(base, 'exports');
  mkdirSync(sourcesRoot, { recursive: true });
  mkdirSync(storageDir, { recursive: true });
  return { base, sourcesRoot, storageDir };
}

/** Writes files (path relative to `root` → content), creating folders as needed. */
export function writeFiles(root: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
}

type StartResult = NonNullable<Awaited<ReturnType<typeof start>>['data']>['startOperation'];

const start = (url: string, token: string, type: string, input: unknown) =>
  gql(url, StartOperation, { input: { type, input } }, token);

/** Starts an operation and returns the union result as the API answered it. */
export async function startRaw(
  url: string,
  token: string,
  type: string,
  input: unknown,
): Promise<StartResult> {
  const response = await start(url, token, type, input);
  if (!response.data) throw new Error(JSON.stringify(response));
  return response.data.startOperation;
}

/** Starts an operation that must be accepted; returns the operation. */
export async function startOk(url: string, token: string, type: string, input: unknown) {
  const result = await startRaw(url, token, type, input);
  if (result.__typename !== 'StartOperationSuccess')
    throw new Error(`${type} refused: ${JSON.stringify(result)}`);
  return result.operation;
}

/** Waits until the operation reaches a terminal status and returns it. */
export async function settle(url: string, token: string, id: string, timeout = 30_000) {
  let last: GetOperationQuery['operation'] | undefined;
  await vi.waitFor(
    async () => {
      const read = await gql(url, GetOperation, { id }, token);
      last = read.data?.operation;
      expect(['COMPLETED', 'FAILED', 'CANCELLED']).toContain(read.data?.operation?.status);
    },
    { timeout, interval: 50 },
  );
  if (!last) throw new Error(`operation ${id} not found`);
  return last;
}

/** Creates a collection through `collection.create` and returns its global id. */
export async function createCollection(
  url: string,
  token: string,
  input: Record<string, unknown>,
): Promise<string> {
  const operation = await startOk(url, token, 'collection.create', input);
  expect(operation.status).toBe('COMPLETED');
  return (operation.result as { collectionId: string }).collectionId;
}
