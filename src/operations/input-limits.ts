import type { z } from 'zod';
import type { Config } from '../config.ts';
import { type Problem, ValidationError } from '../errors.ts';

/**
 * Limits on operation inputs (issue 9, point 4), measured on what is stored: the input as UTF-8
 * JSON. Every walk here is iterative and stops as soon as a bound is passed, so measuring a hostile
 * input costs at most what the limit allows, whatever its real size or depth.
 */

/** Bounds of one input. */
export interface InputLimits {
  /** Most bytes of the input as UTF-8 JSON. Default 1 MB (`config.inputMaxBytes`). */
  maxBytes: number;
  /** Deepest nesting of arrays and objects (a flat object is depth 1). Default 64. */
  maxDepth: number;
}

export const inputLimits = (config: Config): InputLimits => ({
  maxBytes: config.inputMaxBytes,
  maxDepth: config.inputMaxDepth,
});

type Path = (string | number)[];

/** What measuring a value found. */
export interface Measured {
  /** UTF-8 bytes of `JSON.stringify(value)`: exact when `over` is null, else above the bound. */
  bytes: number;
  /** Which bound was passed first (measuring stopped there), or null. */
  over: 'bytes' | 'depth' | null;
  /** Where the nesting first passed `maxDepth` (relative to the value). */
  deepAt: Path | null;
  /** Paths of strings and keys holding U+0000 (the first MAX_NUL_PATHS), when asked for. */
  nulAt: Path[];
  /** How many strings and keys hold U+0000. */
  nulCount: number;
}

const MAX_NUL_PATHS = 1000;

interface Frame {
  value: object;
  depth: number;
  key: string | number;
  parent: Frame | null;
}

const pathOf = (frame: Frame | null): Path => {
  const path: Path = [];
  for (let at = frame; at?.parent; at = at.parent) path.push(at.key);
  return path.reverse();
};

/** Printable ASCII other than `"` and `\`: written as is, one byte per character. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** UTF-8 bytes of a string as JSON (quotes and escapes included). */
export const stringBytes = (text: string): number =>
  PLAIN.test(text) ? text.length + 2 : Buffer.byteLength(JSON.stringify(text));

const scalarBytes = (value: unknown): number => {
  if (typeof value === 'number') return Number.isFinite(value) ? String(value).length : 4;
  if (typeof value === 'boolean') return value ? 4 : 5;
  return 4; // null (and undefined inside an array, which JSON writes as null)
};

/**
 * Measures `value` as JSON without serializing it. `baseDepth` is the nesting the value sits at
 * (a `$ref` inserting it deep in another input); `nul` also collects U+0000 paths.
 */
export function measureJson(value: unknown, limits: InputLimits, baseDepth = 0, nul = false): Measured {
  const measured: Measured = { bytes: 0, over: null, deepAt: null, nulAt: [], nulCount: 0 };
  const sawNul = (frame: Frame | null, key?: string | number) => {
    measured.nulCount += 1;
    if (measured.nulAt.length < MAX_NUL_PATHS) {
      measured.nulAt.push(key === undefined ? pathOf(frame) : [...pathOf(frame), key]);
    }
  };
  const leaf = (item: unknown, frame: Frame | null, key?: string | number) => {
    if (typeof item !== 'string') return scalarBytes(item);
    if (item.length > limits.maxBytes) return item.length; // at least one byte per code unit
    if (nul && item.includes('\u0000')) sawNul(frame, key);
    return stringBytes(item);
  };
  if (value === null || typeof value !== 'object') {
    measured.bytes = leaf(value, null);
    if (measured.bytes > limits.maxBytes) measured.over = 'bytes';
    return measured;
  }
  // A container's brackets are counted when it is found, its contents when it is taken off the stack.
  measured.bytes = 2;
  const stack: Frame[] = [{ value, depth: baseDepth + 1, key: '', parent: null }];
  while (stack.length > 0) {
    const frame = stack.pop() as Frame;
    if (frame.depth > limits.maxDepth) {
      measured.over = 'depth';
      measured.deepAt = pathOf(frame);
      return measured;
    }
    const budget = limits.maxBytes - measured.bytes;
    let bytes = 0;
    if (Array.isArray(frame.value)) {
      const list = frame.value as unknown[];
      bytes += Math.max(0, list.length - 1);
      for (let i = 0; i < list.length && bytes <= budget; i += 1) {
        const item = list[i];
        if (item !== null && typeof item === 'object') {
          bytes += 2;
          stack.push({ value: item, depth: frame.depth + 1, key: i, parent: frame });
        } else bytes += leaf(item, frame, i);
      }
    } else {
      const record = frame.value as Record<string, unknown>;
      const keys = Object.keys(record);
      let count = 0;
      for (let k = 0; k < keys.length && bytes <= budget; k += 1) {
        const key = keys[k] as string;
        const item = record[key];
        if (item === undefined) continue;
        if (key.length > limits.maxBytes) {
          bytes += key.length;
          break;
        }
        if (nul && key.includes('\u0000')) sawNul(frame, key);
        bytes += stringBytes(key) + (count > 0 ? 2 : 1); // key, colon, comma
        count += 1;
        if (item !== null && typeof item === 'object') {
          bytes += 2;
          stack.push({ value: item, depth: frame.depth + 1, key, parent: frame });
        } else bytes += leaf(item, frame, key);
      }
    }
    measured.bytes += bytes;
    if (measured.bytes > limits.maxBytes) {
      measured.over = 'bytes';
      return measured;
    }
  }
  return measured;
}

