import { decodeBase64, decodeCursorChunk } from '@pothos/core';
import {
  type GraphQLArgument,
  type GraphQLInputType,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isScalarType,
} from 'graphql';
import type { Problem } from '../errors.ts';

/** Limits of {@link argumentProblems}. */
export interface ArgumentRules {
  /** Deepest nesting of arrays and objects inside a JSON argument. */
  maxJsonDepth: number;
  /** Names of the types a global ID may name (the schema's Node types). */
  nodeTypes: ReadonlySet<string>;
  /** Most problems reported for one field; the rest are counted in one last problem. Default 20. */
  maxProblems?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Global ids and cursors are short: `Collection:<uuid>` in base64 is 64 characters. */
const MAX_TOKEN_LENGTH = 200;
/** Longest key echoed in a problem's path. */
const MAX_SEGMENT_LENGTH = 100;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a string cannot be stored or compared by PostgreSQL, or undefined when it is fine. */
export function stringProblem(value: string): string | undefined {
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(value)) return 'must not contain unpaired surrogates (invalid UTF-16)';
  return undefined;
}

function globalIdProblem(value: unknown, nodeTypes: ReadonlySet<string>): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_TOKEN_LENGTH || !BASE64.test(value))
    return 'is not a valid ID';
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const typename = decoded.slice(0, colon);
  if (colon < 0 || !nodeTypes.has(typename) || !UUID.test(decoded.slice(colon + 1)))
    return 'is not a valid ID';
  return undefined;
}

/** Connections paged by a row's BIGINT id with rowCursor (ids.ts): credit ledger, audit log. */
const ROW_CURSOR_CONNECTIONS = new Set(['CreditLedgerEntryConnection', 'AuditEventConnection']);
/** Prisma connections over a BIGINT key: `GPC:I:<digits>`. Every other one is over a UUID. */
const BIGINT_CURSOR_CONNECTIONS = new Set(['OperationEventConnection']);
const MAX_BIGINT = 9223372036854775807n;

/**
 * Why a cursor cannot be one of this connection's, or undefined: a cursor of another connection
 * (an events cursor given to `operations`) is refused here, not by the database.
 */
function cursorProblem(value: unknown, connection: string): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_TOKEN_LENGTH || !BASE64.test(value))
    return 'is not a valid cursor';
  try {
    const decoded = decodeBase64(value);
    if (ROW_CURSOR_CONNECTIONS.has(connection)) {
      const row = decoded.startsWith('ROW:') ? decoded.slice(4) : '';
      return /^\d{1,19}$/.test(row) && BigInt(row) <= MAX_BIGINT ? undefined : 'is not a valid cursor';
    }
    const id = decoded.startsWith('GPC:') ? decodeCursorChunk(decoded.slice(4)) : undefined;
    if (BIGINT_CURSOR_CONNECTIONS.has(connection))
      return typeof id === 'bigint' && id >= 0n && id <= MAX_BIGINT ? undefined : 'is not a valid cursor';
    return typeof id === 'string' && UUID.test(id) ? undefined : 'is not a valid cursor';
  } catch {
    return 'is not a valid cursor';
  }
}

const segment = (key: string | number) =>
  typeof key === 'string' && key.length > MAX_SEGMENT_LENGTH ? `${key.slice(0, MAX_SEGMENT_LENGTH)}…` : key;

/** In JSON text: a NUL, or a surrogate that JSON.stringify escaped because it was unpaired. */
const ESCAPED_PROBLEM = /\\u0000|\\ud[89a-f][0-9a-f]{2}/i;

/**
 * True when a JSON value certainly has no string problem and no object deeper than `maxDepth`
 * (false may be a false alarm: a literal backslash before "u0000"). Native JSON.stringify escapes
 * NULs and unpaired surrogates, so one regular expression over its text covers every string and
 * key; the depth walk keeps no paths. Linear, and an order of magnitude cheaper than the walk with
 * paths (a 2 MB batch input of small values: ~10 ms instead of ~150 ms).
 */
