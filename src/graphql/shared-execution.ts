import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLObjectType,
  type GraphQLSchema,
  getNamedType,
  getOperationAST,
  isObjectType,
  Kind,
  type SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * Subscriptions that execute each published message once per document rather than once per
 * subscriber.
 *
 * A live stream that hands the same payload object to every subscriber allowed to see it marks it
 * with `shareAcrossSubscribers`. For such a payload, subscribers whose document (the same parsed
 * document: Yoga's parser cache returns one object per query text), operation name and variables
 * are the same get one execution's result: the first of them executes it, the others reuse it.
 * Only documents that select nothing but the fields the schema declares viewer-independent
 * (`SharedExecutionOptions.fields`) are shared; any other document, and any payload not marked,
 * executes per subscriber as before. Visibility stays per subscriber: the stream decides, for each
 * subscriber, whether the payload is delivered at all.
 *
 * It also replaces graphql-tools' per-subscription pipeline (a mapping iterator, a flattening
 * iterator and an async generator per message) by one small iterator object.
 */

/** Payload objects delivered identically to every subscriber who receives them. */
const sharedPayloads = new WeakSet<object>();

/** Marks `payload` as the same for every subscriber it is delivered to (see the module comment). */
export function shareAcrossSubscribers<T extends object>(payload: T): T {
  sharedPayloads.add(payload);
  return payload;
}

export interface SharedExecutionOptions {
  /**
   * Per type name, the fields whose value depends only on their parent value (never on the
   * viewer or the context's caches). A document selecting any other field is executed per
   * subscriber. `__typename` is always allowed.
   */
  fields: Readonly<Record<string, readonly string[]>>;
}

type ShareCheck = (schema: GraphQLSchema, document: DocumentNode, operationName?: string | null) => boolean;

function shareCheck(fields: SharedExecutionOptions['fields']): ShareCheck {
  const allowed = new Map(Object.entries(fields).map(([type, names]) => [type, new Set(names)]));
  const known = new WeakMap<DocumentNode, Map<string, boolean>>();
  const walk = (
    schema: GraphQLSchema,
    type: GraphQLObjectType,
    set: SelectionSetNode,
    fragments: Map<string, FragmentDefinitionNode>,
    depth: number,
  ): boolean => {
    if (depth > 32) return false;
    for (const selection of set.selections) {
      // @include / @skip depend on variables only (part of the key); anything else: not shared.
      if (selection.directives?.some((d) => d.name.value !== 'include' && d.name.value !== 'skip'))
        return false;
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name === '__typename') continue;
        const field = type.getFields()[name];
        if (!field || !allowed.get(type.name)?.has(name)) return false;
        if (!selection.selectionSet) continue;
        const inner = getNamedType(field.type);
        if (!isObjectType(inner) || !walk(schema, inner, selection.selectionSet, fragments, depth + 1))
          return false;
        continue;
      }
      const fragment =
        selection.kind === Kind.INLINE_FRAGMENT ? selection : fragments.get(selection.name.value);
      if (!fragment) return false;
      // Only conditions on the type itself: an abstract one could select another type's fields.
      if (fragment.typeCondition && fragment.typeCondition.name.value !== type.name) return false;
      if (!walk(schema, type, fragment.selectionSet, fragments, depth + 1)) return false;
    }
    return true;
  };
  return (schema, document, operationName) => {
    let byName = known.get(document);
    if (!byName) {
      byName = new Map();
      known.set(document, byName);
    }
    const name = operationName ?? '';
    let shared = byName.get(name);
    if (shared === undefined) {
      const operation = getOperationAST(document, operationName);
      const root = schema.getSubscriptionType();
      const fragments = new Map(
        document.definitions
          .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
          .map((d) => [d.name.value, d]),
      );
      shared =
        operation?.operation === 'subscription' &&
        root !== null &&
        root !== undefined &&
        walk(schema, root, operation.selectionSet, fragments, 0);
      byName.set(name, shared);
    }
    return shared;
  };
}