/** A text shown in a message, cut to `max` characters so that errors never echo large inputs. */
export function quote(text: string, max = 60): string {
  const shown = text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
  return JSON.stringify(shown);
}

/**
 * Problems of one request, of which at most `max` are kept (the rest only counted): a hostile
 * request with a million problems costs a counter, not a million messages.
 */
export class ProblemList {
  readonly listed: Problem[] = [];
  omitted = 0;
  constructor(readonly max: number) {}

  get full(): boolean {
    return this.listed.length >= this.max;
  }

  /** Adds a problem; a message given as a function is only built when the problem is listed. */
  add(path: Path, message: string | (() => string)): void {
    if (this.full) this.omitted += 1;
    else this.listed.push({ path, message: typeof message === 'function' ? message() : message });
  }

  /** Counts `count` more problems that are not listed. */
  omit(count: number): void {
    this.omitted += count;
  }

  get size(): number {
    return this.listed.length + this.omitted;
  }

  /** Throws them as one ValidationError, if there are any. */
  throwIfAny(): void {
    if (this.size > 0) throw new ValidationError(this.listed, this.omitted);
  }
}

/**
 * Checks one input's size and depth (and, with `nul`, U+0000) at `at`, adding its problems.
 * Returns its size in bytes when within the limits, or null.
 */
export function checkInput(
  value: unknown,
  at: Path,
  limits: InputLimits,
  problems: ProblemList,
  nul = false,
): number | null {
  const measured = measureJson(value, limits, 0, nul);
  if (measured.over === 'depth') {
    problems.add([...at, ...(measured.deepAt ?? [])], `nests deeper than ${limits.maxDepth} levels`);
    return null;
  }
  if (measured.over === 'bytes') {
    problems.add(at, `is larger than ${limits.maxBytes} bytes as JSON`);
    return null;
  }
  if (measured.nulCount > 0) {
    // Rare: listed again in document order (the measuring walk is depth-first from the end).
    const paths = nulPathsInOrder(value, problems.max);
    for (const path of paths) problems.add([...at, ...path], 'must not contain NUL characters');
    problems.omit(measured.nulCount - paths.length);
  }
  return measured.bytes;
}

/** The first `max` paths of strings and keys holding U+0000, in document order (depth already bounded). */
function nulPathsInOrder(value: unknown, max: number): Path[] {
  const found: Path[] = [];
  const visit = (item: unknown, path: Path) => {
    if (found.length >= max) return;
    if (typeof item === 'string') {
      if (item.includes('\u0000')) found.push(path);
    } else if (Array.isArray(item)) {
      item.forEach((entry, i) => {
        visit(entry, [...path, i]);
      });
    } else if (item !== null && typeof item === 'object') {
      for (const [key, entry] of Object.entries(item)) {
        if (key.includes('\u0000')) {
          if (found.length < max) found.push([...path, key]);
        } else visit(entry, [...path, key]);
      }
    }
  };
  visit(value, []);
  return found;
}

/** Throws a ValidationError at `at` when `value` is over the input limits of `config`. */
export function assertInputWithinLimits(config: Config, value: unknown, at: Path = ['input']): void {
  const problems = new ProblemList(config.maxProblems);
  checkInput(value, at, inputLimits(config), problems);
  problems.throwIfAny();
}

/** Bounds a list of problems found elsewhere (zod issues) to `max`, as a ValidationError. */
export function boundedValidationError(problems: Problem[], max: number): ValidationError {
  return new ValidationError(problems.slice(0, max), Math.max(0, problems.length - max));
}

/**
 * Parses a single operation's input with its type's schema, within the input limits: the raw input
 * is measured first (so a huge or deep one is refused before the schema walks it), then what will
 * be stored (with U+0000, which PostgreSQL refuses). Throws a ValidationError at `input`, its
 * problems bounded by `config.maxProblems`.
 */
export function parseInput<T>(
  config: Config,
  schema: z.ZodType<T>,
  input: unknown,
  toProblems: (issue: z.core.$ZodIssue) => Problem[],
): T {
  assertInputWithinLimits(config, input);
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw boundedValidationError(parsed.error.issues.flatMap(toProblems), config.maxProblems);
  }
  const problems = new ProblemList(config.maxProblems);
  checkInput(parsed.data, ['input'], inputLimits(config), problems, true);
  problems.throwIfAny();
  return parsed.data;
}
