import { PothosValidationError } from '@pothos/core';
import { wrapErrorIfMatches } from '@pothos/plugin-errors';
import {
  defaultFieldResolver,
  type FieldNode,
  GraphQLError,
  type GraphQLField,
  type GraphQLFieldResolver,
  type GraphQLNamedType,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  getArgumentValues,
  getNamedType,
  isInterfaceType,
  isObjectType,
  isUnionType,
  Kind,
  type SelectionNode,
} from 'graphql';
import { isStatementTimeout } from '../db/timeout.ts';
import { type Problem, ValidationError } from '../errors.ts';
import { nextLoopTurn, slicer } from '../event-loop.ts';
import type { Resources } from '../resources.ts';
import { argumentProblems, argumentProblemsSliced } from './arguments.ts';
import type { Context } from './context.ts';
import { LARGE_BODY_BYTES } from './limits.ts';

/**
 * Error hygiene at the trust boundary (issue 9, point 9), in one place for every field:
 * - {@link guardArguments} checks every field's coerced arguments before its resolver runs (NUL
 *   and unpaired surrogates in any string, JSON keys included; malformed global IDs and cursors;
 *   over-deep JSON) and refuses them as BAD_USER_INPUT with each argument's path — as a
 *   `ValidationError` member for fields whose result union has one;
 * - {@link withHygiene} wraps the server's error masking: statement timeouts become a typed
 *   STATEMENT_TIMEOUT error, Pothos argument errors and stack overflows on deeply nested
 *   documents BAD_USER_INPUT, and no message sent to a client is longer than
 *   {@link MAX_MESSAGE_LENGTH} characters, so large inputs are never echoed back.
 */

/** Longest error message sent to a client; longer ones are cut with "…". */
export const MAX_MESSAGE_LENGTH = 500;

/** `text` cut to `max` characters (an ellipsis marks the cut). */
export const truncate = (text: string, max = MAX_MESSAGE_LENGTH): string =>
  text.length <= max ? text : `${text.slice(0, max - 1)}…`;

const returnsValidationError = (field: GraphQLField<unknown, unknown>) => {
  const type = getNamedType(field.type);
  return isUnionType(type) && type.getTypes().some((member) => member.name === 'ValidationError');
};

/**
 * Wraps the resolver (and, for subscriptions, the subscribe function) of every field that takes
 * arguments with the argument check. Fields without arguments are left untouched, so the hot path
 * of plain fields costs nothing. Returns the same schema.
 */
