/**
 * References from one batch item's input to the result of an item it depends on.
 *
 * - Whole value: the string `"$ref:item.path.to.field"` is replaced by the value it points at,
 *   keeping its JSON type (number, boolean, object, array, null). Path segments that are digits
 *   index arrays: `"$ref:load.items.0.id"`.
 * - Interpolation: `$ref:item.path` inside a longer string is replaced by the value as text
 *   (scalars only). There, item ids and path segments are letters and digits only, so any other
 *   character ends the reference: `"backup_$ref:create.collectionId_v2"`.
 * - Escape: `$$ref:` stands for a literal `$ref:` and is never resolved.
 */

/** One reference found in an input. */
export interface Ref {
  /** Where in the input the string holding it is. */
  at: (string | number)[];
  item: string;
  path: string[];
  /** True when the reference is the whole string (its value keeps its JSON type). */
  whole: boolean;
}

const WHOLE = /^\$ref:([^.]+)((?:\.[^.]+)*)$/;
const INSIDE = /\$\$ref:|\$ref:([A-Za-z0-9]+)((?:\.[A-Za-z0-9]+)*)/g;

/** Every reference in a value, with its location. */
export function findRefs(value: unknown, at: (string | number)[] = []): Ref[] {
  if (typeof value === 'string') return refsInString(value, at);
  if (Array.isArray(value)) return value.flatMap((item, i) => findRefs(item, [...at, i]));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => findRefs(item, [...at, key]));
  }
  return [];
}

/** The whole-value form: the string is exactly one reference (no other `$ref:` after it). */
const wholeRef = (text: string) => (text.includes('$ref:', 5) ? null : WHOLE.exec(text));

function refsInString(text: string, at: (string | number)[]): Ref[] {
  const whole = wholeRef(text);
  if (whole) return [{ at, item: whole[1] as string, path: splitPath(whole[2] ?? ''), whole: true }];
  const refs: Ref[] = [];
  for (const match of text.matchAll(INSIDE)) {
    if (match[0] === '$$ref:') continue;
    refs.push({ at, item: match[1] as string, path: splitPath(match[2] ?? ''), whole: false });
  }
  return refs;
}

const splitPath = (dotted: string) => (dotted ? dotted.slice(1).split('.') : []);

/** The value at `path` inside `value`, or `missing` when there is none. */
export function dig(value: unknown, path: string[]): { found: true; value: unknown } | { found: false } {
  let current = value;
  for (const segment of path) {
    if (Array.isArray(current) && /^(0|[1-9]\d*)$/.test(segment) && Number(segment) < current.length) {
      current = current[Number(segment)];
    } else if (
      current !== null &&
      typeof current === 'object' &&
      !Array.isArray(current) &&
      Object.hasOwn(current, segment)
    ) {
      current = (current as Record<string, unknown>)[segment];
    } else {
      return { found: false };
    }
  }
  return { found: true, value: current };
}

/** Thrown when a reference cannot be resolved against the results at run time. */
export class RefError extends Error {
  override name = 'RefError';
  readonly code = 'BAD_REFERENCE';
  readonly retryable = false;
}

/** Replaces every reference in `value` with the referenced results; unescapes `$$ref:`. */
export function resolveRefs(value: unknown, results: ReadonlyMap<string, unknown>): unknown {
  if (typeof value === 'string') return resolveString(value, results);
  if (Array.isArray(value)) return value.map((item) => resolveRefs(item, results));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolveRefs(item, results)]));
  }
  return value;
}

function lookup(results: ReadonlyMap<string, unknown>, item: string, path: string[]): unknown {
  if (!results.has(item)) throw new RefError(`$ref:${[item, ...path].join('.')}: ${item} has no result`);
  const found = dig(results.get(item), path);
  if (!found.found)
    throw new RefError(`$ref:${[item, ...path].join('.')}: no such value in the result of ${item}`);
  return found.value;
}

function resolveString(text: string, results: ReadonlyMap<string, unknown>): unknown {
  const whole = wholeRef(text);
  if (whole) return lookup(results, whole[1] as string, splitPath(whole[2] ?? ''));
  return text.replace(INSIDE, (match, item: string | undefined, dotted: string | undefined) => {
    if (match === '$$ref:') return '$ref:';
    const value = lookup(results, item as string, splitPath(dotted ?? ''));
    if (value !== null && typeof value === 'object') {
      throw new RefError(`${match}: an object or array cannot be interpolated into a string`);
    }
    return String(value);
  });
}
