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
  relay: { clientMutationId: 'omit', cursorType: 'String' },
});

builder.addScalarType('DateTime', DateTimeResolver);
builder.addScalarType('JSON', JSONResolver);
builder.addScalarType('SafeInt', SafeIntResolver);

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