/** Results of shared payloads, by payload, then by document key. */
const results = new WeakMap<object, Map<string, Promise<ExecutionResult>>>();

/** A number per parsed document, for the keys. */
const documentIds = new WeakMap<DocumentNode, number>();
let lastDocumentId = 0;
function documentId(document: DocumentNode): number {
  let id = documentIds.get(document);
  if (id === undefined) {
    lastDocumentId += 1;
    id = lastDocumentId;
    documentIds.set(document, id);
  }
  return id;
}

/**
 * One subscription: pulls the source stream and executes each payload (shared when it can be).
 * One object per subscription, methods on the prototype.
 */
class ExecutedStream implements AsyncIterableIterator<ExecutionResult> {
  private readonly source: AsyncIterator<unknown>;

  constructor(
    source: AsyncIterable<unknown>,
    private readonly args: ExecutionArgs,
    /** Document, operation name and variables when this subscription may share results; else null. */
    private readonly key: string | null,
  ) {
    this.source = source[Symbol.asyncIterator]();
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  async next(): Promise<IteratorResult<ExecutionResult>> {
    let step: IteratorResult<unknown>;
    try {
      step = await this.source.next();
    } catch (error) {
      throw this.located(error);
    }
    if (step.done) return { done: true, value: undefined };
    return { done: false, value: await this.execute(step.value) };
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    await this.source.return?.();
    return { done: true, value: undefined };
  }

  async throw(error: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.source.return?.();
    throw error;
  }

  private execute(payload: unknown): Promise<ExecutionResult> | ExecutionResult {
    const { args, key } = this;
    if (key === null || typeof payload !== 'object' || payload === null || !sharedPayloads.has(payload)) {
      return execute({ ...args, rootValue: payload });
    }
    let byKey = results.get(payload);
    if (!byKey) {
      byKey = new Map();
      results.set(payload, byKey);
    }
    let result = byKey.get(key);
    if (!result) {
      // A context of its own: what resolvers cache in it (loaders, auth) is not kept by anyone.
      const contextValue = { ...(args.contextValue as object) };
      result = Promise.resolve(execute({ ...args, rootValue: payload, contextValue }));
      byKey.set(key, result);
    }
    return result;
  }

  /** A source stream's failure as graphql-tools reports it: located at the operation. */
  private located(error: unknown): unknown {
    if (!(error instanceof Error) || error instanceof GraphQLError) return error;
    const operation = getOperationAST(this.args.document, this.args.operationName);
    return new GraphQLError(error.message, { nodes: operation ?? undefined, originalError: error });
  }
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<unknown> =>
  typeof value === 'object' && value !== null && Symbol.asyncIterator in value;

/**
 * Runs subscriptions as described in the module comment. Register it before any plugin that wraps
 * `subscribeFn` (src/graphql/streams.ts), so that theirs wrap this one.
 */
export function useSharedSubscriptionExecution(options: SharedExecutionOptions): Plugin {
  const shareable = shareCheck(options.fields);
  const subscribe = async (args: ExecutionArgs) => {
    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) {
      // Arguments that could not be coerced (no path: not a resolver's error), as graphql-tools marks them.
      for (const error of source.errors ?? []) {
        if (error.path) continue;
        const extensions = error.extensions as Record<string, unknown>;
        extensions.code = 'BAD_USER_INPUT';
        extensions.http = { ...(extensions.http as object | undefined), status: 400 };
      }
      return source;
    }
    const key = shareable(args.schema, args.document, args.operationName)
      ? `${documentId(args.document)}:${args.operationName ?? ''}:${JSON.stringify(args.variableValues ?? {})}`
      : null;
    const stream = new ExecutedStream(source, args, key);
    const signal = (args as { signal?: AbortSignal }).signal;
    signal?.addEventListener('abort', () => void stream.return(), { once: true });
    return stream;
  };
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(subscribe as Parameters<typeof setSubscribeFn>[0]);
    },
  };
}
