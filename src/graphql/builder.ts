import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import ErrorsPlugin from '@pothos/plugin-errors';
import PrismaPlugin from '@pothos/plugin-prisma';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { GraphQLError } from 'graphql';
import { DateTimeResolver, JSONResolver, SafeIntResolver } from 'graphql-scalars';
import type PrismaTypes from '../generated/pothos-types.ts';
import { getDatamodel } from '../generated/pothos-types.ts';
import type { Context } from './context.ts';
import { fieldCost } from './cost.ts';

/** The one schema builder: context, scalars, auth scopes and plugins. */
export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  AuthScopes: { loggedIn: boolean };
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
    SafeInt: { Input: number; Output: number };
  };
}>({
  defaultFieldNullability: false,
  plugins: [ScopeAuthPlugin, ErrorsPlugin, PrismaPlugin, RelayPlugin, ComplexityPlugin],
  // Every field is priced by fieldCost; the limit is enforced before execution by cost.ts
  // (useQueryCost), so the plugin's own per-resolver check is off.
  complexity: { fieldComplexity: fieldCost, disabled: true },
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (context) => ({ loggedIn: context.viewer !== null }),
    unauthorizedError: () =>
      new GraphQLError('Authentication required: send a bearer token', {
        extensions: { code: 'UNAUTHENTICATED' },
      }),
  },
  errors: { defaultTypes: [] },
  prisma: {
    client: (context) => context.resources.db,
    dmmf: getDatamodel(),
    filterConnectionTotalCount: true,
    // Connections return at most 100 nodes a page (first/last above it are capped); default 20.
    maxConnectionSize: 100,
    defaultConnectionSize: 20,
    onUnusedQuery: null,
  },
  // Descriptions of what the relay plugin generates, so the printed SDL describes every field.
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodeTypeOptions: { description: 'An object with a global ID, found again with node(id).' },
    idFieldOptions: { description: 'Global ID: opaque, stable, accepted by node(id).' },
    nodeQueryOptions: {
      description: 'The object with this global ID, or null when it does not exist or you may not see it.',
      args: { id: { description: 'A global ID (of an Operation, Collection, Document or Schedule).' } },
    },
    nodesQueryOptions: {
      description: 'The objects with these global IDs, in order; null for each you may not see.',
      args: { ids: { description: 'Global IDs; the query cost counts one node per ID.' } },
    },
    pageInfoTypeOptions: {
      description: 'Where a page of a connection sits: whether more pages exist, and its cursors.',
    },
    hasNextPageFieldOptions: {
      description: 'True when more nodes follow this page (ask with after: endCursor).',
    },
    hasPreviousPageFieldOptions: {
      description: 'True when nodes precede this page (ask with before: startCursor).',
    },
    startCursorFieldOptions: { description: 'Cursor of the first node of the page; null when it is empty.' },
    endCursorFieldOptions: { description: 'Cursor of the last node of the page; null when it is empty.' },
    edgesFieldOptions: { description: 'The nodes of this page, each with its cursor.' },
    pageInfoFieldOptions: { description: 'Whether more pages exist, and the cursors to ask for them.' },
    cursorFieldOptions: { description: 'Opaque position of this node, for after/before.' },
    nodeFieldOptions: { description: 'The node.' },
    firstArgOptions: { description: 'At most this many nodes from the start (or from after).' },
    afterArgOptions: { description: 'Only nodes after this cursor (an endCursor or edge cursor).' },
    lastArgOptions: { description: 'At most this many nodes from the end (or before before).' },
    beforeArgOptions: { description: 'Only nodes before this cursor (a startCursor or edge cursor).' },
  },
});

builder.addScalarType('DateTime', DateTimeResolver);
builder.addScalarType('JSON', JSONResolver);
builder.addScalarType('SafeInt', SafeIntResolver);

builder.queryType({ description: 'Reads: operations, collections, schedules, credits, the audit log.' });
builder.mutationType({
  description: 'Changes: each takes one input object and answers a result union of success and typed errors.',
});
builder.subscriptionType({
  description: 'Live updates over WebSocket (graphql-ws) or Server-Sent Events.',
});
