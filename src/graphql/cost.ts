import { type GraphQLField, type GraphQLOutputType, getNamedType, isListType, isNonNullType } from 'graphql';

/** Page size of a connection asked for without `first`/`last` (the builder's default). */
export const DEFAULT_PAGE_SIZE = 20;
/** Largest page a connection returns (the builder's `maxConnectionSize`). */
export const MAX_PAGE_SIZE = 100;
/** Assumed size of a list field with a `first` argument that was not given (events: 100). */
const DEFAULT_FIRST = 100;
/** Assumed size of a list field without a size argument. */
const DEFAULT_LIST_SIZE = 10;

const isList = (type: GraphQLOutputType): boolean =>
  isListType(type) || (isNonNullType(type) && isListType(type.ofType));

/**
 * The price of one field for @pothos/plugin-complexity, for every field of the schema in one place:
 * each field costs 1, and what is selected below a list or connection is multiplied by its size —
 * `first`/`last` when given (connections capped at their page limit), else the default page
 * (connections 20, lists with a `first` argument 100, other lists 10); `nodes(ids)` by the ids.
 * A connection's `edges` do not multiply again.
 */
export function fieldCost(
  args: Record<string, unknown>,
  _context: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: any context and args (the plugin passes its own)
  field: GraphQLField<unknown, any, any>,
): { field: number; multiplier: number } {
  const typeName = getNamedType(field.type).name;
  const connection = typeName.endsWith('Connection');
  const size =
    typeof args.first === 'number' ? args.first : typeof args.last === 'number' ? args.last : undefined;
  if (size !== undefined) {
    return { field: 1, multiplier: Math.max(0, connection ? Math.min(size, MAX_PAGE_SIZE) : size) };
  }
  if (Array.isArray(args.ids)) return { field: 1, multiplier: args.ids.length };
  if (connection) return { field: 1, multiplier: DEFAULT_PAGE_SIZE };
  if (field.name === 'edges' && typeName.endsWith('Edge')) return { field: 1, multiplier: 1 };
  if (!isList(field.type)) return { field: 1, multiplier: 1 };
  return {
    field: 1,
    multiplier: field.args.some((arg) => arg.name === 'first') ? DEFAULT_FIRST : DEFAULT_LIST_SIZE,
  };
}
