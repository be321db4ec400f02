import { createComplexityRule } from '@pothos/plugin-complexity';
import {
  type DocumentNode,
  type GraphQLError,
  type GraphQLField,
  type GraphQLOutputType,
  type GraphQLSchema,
  getNamedType,
  isListType,
  isNonNullType,
  validate,
  visit,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { limitError } from './limits.ts';

/** Page size of a connection asked for without `first`/`last` (the builder's default). */
export const DEFAULT_PAGE_SIZE = 20;
/** Largest page a connection returns (the builder's `maxConnectionSize`). */
export const MAX_PAGE_SIZE = 100;
/** Connections whose pages differ from the builder's: Operation.events (default 100, at most 1000). */
const PAGE_SIZES: Readonly<Record<string, { default: number; max: number }>> = {
  OperationEventConnection: { default: 100, max: 1000 },
};
/** Assumed size of a list field with a `first` argument that was not given. */
const DEFAULT_FIRST = 100;
/** Assumed size of a list field without a size argument. */
const DEFAULT_LIST_SIZE = 10;
/**
 * Output fields whose value may be a megabyte (Operation.input, Operation.result, Document.content)
 * and what each value costs: with the default limit of 50,000 one request reads at most ~500 of them.
 */
const HEAVY_FIELDS: ReadonlySet<string> = new Set(['input', 'result', 'content']);
export const HEAVY_FIELD_COST = 100;
/**
 * A connection's `totalCount`: one count that reads up to COUNT_CAP (10,000) index entries. Like
 * every field below a connection it is multiplied by the page size (the plugin prices a field by
 * its arguments only), so it costs 10 per node asked for — 200 at the default page — and a
 * connection multiplies by at least 1, so `first: 0 { totalCount }` still costs 10.
 */
export const TOTAL_COUNT_COST = 10;

/**
 * Mutations whose one call does bounded but large work, at a fixed price: `cancelOperations` may
 * cancel up to OPSGRAPH_BULK_CANCEL_MAX operations, so the default limit of 50,000 lets one request
 * call it at most 5 times.
 */
const FIXED_COSTS: ReadonlyMap<string, number> = new Map([['cancelOperations', 10_000]]);

const isList = (type: GraphQLOutputType): boolean =>
  isListType(type) || (isNonNullType(type) && isListType(type.ofType));

/**
 * The price of one field for @pothos/plugin-complexity, for every field of the schema in one place:
 * each field costs 1 (a heavy one HEAVY_FIELD_COST, a connection's totalCount TOTAL_COUNT_COST), and what is selected below a list or connection is multiplied by its size —
 * `first`/`last` when given (connections capped at their page limit), else the default page
 * (connections 20 — Operation.events 100 —, lists with a `first` argument 100, other lists 10); `nodes(ids)` by the ids.
 * A connection's `edges` and its edges' `node` cost nothing and do not multiply again.
 */
export function fieldCost(
  args: Record<string, unknown>,
  _context: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: any context and args (the plugin passes its own)
  field: GraphQLField<unknown, any, any>,
): { field: number; multiplier: number } {
  const typeName = getNamedType(field.type).name;
  if (HEAVY_FIELDS.has(field.name)) return { field: HEAVY_FIELD_COST, multiplier: 1 };
  const fixed = FIXED_COSTS.get(field.name);
  if (fixed !== undefined) return { field: fixed, multiplier: 1 };
  if (field.name === 'totalCount') return { field: TOTAL_COUNT_COST, multiplier: 1 };
  const connection = typeName.endsWith('Connection');
  const pages = PAGE_SIZES[typeName] ?? { default: DEFAULT_PAGE_SIZE, max: MAX_PAGE_SIZE };
  const size =
    typeof args.first === 'number' ? args.first : typeof args.last === 'number' ? args.last : undefined;
  if (size !== undefined) {
    return {
      field: 1,
      multiplier: connection ? Math.max(1, Math.min(size, pages.max)) : Math.max(0, size),
    };
  }
  if (Array.isArray(args.ids)) return { field: 1, multiplier: args.ids.length };
  if (connection) return { field: 1, multiplier: pages.default };
  // A connection's structure is free (the fields of its nodes are what cost): `edges` does not
  // multiply again, and an edge's `node` (no arguments, unlike Query.node) adds nothing.
  if (field.name === 'edges' && typeName.endsWith('Edge')) return { field: 0, multiplier: 1 };
  if (field.name === 'node' && field.args.length === 0) return { field: 0, multiplier: 1 };
  if (!isList(field.type)) return { field: 1, multiplier: 1 };
  return {
    field: 1,
    multiplier: field.args.some((arg) => arg.name === 'first') ? DEFAULT_FIRST : DEFAULT_LIST_SIZE,
  };
}

export interface CostOptions {
  /** Highest cost of one operation (see `fieldCost` in cost.ts for how fields are priced). */
  maxCost: number;
}

/** Names of the variables a document uses as `first`, `last` or `ids`: all the cost depends on. */
function sizeVariables(document: DocumentNode): string[] {
  const names = new Set<string>();
  visit(document, {
    Argument(node) {
      if (!['first', 'last', 'ids'].includes(node.name.value)) return;
      visit(node.value, {
        Variable(variable) {
          names.add(variable.name.value);
        },
      });
    },
  });
  return [...names].sort();
}

/** Checks an operation's cost: refusal errors, or none. */
export type CostCheck = (
  schema: GraphQLSchema,
  document: DocumentNode,
  variableValues: Record<string, unknown> | null | undefined,
  operationName: string | null | undefined,
) => readonly GraphQLError[];

/**
 * The cost of the operation about to run, from @pothos/plugin-complexity (which prices each field
 * with the builder's `fieldCost`, so `first` multiplies everything below it), or an error above
 * `maxCost`. It depends on the size variables, so it is remembered per parsed document (held by
 * the bounded parse cache) and their values (at most 64 combinations a document), never per
 * query text alone.
 */
export function createCostCheck({ maxCost }: CostOptions): CostCheck {
  const measured = new WeakMap<
    DocumentNode,
    { names: string[]; results: Map<string, readonly GraphQLError[]> }
  >();
  return (schema, document, variableValues, operationName) => {
    let entry = measured.get(document);
    if (!entry) {
      entry = { names: sizeVariables(document), results: new Map() };
      measured.set(document, entry);
    }
    const key = JSON.stringify([
      operationName ?? null,
      ...entry.names.map((name) => variableValues?.[name] ?? null),
    ]);
    const known = entry.results.get(key);
    if (known) return known;
    const rule = createComplexityRule({
      context: {},
      variableValues: variableValues ?? {},
      operationName,
      validate: ({ complexity }, report) => {
        if (complexity > maxCost)
          report(limitError('QUERY_TOO_COMPLEX', 'The query would cost too much', maxCost, complexity));
      },
    });
    const errors = validate(schema, document, [rule]).filter(
      (error) => error.extensions.code === 'QUERY_TOO_COMPLEX',
    );
    if (entry.results.size < 64) entry.results.set(key, errors);
    return errors;
  };
}

/** Refuses operations above the cost limit before execution (queries, mutations and subscriptions). */
export function useQueryCost(checkCost: CostCheck): Plugin {
  const guard = ({
    args,
    setResultAndStopExecution,
  }: {
    args: {
      schema: GraphQLSchema;
      document: DocumentNode;
      variableValues?: Record<string, unknown> | null;
      operationName?: string | null;
    };
    setResultAndStopExecution: (result: { errors: readonly GraphQLError[] }) => void;
  }) => {
    const errors = checkCost(args.schema, args.document, args.variableValues, args.operationName);
    if (errors.length) setResultAndStopExecution({ errors });
  };
  return { onExecute: guard, onSubscribe: guard } as Plugin;
}
