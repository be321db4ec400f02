import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import {
  type FragmentDefinitionNode,
  GraphQLError,
  Kind,
  Lexer,
  type SelectionSetNode,
  Source,
  TokenKind,
  type ValidationContext,
  type ValidationRule,
  validate,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { nextLoopTurn } from '../event-loop.ts';

/**
 * Request-level limits, checked before anything runs: the body and the query text before they are
 * parsed, tokens while parsing, depth, aliases and directives while validating, cost before
 * execution. Each refusal is a GraphQL error with a stable `extensions.code`, the `limit` and the
 * `measured` value, and HTTP status 413 (sizes) or 400 (the others).
 */

/** Codes of the refusals, as clients see them in `extensions.code`. */
export type LimitCode =
  | 'REQUEST_TOO_LARGE'
  | 'QUERY_TOO_LARGE'
  | 'TOO_MANY_TOKENS'
  | 'QUERY_TOO_DEEP'
  | 'TOO_MANY_ALIASES'
  | 'TOO_MANY_DIRECTIVES'
  | 'QUERY_TOO_COMPLEX'
  | 'TOO_MANY_DUPLICATE_FIELDS';

/** A refusal by a limit: safe message, code, limit, measured value, HTTP status. */
export function limitError(
  code: LimitCode,
  message: string,
  limit: number,
  measured: number,
  status = 400,
): GraphQLError {
  // `spec` false keeps the status for `Accept: application/json` too, where Yoga answers spec
  // errors with 200; its parse hook sets `spec ||= true`, so the flag ignores writes.
  const http = {
    status,
    get spec() {
      return false;
    },
    set spec(_ignored: boolean) {},
  };
  return new GraphQLError(`${message} (limit ${limit}, measured ${measured}).`, {
    extensions: { code, limit, measured, http },
  });
}

export interface RequestSizeOptions {
  /** Largest request body in bytes; checked on Content-Length and on the bytes streamed. */
  maxBytes: number;
}

const tooLarge = (maxBytes: number, measured: number) =>
  limitError('REQUEST_TOO_LARGE', 'The request body is too large', maxBytes, measured, 413);

/** Bodies from this many bytes (or of unknown length) are read and parsed in turns of their own. */
export const LARGE_BODY_BYTES = 64 * 1024;

/**
 * Bounds every request body before it is parsed: a Content-Length above the limit is refused at
 * once, and a body without one (chunked) is cut off as soon as more than `maxBytes` arrived (with
 * one, Node's HTTP parser reads no more than it says, so the body is not counted again).
 * Replaces Yoga's own `maxRequestBodySize` (configure that to `false`) to report limit and measured.
 *
 * A large JSON body (a batch of ~2 MB) is decoded, parsed and coerced in three turns of the event
 * loop instead of one, so other users' requests and heartbeats run in between (issue 9, point 5).
 */
export function useRequestSizeLimit({ maxBytes }: RequestSizeOptions): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const header = request.headers.get('content-length');
      let length: number | undefined;
      if (header !== null) {
        length = /^\d+$/.test(header) ? Number(header) : Number.NaN;
        if (Number.isNaN(length)) {
          throw new GraphQLError('Content-Length header is invalid.', {
            extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
          });
        }
        if (length > maxBytes) throw tooLarge(maxBytes, length);
      }
      if (!requestParser || !request.body) return;
      if (length !== undefined && length < LARGE_BODY_BYTES) return;
      const parse = requestParser;
      setRequestParser((req) => {
        let received = 0;
        const body =
          length !== undefined
            ? req.body
            : (req.body as ReadableStream<Uint8Array>).pipeThrough(
                new TransformStream<Uint8Array, Uint8Array>({
                  transform(chunk, controller) {
                    received += chunk.byteLength;
                    if (received > maxBytes) controller.error(tooLarge(maxBytes, received));
                    else controller.enqueue(chunk);
                  },
                }),
              );
        const large = new fetchAPI.Request(req.url, {
          method: req.method,
          headers: req.headers,
          signal: req.signal,
          body,
          // @ts-expect-error Node's fetch needs `duplex` for a streamed body; the DOM types lack it.
          duplex: 'half',
        });
        const text = large.text.bind(large);
        large.json = async () => {
          const json = await text();
          await nextLoopTurn();
          const parsed: unknown = JSON.parse(json);
          await nextLoopTurn();
          return parsed;
        };
        return parse(large);
      });
    },
  };
}

/** UTF-8 bytes of a query text, or an error when there are more than `maxBytes`. */
export function checkQuerySize(query: unknown, maxBytes: number): GraphQLError | null {
  if (typeof query !== 'string') return null;
  // A string of n UTF-16 units has at most 3n UTF-8 bytes: only long ones need counting.
  if (query.length * 3 <= maxBytes) return null;
  const bytes = Buffer.byteLength(query, 'utf8');
  return bytes > maxBytes
    ? limitError(
        'QUERY_TOO_LARGE',
        'The query document is too large; send large values as variables',
        maxBytes,
        bytes,
        413,
      )
    : null;
}

