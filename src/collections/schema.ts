import { refused } from '../audit/denials.ts';
import { collectionsWhere, documentsWhere } from '../auth/visibility.ts';
import { visible } from '../auth/visible.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import { CollectionStatus } from '../generated/prisma/enums.ts';
import { builder } from '../graphql/builder.ts';
import { COUNT_CAP, capped, connectionNames } from '../graphql/connections.ts';
import { parseGlobalId } from '../graphql/ids.ts';
import { type SearchHit, searchCollection, toHit, tooComplex } from './search.ts';
import { SearchTimeoutError, SearchTooComplexError } from './search-schema.ts';

/** GraphQL types and queries of the collections domain. Collections change only through operations. */

const CollectionStatusEnum = builder.enumType(CollectionStatus, {
  name: 'CollectionStatus',
  description:
    'EMPTY (no documents), READY, BUSY (an operation is writing to it: see busyOperation), INCOMPLETE (the last operation stopped early: see statusMessage).',
});

const CollectionRef = builder.prismaNode('Collection', {
  id: { field: 'id' },
  nullable: true,
  description: 'Text documents indexed for full-text search. Changed only through collection.* operations.',
  findUnique: (id, context): Prisma.CollectionWhereUniqueInput => ({
    id,
    AND: [collectionsWhere(context.viewer)],
  }),
  fields: (t) => ({
    name: t.exposeString('name'),
    owner: t.relation('owner', {
      description: 'Its owner (only the name, unless it is you or you are an admin).',
    }),
    isPublic: t.exposeBoolean('isPublic', { description: 'Anyone may see and search it.' }),
    language: t.exposeString('language', { description: 'Text search language of the index in service.' }),
    chunkSize: t.exposeInt('chunkSize', {
      description: 'Target characters per chunk in the index in service.',
    }),
    status: t.field({
      type: CollectionStatusEnum,
      resolve: async (collection, _, context) => {
        if (collection.status !== 'BUSY' || !collection.busyOperationId) return collection.status;
        // The writer may have ended without releasing it (its process died): then it is INCOMPLETE.
        const holder = await context.resources.db.operation.findUnique({
          where: { id: collection.busyOperationId },
          select: { status: true },
        });
        return holder && (holder.status === 'PENDING' || holder.status === 'PROCESSING')
          ? 'BUSY'
          : 'INCOMPLETE';
      },
    }),
    statusMessage: t.exposeString('statusMessage', {
      nullable: true,
      description: 'What the last operation did, or how far it got when it stopped early.',
    }),
    documentCount: t.exposeInt('documentCount'),
    chunkCount: t.exposeInt('chunkCount', { description: 'Chunks in the index in service.' }),
    generation: t.exposeInt('activeGeneration', {
      description: 'Generation of the index in service; each reindex adds one.',
    }),
    busyOperation: t.prismaField({
      type: 'Operation',
      nullable: true,
      description: 'The operation writing to the collection now, if any (and visible to you).',
      resolve: (query, collection, _, context) =>
        visible(context).operation(collection.busyOperationId, query),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    documents: t.prismaConnection(
      {
        type: 'Document',
        cursor: 'id',
        description: 'Its documents, by source then external id.',
        resolve: (query, collection, _, context) =>
          context.resources.db.document.findMany({
            ...query,
            where: { collectionId: collection.id },
            orderBy: [{ source: 'asc' }, { externalId: 'asc' }, { id: 'asc' }],
          }),
        totalCount: (collection, _, context) =>
          capped(
            context.resources.db.document.count({ where: { collectionId: collection.id }, take: COUNT_CAP }),
          ),
      },
      DocumentConnection,
    ),
  }),
});

const DocumentRef = builder.prismaNode('Document', {
  id: { field: 'id' },
  nullable: true,
  description: 'One text document of a collection.',
  findUnique: (id, context): Prisma.DocumentWhereUniqueInput => ({
    id,
    AND: [documentsWhere(context.viewer)],
  }),
  fields: (t) => ({
    source: t.exposeString('source', { description: 'Inline source name, folder:<path>, or as exported.' }),
    externalId: t.exposeString('externalId', {
      description: 'Unique within its source (a file: its relative path).',
    }),
    title: t.exposeString('title'),
    content: t.exposeString('content'),
    contentHash: t.exposeString('contentHash', { description: 'sha256 of title, content and metadata.' }),
    metadata: t.expose('metadata', { type: 'JSON' }),
    collection: t.prismaField({
      type: 'Collection',
      nullable: true,
      description: 'The collection it belongs to (null only if that stopped being visible to you).',
      resolve: (query, document, _, context) => visible(context).collection(document.collectionId, query),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

const documentConnection = connectionNames('Document', 'documents');
const DocumentConnection = builder.connectionObject(
  { type: DocumentRef, ...documentConnection.connection },
  documentConnection.edge,
);

const collectionConnection = connectionNames('Collection', 'collections');
const CollectionConnection = builder.connectionObject(
  { type: CollectionRef, ...collectionConnection.connection },
  collectionConnection.edge,
);

const SearchHitRef = builder.objectRef<SearchHit>('SearchHit').implement({
  description: 'A document matching a search, with its best passage.',
  fields: (t) => ({
    document: t.field({ type: DocumentRef, resolve: (hit) => hit.document }),
    score: t.exposeFloat('score', { description: 'Relevance (ts_rank_cd); higher is better.' }),
    snippet: t.exposeString('snippet', { description: 'Matching passages with terms in <mark>…</mark>.' }),
  }),
});

const SearchSuccess = builder
  .objectRef<{ collectionId: string; hits: SearchHit[] }>('SearchSuccess')
  .implement({
    fields: (t) => ({
      hits: t.field({ type: [SearchHitRef], resolve: (success) => success.hits }),
      collection: t.prismaField({
        type: 'Collection',
        nullable: true,
        description: 'The collection searched (null only if it stopped being visible to you).',
        resolve: (query, success, _, context) => visible(context).collection(success.collectionId, query),
      }),
    }),
  });

builder.prismaObjectField('Operation', 'collection', (t) =>
  t.prismaField({
    type: 'Collection',
    nullable: true,
    description:
      'The collection the operation acts on, when it has one that still exists and you may see it.',
    resolve: (query, operation, _, context) => visible(context).collection(operation.collectionId, query),
  }),
);

builder.queryFields((t) => ({
  collections: t.prismaConnection(
    {
      type: 'Collection',
      cursor: 'id',
      description: 'Collections you may see (yours, public ones; admins: all), newest first.',
      authScopes: { loggedIn: true },
      resolve: (query, _, __, context) =>
        context.resources.db.collection.findMany({
          ...query,
          where: collectionsWhere(context.viewer),
          orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        }),
      totalCount: (_, __, context) =>
        capped(
          context.resources.db.collection.count({ where: collectionsWhere(context.viewer), take: COUNT_CAP }),
        ),
    },
    CollectionConnection,
  ),
  collection: t.prismaField({
    type: 'Collection',
    nullable: true,
    description: 'One collection, or null when it does not exist or is not visible to you.',
    authScopes: { loggedIn: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _, { id }, context) => {
      const uuid = parseGlobalId(String(id), 'Collection');
      const { db } = context.resources;
      const found = await db.collection.findFirst({
        ...query,
        where: { AND: [{ id: uuid }, collectionsWhere(context.viewer)] },
      });
      // A collection that exists but is not the viewer's to see: the denied read is audited.
      if (!found && context.viewer && (await db.collection.count({ where: { id: uuid } }))) {
        await refused(
          context.resources,
          context.viewer,
          'ACCESS_DENIED',
          { what: 'collection', collectionId: uuid },
          new NotFoundError('Collection', String(id)),
        );
      }
      return found;
    },
  }),
  search: t.field({
    type: SearchSuccess,
    description:
      'Full-text search in a collection, best first. Web-style syntax: words, "a phrase", or, -excluded. Bounded: OPSGRAPH_SEARCH_MAX_QUERY_LENGTH characters, OPSGRAPH_SEARCH_MAX_TERMS words, OPSGRAPH_SEARCH_MAX_PHRASES phrases, OPSGRAPH_SEARCH_TIMEOUT_MS.',
    authScopes: { loggedIn: true },
    errors: {
      types: [ValidationError, NotFoundError, SearchTooComplexError, SearchTimeoutError],
      directResult: true,
      union: { name: 'SearchResult' },
    },
    args: {
      collectionId: t.arg.id({ required: true }),
      query: t.arg.string({
        required: true,
        description: '1–1000 characters (OPSGRAPH_SEARCH_MAX_QUERY_LENGTH).',
      }),
      first: t.arg.int({ required: false, description: 'At most this many hits (1–100). Default 10.' }),
    },
    resolve: async (_, { collectionId, query, first }, context) => {
      const { config, db } = context.resources;
      const problems = [];
      if (query.trim().length === 0 || query.length > config.searchMaxQueryLength) {
        problems.push({ path: ['query'], message: `must be 1 to ${config.searchMaxQueryLength} characters` });
      }
      if (query.includes('\u0000'))
        problems.push({ path: ['query'], message: 'must not contain NUL characters' });
      if (first !== null && first !== undefined && (first < 1 || first > 100)) {
        problems.push({ path: ['first'], message: 'must be between 1 and 100' });
      }
      if (problems.length) throw new ValidationError(problems);
      const limits = {
        maxQueryLength: config.searchMaxQueryLength,
        maxTerms: config.searchMaxTerms,
        maxPhrases: config.searchMaxPhrases,
        timeoutMs: config.searchTimeoutMs,
      };
      const refused = tooComplex(query, limits);
      if (refused) throw refused;
      const id = parseGlobalId(String(collectionId), 'Collection', ['collectionId']);
      const visible = await db.collection.findFirst({
        where: { AND: [{ id }, collectionsWhere(context.viewer)] },
        select: { id: true },
      });
      if (!visible) throw new NotFoundError('Collection', String(collectionId));
      const rows = await searchCollection(db, id, query, first ?? 10, limits.timeoutMs);
      return { collectionId: id, hits: rows.map(toHit) };
    },
  }),
}));
