import {
  coerceInputValue,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLInputType,
  isInputObjectType,
  isListType,
  isNonNullType,
  Kind,
  type OperationDefinitionNode,
  typeFromAST,
  type VariableDefinitionNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { slicer } from '../event-loop.ts';

/**
 * Variable coercion of large lists in slices (issue 9, point 5). graphql-js coerces an operation's
 * variables in one synchronous walk before the first resolver runs: for the largest batch (1,000
 * items, 10,000 dependencies) that is one turn of 10–40 ms. This plugin coerces, ahead of the
 * executor, every variable holding a list of more than {@link LARGE_LIST} values: graphql-js's own
 * `coerceInputValue` on each element, awaiting a slice (src/event-loop.ts) between them, and on the
 * rest of the value with those lists left empty (so unknown fields, defaults, required fields and
 * `@oneOf` are checked by graphql-js exactly as before). The executor then receives the coerced
 * value under a copy of the operation that declares the variable `JSON!` (whose coercion is the
 * identity): arguments read a variable's value as it is, and the document was validated with its
 * real types before. When the slices find any problem, nothing is changed and the executor coerces
 * (and reports) as it always did.
 */

/** Lists longer than this are coerced element by element in slices. */
const LARGE_LIST = 64;

/** The value's large lists are reachable through input objects only (not inside lists or JSON). */
function hasLargeList(value: unknown, type: GraphQLInputType): boolean {
  const inner = isNonNullType(type) ? type.ofType : type;
  if (isListType(inner)) return Array.isArray(value) && value.length > LARGE_LIST;
  if (!isInputObjectType(inner) || value === null || typeof value !== 'object' || Array.isArray(value))
    return false;
  const fields = inner.getFields();
  for (const key of Object.keys(value)) {
    const field = fields[key];
    if (field && hasLargeList((value as Record<string, unknown>)[key], field.type)) return true;
  }
  return false;
}

/** Thrown inside the sliced coercion when graphql-js reports a problem: the executor reports it. */
const INVALID = Symbol('invalid');

const fail = () => {
  throw INVALID;
};

/** `value` coerced to `type` as graphql-js would, with large lists in slices. */
async function coerceSliced(
  value: unknown,
  type: GraphQLInputType,
  slice: () => Promise<void>,
): Promise<unknown> {
  if (!hasLargeList(value, type)) return coerceInputValue(value, type, fail);
  const inner = isNonNullType(type) ? type.ofType : type;
  if (isListType(inner)) {
    const items = value as unknown[];
    const coerced: unknown[] = new Array(items.length);
    for (let i = 0; i < items.length; i += 1) {
      await slice();
      coerced[i] = await coerceSliced(items[i], inner.ofType, slice);
    }
    return coerced;
  }
  // An input object with large lists below: the rest by graphql-js, each large list on its own.
  if (!isInputObjectType(inner)) return fail();
  const fields = inner.getFields();
  const record = value as Record<string, unknown>;
  const rest: Record<string, unknown> = { ...record };
  const large: string[] = [];
  for (const key of Object.keys(record)) {
    const field = fields[key];
    if (field && hasLargeList(record[key], field.type)) {
      large.push(key);
      // An empty list where a list is: valid for any list type, so the rest is checked as sent.
      rest[key] = isListType(isNonNullType(field.type) ? field.type.ofType : field.type) ? [] : record[key];
    }
  }
  const coerced = coerceInputValue(rest, inner, fail) as Record<string, unknown>;
  for (const key of large) {
    await slice();
    coerced[key] = await coerceSliced(record[key], (fields[key] as { type: GraphQLInputType }).type, slice);
  }
  return coerced;
}

/** The operation to run: the one named, or the only one. */
function operationOf(document: DocumentNode, name: string | null | undefined) {
  const operations = document.definitions.filter(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION,
  );
  return name
    ? operations.find((operation) => operation.name?.value === name)
    : operations.length === 1
      ? operations[0]
      : undefined;
}

const JSON_TYPE = {
  kind: Kind.NON_NULL_TYPE,
  type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: 'JSON' } },
} as const;

/**
 * The document with `operation`'s variables `names` declared `JSON!` (a copy: the parsed document
 * is shared through the parse cache), remembered per document and names.
 */
const retyped = new WeakMap<DocumentNode, Map<string, DocumentNode>>();
function withJsonVariables(document: DocumentNode, operation: OperationDefinitionNode, names: string[]) {
  const key = `${operation.name?.value ?? ''}\0${names.join('\0')}`;
  let byKey = retyped.get(document);
  const known = byKey?.get(key);
  if (known) return known;
  const variableDefinitions = (operation.variableDefinitions ?? []).map(
    (definition): VariableDefinitionNode =>
      names.includes(definition.variable.name.value) ? { ...definition, type: JSON_TYPE } : definition,
  );
  const copy: DocumentNode = {
    ...document,
    definitions: document.definitions.map((definition) =>
      definition === operation ? { ...operation, variableDefinitions } : definition,
    ),
  };
  if (!byKey) {
    byKey = new Map();
    retyped.set(document, byKey);
  }
  if (byKey.size < 16) byKey.set(key, copy);
  return copy;
}

type Large = { operation: OperationDefinitionNode; variables: { name: string; type: GraphQLInputType }[] };

/** The variables holding a large list, or undefined (most requests: a look at a few fields). */
function largeVariables(args: ExecutionArgs): Large | undefined {
  const raw = args.variableValues;
  if (!raw || typeof raw !== 'object' || !args.schema.getType('JSON')) return undefined;
  const operation = operationOf(args.document, args.operationName);
  if (!operation?.variableDefinitions?.length) return undefined;
  const variables: Large['variables'] = [];
  for (const definition of operation.variableDefinitions) {
    const name = definition.variable.name.value;
    if (!Object.hasOwn(raw, name)) continue;
    const type = typeFromAST(args.schema, definition.type) as GraphQLInputType | undefined;
    if (type && hasLargeList(raw[name], type)) variables.push({ name, type });
  }
  return variables.length ? { operation, variables } : undefined;
}

/**
 * The execution arguments with the large variables coerced in slices, or the arguments as they
 * were when graphql-js found a problem (the executor reports it).
 */
async function coerceAhead(args: ExecutionArgs, { operation, variables }: Large): Promise<ExecutionArgs> {
  const raw = args.variableValues as Record<string, unknown>;
  const slice = slicer();
  const variableValues: Record<string, unknown> = { ...raw };
  try {
    for (const { name, type } of variables) variableValues[name] = await coerceSliced(raw[name], type, slice);
  } catch (error) {
    if (error === INVALID) return args;
    throw error;
  }
  await slice();
  const names = variables.map(({ name }) => name);
  return { ...args, document: withJsonVariables(args.document, operation, names), variableValues };
}

/**
 * Coerces large variables ahead of the executor, in slices (see the top of this file); other
 * executions go straight on.
 */
export function useSlicedCoercion(): Plugin {
  return {
    onExecute({ executeFn, setExecuteFn }) {
      setExecuteFn((args: ExecutionArgs) => {
        const large = largeVariables(args);
        return large ? coerceAhead(args, large).then(executeFn) : executeFn(args);
      });
    },
  };
}