export interface QuerySizeOptions {
  /** Largest query text in UTF-8 bytes, refused before parsing (variables are not counted). */
  maxBytes: number;
}

/** Refuses a query text above `maxBytes` before it is parsed or looked up in the parse cache. */
export function useQuerySizeLimit({ maxBytes }: QuerySizeOptions): Plugin {
  return {
    onParams({ params, setResult }) {
      const error = checkQuerySize(params.query, maxBytes);
      if (error) setResult({ errors: [error] });
    },
  };
}

/** Counts a document's tokens (for the `measured` of a refusal; the text is already bounded). */
function countTokens(source: string | Source): number {
  const lexer = new Lexer(typeof source === 'string' ? new Source(source) : source);
  let count = 0;
  try {
    while (lexer.advance().kind !== TokenKind.EOF) count++;
  } catch {
    // A syntax error after the limit: the count so far is what was measured.
  }
  return count;
}

export interface DocumentLimitOptions {
  /** Most tokens in a document (counted while parsing; parsing stops at the limit). */
  maxTokens: number;
  /** Deepest selection nesting; introspection (`__schema`) is not counted. */
  maxDepth: number;
  /** Most aliases in an operation (`__typename` aliases are free). */
  maxAliases: number;
  /** Most directives in an operation. */
  maxDirectives: number;
  /** Most fields with one response name in one selection set (fragments flattened). */
  maxDuplicateFields: number;
}

/** Reads the count graphql-armor measured from its message ("…, found N."). */
const found = (error: GraphQLError) => Number(/found (\d+)/.exec(error.message)?.[1] ?? Number.NaN);

/**
 * Tokens, depth, aliases and directives with graphql-armor: tokens while parsing (the parser
 * stops at the limit), the others as validation rules, each refused with its own code.
 */
export function useDocumentLimits(options: DocumentLimitOptions): Plugin {
  let source: string | Source = '';
  // Per parsed document (those live in the bounded parse cache): the check runs once a document.
  const duplicates = new WeakMap<object, readonly GraphQLError[]>();
  const rejectWith =
    (code: LimitCode, message: string, limit: number) =>
    (context: ValidationContext | null, error: GraphQLError) =>
      context?.reportError(limitError(code, message, limit, found(error)));
  return {
    onParse({ params }) {
      source = params.source;
    },
    onValidate({ params: { schema, documentAST }, setResult }) {
      // Before the spec rules: their overlap check is quadratic in repeated fields (250 copies of
      // `viewer { name }` validate in ~100 ms). A refusal here skips them; document-only, so cacheable.
      let errors = duplicates.get(documentAST);
      if (!errors) {
        errors = validate(schema, documentAST, [duplicateFieldsRule(options.maxDuplicateFields)]);
        duplicates.set(documentAST, errors);
      }
      if (errors.length) setResult(errors);
    },
    onPluginInit({ addPlugin }) {
      addPlugin(
        EnvelopArmorPlugin({
          blockFieldSuggestion: { enabled: false },
          costLimit: { enabled: false },
          maxTokens: {
            n: options.maxTokens,
            onReject: [
              () => {
                throw limitError(
                  'TOO_MANY_TOKENS',
                  'The query document has too many tokens',
                  options.maxTokens,
                  countTokens(source),
                );
              },
            ],
          },
          maxDepth: {
            n: options.maxDepth,
            propagateOnRejection: false,
            onReject: [rejectWith('QUERY_TOO_DEEP', 'The query is nested too deeply', options.maxDepth)],
          },
          maxAliases: {
            n: options.maxAliases,
            propagateOnRejection: false,
            onReject: [rejectWith('TOO_MANY_ALIASES', 'The query has too many aliases', options.maxAliases)],
          },
          maxDirectives: {
            n: options.maxDirectives,
            propagateOnRejection: false,
            onReject: [
              rejectWith('TOO_MANY_DIRECTIVES', 'The query has too many directives', options.maxDirectives),
            ],
          },
        }),
      );
    },
  };
}

/** Fields of a selection set by response name, through inline fragments and fragment spreads. */
function countResponseNames(
  selectionSet: SelectionSetNode,
  fragments: Map<string, FragmentDefinitionNode>,
  counts: Map<string, number>,
  seen: Set<string>,
) {
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      const name = selection.alias?.value ?? selection.name.value;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      countResponseNames(selection.selectionSet, fragments, counts, seen);
    } else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      const fragment = fragments.get(selection.name.value);
      if (fragment) countResponseNames(fragment.selectionSet, fragments, counts, seen);
    }
  }
}

/** Refuses a selection set that selects one response name more than `max` times. */
const duplicateFieldsRule =
  (max: number): ValidationRule =>
  (context) => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of context.getDocument().definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    }
    let reported = false;
    return {
      SelectionSet(node) {
        if (reported) return;
        const counts = new Map<string, number>();
        countResponseNames(node, fragments, counts, new Set());
        const most = Math.max(0, ...counts.values());
        if (most > max) {
          reported = true;
          context.reportError(
            limitError('TOO_MANY_DUPLICATE_FIELDS', 'The query selects one field too many times', max, most),
          );
        }
      },
    };
  };
