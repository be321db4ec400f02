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

import { type InputLimits, measureJson, stringBytes } from '../operations/input-limits.ts';

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

/**
 * Every reference in a value, with its location. Iterative, and only strings that hold `$ref:` get
 * a path: linear in the size of the value. Stops once more than `limit` are found.
 */
export function findRefs(
  value: unknown,
  at: (string | number)[] = [],
  limit = Number.POSITIVE_INFINITY,
): Ref[] {
  const refs: Ref[] = [];
  type Frame = { value: object; key: string | number; parent: Frame | null };
  const pathOf = (frame: Frame | null, key?: string | number) => {
    const path: (string | number)[] = key === undefined ? [] : [key];
    for (let f: Frame | null = frame; f?.parent; f = f.parent) path.push(f.key);
    return [...at, ...path.reverse()];
  };
  // Only containers are stacked; strings are looked at where they are found.
  const visit = (item: unknown, frame: Frame | null, key?: string | number) => {
    if (typeof item === 'string') {
      if (item.includes('$ref:')) refs.push(...refsInString(item, pathOf(frame, key)));
    } else if (item !== null && typeof item === 'object') {
      stack.push({ value: item, key: key ?? '', parent: frame });
    }
  };
  const stack: Frame[] = [];
  visit(value, null);
  while (stack.length > 0 && refs.length <= limit) {
    const frame = stack.pop() as Frame;
    const current = frame.value;
    if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i -= 1) visit(current[i], frame, i);
    } else {
      const keys = Object.keys(current);
      for (let i = keys.length - 1; i >= 0; i -= 1) {
        const key = keys[i] as string;
        visit((current as Record<string, unknown>)[key], frame, key);
      }
    }
  }
  return refs;
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

/** Thrown when resolving references would make an input larger or deeper than allowed. */
export class InputTooLargeError extends Error {
  override name = 'InputTooLargeError';
  readonly code = 'INPUT_TOO_LARGE';
  readonly retryable = false;
}

/**
 * Bounds of a resolution: the resolved input must stay within `maxBytes` (UTF-8 JSON) and
 * `maxDepth`. Resolution stops with an InputTooLargeError as soon as it passes them: each value a
 * reference inserts is measured only up to what is left, and interpolated strings are built only
 * up to it, so a reference copied a million times costs no more than the limit.
 */
export type ResolveLimits = InputLimits;

const UNBOUNDED: ResolveLimits = { maxBytes: Number.POSITIVE_INFINITY, maxDepth: Number.POSITIVE_INFINITY };

/** Replaces every reference in `value` with the referenced results; unescapes `$$ref:`. */
export function resolveRefs(
  value: unknown,
  results: ReadonlyMap<string, unknown>,
  limits: ResolveLimits = UNBOUNDED,
): unknown {
  const budget = { left: limits.maxBytes };
  const tooLarge = () =>
    new InputTooLargeError(
      `with its references resolved, the input would be larger than ${limits.maxBytes} bytes as JSON`,
    );
  const spend = (bytes: number) => {
    budget.left -= bytes;
    if (budget.left < 0) throw tooLarge();
  };
  const resolve = (current: unknown, depth: number): unknown => {
    if (typeof current === 'string') {
      const whole = wholeRef(current);
      if (whole) {
        const found = lookup(results, whole[1] as string, splitPath(whole[2] ?? ''));
        const measured = measureJson(found, { maxBytes: budget.left, maxDepth: limits.maxDepth }, depth);
        if (measured.over === 'depth') {
          throw new InputTooLargeError(
            `with its references resolved, the input would nest deeper than ${limits.maxDepth} levels`,
          );
        }
        spend(measured.bytes);
        return found;
      }
      const text = interpolate(current, results, budget.left, tooLarge);
      spend(stringBytes(text));
      return text;
    }
    if (current === null || typeof current !== 'object') return current;
    if (depth + 1 > limits.maxDepth) {
      throw new InputTooLargeError(`the input nests deeper than ${limits.maxDepth} levels`);
    }
    spend(2);
    if (Array.isArray(current)) {
      spend(Math.max(0, current.length - 1));
      return current.map((item) => resolve(item, depth + 1));
    }
    const entries = Object.entries(current).filter(([, item]) => item !== undefined);
    spend(Math.max(0, entries.length - 1));
    return Object.fromEntries(
      entries.map(([key, item]) => {
        spend(stringBytes(key) + 1);
        return [key, resolve(item, depth + 1)];
      }),
    );
  };
  return resolve(value, 0);
}

function lookup(results: ReadonlyMap<string, unknown>, item: string, path: string[]): unknown {
  const shown = () => `$ref:${quoteRef([item, ...path].join('.'))}`;
  if (!results.has(item)) throw new RefError(`${shown()}: ${quoteRef(item)} has no result`);
  const found = dig(results.get(item), path);
  if (!found.found) throw new RefError(`${shown()}: no such value in the result of ${quoteRef(item)}`);
  return found.value;
}

/** A reference as shown in a message: cut, so that errors never echo a large input back. */
const quoteRef = (text: string) => (text.length > 100 ? `${text.slice(0, 100)}…` : text);

/** A string with its interpolated references replaced, built only while within `left` characters. */
function interpolate(
  text: string,
  results: ReadonlyMap<string, unknown>,
  left: number,
  tooLarge: () => Error,
): string {
  if (!text.includes('$ref:')) return text;
  const pieces: string[] = [];
  let length = 0;
  let last = 0;
  const push = (piece: string) => {
    length += piece.length;
    if (length > left) throw tooLarge(); // every code unit is at least one byte
    pieces.push(piece);
  };
  for (const match of text.matchAll(INSIDE)) {
    push(text.slice(last, match.index));
    last = match.index + match[0].length;
    if (match[0] === '$$ref:') {
      push('$ref:');
      continue;
    }
    const value = lookup(results, match[1] as string, splitPath(match[2] ?? ''));
    if (value !== null && typeof value === 'object') {
      throw new RefError(`${quoteRef(match[0])}: an object or array cannot be interpolated into a string`);
    }
    push(String(value));
  }
  push(text.slice(last));
  return pieces.join('');
}