export function guardArguments(schema: GraphQLSchema): GraphQLSchema {
  // Global ids name a Node, or a User: User has global ids (viewer { id }) without being a Node, so
  // node(id) of one is well-formed and answers null.
  const node = schema.getType('Node');
  const nodeTypes = new Set([
    ...(node && isInterfaceType(node)
      ? schema.getImplementations(node).objects.map((type) => type.name)
      : []),
    'User',
  ]);
  const roots = new Set(
    [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap((root) =>
      root ? [root.name] : [],
    ),
  );
  const mutationType = schema.getMutationType();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      if (field.args.length === 0 && !roots.has(type.name)) continue;
      const asData = returnsValidationError(field);
      const root = roots.has(type.name);
      const rulesOf = (context: Context) => ({
        maxJsonDepth: context.resources.config.inputMaxDepth,
        nodeTypes,
      });
      const refusal = (problems: Problem[], context: Context, info: GraphQLResolveInfo) => {
        // Nested fields' arguments may be read by this field's resolver already (Prisma selections).
        if (root && !problems.length) problems.push(...nestedProblems(schema, info, rulesOf(context)));
        return problems.length ? new ValidationError(problems) : undefined;
      };
      const check = (args: Record<string, unknown>, context: Context, info: GraphQLResolveInfo) =>
        refusal(argumentProblems(field.args, args, isConnection(field), rulesOf(context)), context, info);
      const resolve = field.resolve ?? (defaultFieldResolver as GraphQLFieldResolver<unknown, unknown>);
      const guarded: GraphQLFieldResolver<unknown, unknown> = (parent, args, context, info) => {
        const refused = check(args, context as Context, info);
        if (!refused) return resolve(parent, args, context, info);
        // Wrapped as the errors plugin wraps thrown ones: graphql-js rejects a returned Error.
        if (asData) return wrapErrorIfMatches(refused, [ValidationError]);
        throw refused;
      };
      // A mutation's arguments may be megabytes (a batch): parsing a large body and coercing it ran
      // just before; let other requests and heartbeats in before checking them, and while checking
      // them, in slices. A small HTTP body (most starts, under LARGE_BODY_BYTES) is checked at once
      // by the same checks, as other fields' arguments are: nothing long ran, and its arguments
      // are too small to hold the loop (no promise and no slice per check step).
      const guardedInSlices: GraphQLFieldResolver<unknown, unknown> = async (parent, args, context, info) => {
        await nextLoopTurn();
        const slice = slicer();
        const problems = await argumentProblemsSliced(
          field.args,
          args,
          isConnection(field),
          rulesOf(context as Context),
          slice,
        );
        const refused = refusal(problems, context as Context, info);
        if (refused && asData) return wrapErrorIfMatches(refused, [ValidationError]);
        if (refused) throw refused;
        await slice();
        return resolve(parent, args, context, info);
      };
      field.resolve =
        type === mutationType
          ? (parent, args, context, info) =>
              isSmallRequest(context)
                ? guarded(parent, args, context, info)
                : guardedInSlices(parent, args, context, info)
          : guarded;
      const subscribe = field.subscribe;
      if (subscribe) {
        field.subscribe = (parent, args, context, info) => {
          const refused = check(args, context as Context, info);
          if (refused) throw refused;
          return subscribe(parent, args, context, info);
        };
      }
    }
  }
  return schema;
}

/**
 * True for an HTTP request whose Content-Length is under LARGE_BODY_BYTES: its body was parsed in
 * the turn that reached this resolver, cheaply. WebSocket messages (no request) and chunked bodies
 * are not known to be small.
 */
function isSmallRequest(context: unknown): boolean {
  const length = (context as { request?: Request }).request?.headers.get('content-length');
  return length != null && /^\d+$/.test(length) && Number(length) < LARGE_BODY_BYTES;
}

/** The connection type a field returns (its cursors are checked by kind), or undefined. */
const isConnection = (field: GraphQLField<unknown, unknown>): string | undefined => {
  const name = getNamedType(field.type).name;
  return name.endsWith('Connection') ? name : undefined;
};

/**
 * Problems with the arguments of every field selected below a root field, at the path of response
 * keys down to the field, then the argument's path. Iterative over the selections and fragments.
 */
function nestedProblems(
  schema: GraphQLSchema,
  info: GraphQLResolveInfo,
  rules: Parameters<typeof argumentProblems>[3],
): Problem[] {
  if (!selectsArguments(info)) return [];
  const problems: Problem[] = [];
  const parentType = getNamedType(info.returnType);
  const stack: { selections: readonly SelectionNode[]; type: GraphQLNamedType; path: string[] }[] =
    info.fieldNodes.flatMap((node) =>
      node.selectionSet ? [{ selections: node.selectionSet.selections, type: parentType, path: [] }] : [],
    );
  const seenFragments = new Set<string>();
  while (stack.length && problems.length < 20) {
    const { selections, type, path } = stack.pop()!;
    for (const selection of selections) {
      if (selection.kind === Kind.INLINE_FRAGMENT || selection.kind === Kind.FRAGMENT_SPREAD) {
        const fragment =
          selection.kind === Kind.INLINE_FRAGMENT ? selection : info.fragments[selection.name.value];
        if (!fragment || (selection.kind === Kind.FRAGMENT_SPREAD && seenFragments.has(selection.name.value)))
          continue;
        if (selection.kind === Kind.FRAGMENT_SPREAD) seenFragments.add(selection.name.value);
        const condition = fragment.typeCondition ? schema.getType(fragment.typeCondition.name.value) : type;
        stack.push({ selections: fragment.selectionSet.selections, type: condition ?? type, path });
        continue;
      }
      if (!isObjectType(type) && !isInterfaceType(type)) continue;
      const field = type.getFields()[selection.name.value];
      if (!field) continue;
      const at = [...path, selection.alias?.value ?? selection.name.value];
      if (field.args.length) {
        const values = getArgumentValues(field, selection, info.variableValues);
        for (const problem of argumentProblems(field.args, values, isConnection(field), rules))
          problems.push({ ...problem, path: [...at, ...problem.path] });
      }
      if (selection.selectionSet)
        stack.push({
          selections: selection.selectionSet.selections,
          type: getNamedType(field.type),
          path: at,
        });
    }
  }
  return problems;
}