function isCleanJson(root: unknown, maxDepth: number): boolean {
  let text: string | undefined;
  try {
    text = JSON.stringify(root);
  } catch {
    return false; // nested beyond the stack: the walk reports it
  }
  if (text === undefined || ESCAPED_PROBLEM.test(text)) return false;
  const values: unknown[] = [root];
  const depths: number[] = [0];
  while (values.length) {
    const value = values.pop();
    const depth = depths.pop() as number;
    if (depth >= maxDepth) return false;
    const children = Array.isArray(value) ? value : Object.values(value as object);
    for (const child of children) {
      if (child !== null && typeof child === 'object') {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return true;
}

type Item = {
  value: unknown;
  /** The GraphQL input type, or null inside a JSON value. */
  type: GraphQLInputType | null;
  path: (string | number)[];
  /** Nesting inside the JSON value this item belongs to. */
  depth: number;
};

/**
 * Problems with one field's coerced arguments, each at its path from the argument name down (a
 * single `input` object argument is left out, as the domains' own ValidationErrors do): strings
 * (object keys inside JSON included) holding NUL or unpaired surrogates, global IDs that do not name
 * a Node by its UUID, connection cursors that are not ours, JSON nested deeper than the limit. The
 * walk is iterative, so no input can overflow the stack, and linear in the input's size.
 */
export function argumentProblems(
  args: readonly GraphQLArgument[],
  values: Record<string, unknown>,
  /** The connection type the field returns (its cursors are checked), or undefined. */
  connection: string | undefined,
  rules: ArgumentRules,
): Problem[] {
  const walk = walkArguments(args, values, connection, rules);
  for (;;) {
    const step = walk.next();
    if (step.done) return step.value;
  }
}

/**
 * {@link argumentProblems} for arguments that may be megabytes (a batch's items): the same walk,
 * awaiting `slice()` (src/event-loop.ts) between pieces of work, so checking them never holds the
 * event loop for long (issue 9, point 5).
 */
export async function argumentProblemsSliced(
  args: readonly GraphQLArgument[],
  values: Record<string, unknown>,
  connection: string | undefined,
  rules: ArgumentRules,
  slice: () => Promise<void>,
): Promise<Problem[]> {
  const walk = walkArguments(args, values, connection, rules);
  for (;;) {
    const step = walk.next();
    if (step.done) return step.value;
    await slice();
  }
}

/** Values visited between two pauses of the walk (a pause costs a clock read when sliced). */
const STEPS_PER_PAUSE = 256;

/**
 * The walk of {@link argumentProblems}, pausing (yielding) after each JSON value it proves clean
 * and every {@link STEPS_PER_PAUSE} values, so a caller may let other work run in between.
 */
function* walkArguments(
  args: readonly GraphQLArgument[],
  values: Record<string, unknown>,
  connection: string | undefined,
  rules: ArgumentRules,
): Generator<void, Problem[]> {
  const problems: Problem[] = [];
  const limit = rules.maxProblems ?? 20;
  let more = 0;
  const report = (path: (string | number)[], message: string) => {
    if (problems.length < limit) problems.push({ path: path.map(segment), message });
    else more += 1;
  };
  const elideInput =
    args.length === 1 && args[0]?.name === 'input' && isInputObjectType(getNamedType(args[0].type));
  const stack: Item[] = [];
  for (const arg of [...args].reverse()) {
    if (values[arg.name] === undefined || values[arg.name] === null) continue;
    if (connection && (arg.name === 'after' || arg.name === 'before')) {
      const problem = cursorProblem(values[arg.name], connection);
      if (problem) report([arg.name], problem);
      continue;
    }
    stack.push({ value: values[arg.name], type: arg.type, path: elideInput ? [] : [arg.name], depth: 0 });
  }
  let steps = 0;
  while (stack.length) {
    steps += 1;
    if (steps % STEPS_PER_PAUSE === 0) yield;
    const { value, type, path, depth } = stack.pop() as Item;
    if (value === null || value === undefined) continue;
    const inner = type && isNonNullType(type) ? type.ofType : type;
    if (inner && isListType(inner)) {
      if (Array.isArray(value))
        for (let i = value.length - 1; i >= 0; i -= 1)
          stack.push({ value: value[i], type: inner.ofType, path: [...path, i], depth });
      else stack.push({ value, type: inner.ofType, path, depth });
    } else if (inner && isInputObjectType(inner)) {
      const fields = Object.values(inner.getFields()).reverse();
      for (const field of fields) {
        const fieldValue = (value as Record<string, unknown>)[field.name];
        stack.push({ value: fieldValue, type: field.type, path: [...path, field.name], depth });
      }
    } else if (inner && isEnumType(inner)) {
      // Enum values are the schema's own.
    } else if (inner && isScalarType(inner) && inner.name === 'ID') {
      const problem = globalIdProblem(value, rules.nodeTypes);
      if (problem) report(path, problem);
    } else if (typeof value === 'string') {
      const problem = stringProblem(value);
      if (problem) report(path, problem);
    } else if (typeof value === 'object' && (inner === null || inner.name === 'JSON')) {
      // Most JSON values are clean: prove it cheaply, and walk with paths only to find a problem.
      if (inner !== null && isCleanJson(value, rules.maxJsonDepth - depth)) {
        yield;
        continue;
      }
      if (depth >= rules.maxJsonDepth) {
        report(path, `nests deeper than ${rules.maxJsonDepth} levels`);
        continue;
      }
      const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
      for (let i = entries.length - 1; i >= 0; i -= 1) {
        const [key, child] = entries[i] as readonly [string | number, unknown];
        const problem = typeof key === 'string' ? stringProblem(key) : undefined;
        if (problem) report([...path, key], problem);
        else stack.push({ value: child, type: null, path: [...path, key], depth: depth + 1 });
      }
    }
  }
  if (more > 0) problems.push({ path: [], message: `and ${more} more problems of the same kinds` });
  return problems;
}