/** Per field node of a parsed document (held by the parse cache): whether anything below it has arguments. */
const withArguments = new WeakMap<FieldNode, boolean>();

/**
 * True when a field selected below this root field (through fragments too) is given arguments;
 * false means only defaults, which are the schema's own, so there is nothing to check. Remembered
 * per document: a start's answer selects the same fields every time.
 */
function selectsArguments(info: GraphQLResolveInfo): boolean {
  const node = info.fieldNodes[0];
  if (!node || info.fieldNodes.length > 1) return true;
  const known = withArguments.get(node);
  if (known !== undefined) return known;
  let found = false;
  const seen = new Set<string>();
  const stack: SelectionNode[] = [...(node.selectionSet?.selections ?? [])];
  while (stack.length && !found) {
    const selection = stack.pop() as SelectionNode;
    if (selection.kind === Kind.FIELD) {
      if (selection.arguments?.length) found = true;
      else stack.push(...(selection.selectionSet?.selections ?? []));
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      stack.push(...selection.selectionSet.selections);
    } else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      const fragment = info.fragments[selection.name.value];
      if (!fragment)
        found = true; // unknown: check the long way
      else stack.push(...fragment.selectionSet.selections);
    }
  }
  withArguments.set(node, found);
  return found;
}

type MaskError = (error: unknown, message: string) => Error;

/**
 * Wraps the server's `maskError`: a statement cancelled by the API's (or a search's) statement
 * timeout becomes STATEMENT_TIMEOUT (retryable, with the timeout), logged as a warning, not as an
 * unexpected error; every message is cut to {@link MAX_MESSAGE_LENGTH} characters.
 */
export function withHygiene(mask: MaskError, resources: Resources): MaskError {
  const timeoutMs = resources.config.apiStatementTimeoutMs;
  return (error, message) => {
    const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
    let masked: Error;
    if (original instanceof PothosValidationError) {
      // Pothos's own argument checks (connection sizes, cursors): the client's mistake.
      masked = new GraphQLError(original.message, { extensions: { code: 'BAD_USER_INPUT' } });
    } else if (original instanceof RangeError && original.message.includes('call stack')) {
      // A document or input nested deeper than the parser's recursion can follow.
      resources.logger.warn('request refused: nested too deeply to process');
      masked = new GraphQLError('The request is nested too deeply to process.', {
        extensions: { code: 'BAD_USER_INPUT' },
      });
    } else if (isStatementTimeout(original)) {
      resources.logger.warn('request stopped by the statement timeout', { timeoutMs });
      masked = new GraphQLError(
        `The request took too long in the database (statement timeout of ${timeoutMs} ms) and was stopped; ask for less at a time.`,
        {
          ...(error instanceof GraphQLError ? { nodes: error.nodes, path: error.path } : {}),
          extensions: { code: 'STATEMENT_TIMEOUT', timeoutMs, retryable: true },
        },
      );
    } else {
      masked = mask(error, message);
    }
    if (!(masked instanceof GraphQLError) || masked.message.length <= MAX_MESSAGE_LENGTH) return masked;
    return new GraphQLError(truncate(masked.message), {
      nodes: masked.nodes,
      source: masked.source,
      positions: masked.positions,
      path: masked.path,
      extensions: masked.extensions,
    });
  };
}
