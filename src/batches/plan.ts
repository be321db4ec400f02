import type { z } from 'zod';
import { type Problem, ValidationError } from '../errors.ts';
import type { OperationType, Registry } from '../operations/registry.ts';
import { nulPaths, toProblems } from '../operations/start.ts';
import { findRefs, type Ref } from './refs.ts';

/** One item of a startBatch request, as the client sent it. */
export interface BatchItemRequest {
  id?: string | null;
  type?: string | null;
  input?: unknown;
  dependsOn?: readonly string[] | null;
}

export interface BatchRequest {
  items: readonly BatchItemRequest[];
  atomic: boolean;
  continueOnError: boolean;
}

/** An item that passed validation. Its input still holds its references. */
export interface PlannedItem {
  id: string;
  type: OperationType;
  input: unknown;
  dependsOn: string[];
  refs: Ref[];
}

/** The execution plan: items in topological levels (each level depends only on earlier ones). */
export interface Plan {
  items: PlannedItem[];
  levels: string[][];
}

const ITEM_ID = /^[A-Za-z0-9_-]{1,100}$/;

/**
 * Validates a whole batch before anything runs and returns its plan, or throws one
 * ValidationError listing every problem with its item and path.
 */
export function planBatch(registry: Registry, request: BatchRequest, maxItems: number): Plan {
  const problems: Problem[] = [];
  const add = (path: (string | number)[], message: string) => problems.push({ path, message });
  const { items } = request;
  if (items.length === 0) add(['items'], 'a batch needs at least one item');
  if (items.length > maxItems) add(['items'], `at most ${maxItems} items (got ${items.length})`);
  if (request.continueOnError && request.atomic) {
    add(['continueOnError'], 'only applies to non-atomic batches (set atomic: false)');
  }

  const byId = new Map<string, number>();
  items.forEach((item, i) => {
    if (!item.id) add(['items', i, 'id'], 'is required');
    else if (!ITEM_ID.test(item.id)) add(['items', i, 'id'], 'must be 1–100 letters, digits, "_" or "-"');
    else if (byId.has(item.id))
      add(['items', i, 'id'], `duplicate id "${item.id}" (also item ${byId.get(item.id)})`);
    else byId.set(item.id, i);
    if (!item.type) add(['items', i, 'type'], 'is required');
    else if (!registry.startable(item.type))
      add(['items', i, 'type'], `unknown operation type "${item.type}"`);
    (item.dependsOn ?? []).forEach((dep, j) => {
      if (!byId.has(dep) && !items.some((other) => other.id === dep)) {
        add(['items', i, 'dependsOn', j], `unknown item "${dep}"`);
      } else if (dep === item.id) add(['items', i, 'dependsOn', j], 'an item cannot depend on itself');
    });
  });
  const deps = (id: string) =>
    [...new Set(items[byId.get(id) as number]?.dependsOn ?? [])].filter((d) => byId.has(d) && d !== id);
  const ids = [...byId.keys()];
  for (const cycle of findCycles(ids, deps)) {
    add(
      ['items', byId.get(cycle[0] as string) as number, 'dependsOn'],
      `dependency cycle (each depends on the next): ${cycle.join(' → ')}`,
    );
  }

  const ancestors = ancestorSets(ids, deps);
  const planned: PlannedItem[] = [];
  items.forEach((item, i) => {
    const type = item.type ? registry.startable(item.type) : undefined;
    if (!item.id || !type || byId.get(item.id) !== i) return;
    const refs = findRefs(item.input, ['items', i, 'input']);
    for (const ref of refs) {
      const problem = refProblem(registry, ref, items, byId, ancestors.get(item.id));
      if (problem) add(ref.at, problem);
    }
    for (const issue of inputIssues(type.input, item.input, refs))
      add(['items', i, ...issue.path], issue.message);
    for (const path of nulPaths(item.input, ['items', i, 'input']))
      add(path, 'must not contain NUL characters');
    if (
      (request.atomic && !type.compensate && !type.inline) ||
      (request.atomic && type.inline && !type.compensate && deps(item.id).length > 0)
    ) {
      add(
        ['items', i, 'type'],
        `${type.name} has no compensation step, so it cannot be part of an atomic batch`,
      );
    }
    planned.push({ id: item.id, type, input: item.input, dependsOn: deps(item.id), refs });
  });
  if (problems.length) throw new ValidationError(problems);
  return { items: planned, levels: kahnLevels(ids, deps) };
}

function refProblem(
  registry: Registry,
  ref: Ref,
  items: readonly BatchItemRequest[],
  byId: Map<string, number>,
  ancestors: Set<string> | undefined,
): string | undefined {
  const shown = `$ref:${[ref.item, ...ref.path].join('.')}`;
  if (!byId.has(ref.item)) return `${shown}: no item "${ref.item}" in this batch`;
  if (!ancestors?.has(ref.item))
    return `${shown}: "${ref.item}" is not among this item's dependencies (direct or indirect)`;
  const typeName = items[byId.get(ref.item) as number]?.type;
  const schema = typeName ? registry.outputJsonSchema(typeName) : null;
  if (!schema) return undefined; // no declared output: checked when it runs
  const target = schemaAt(schema as JsonSchema, ref.path);
  if (!target) return `${shown}: ${typeName} results have no field at ${ref.path.join('.') || '(root)'}`;
  if (!ref.whole && (target.type === 'object' || target.type === 'array')) {
    return `${shown}: an ${target.type} cannot be interpolated into a string`;
  }
  return undefined;
}

interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
}

/** The sub-schema at `path`, or undefined when the path cannot exist. */
function schemaAt(schema: JsonSchema, path: string[]): JsonSchema | undefined {
  let current: JsonSchema | undefined = schema;
  for (const segment of path) {
    if (!current) return undefined;
    if (current.anyOf) return {}; // a union: cannot be checked further
    if (current.type === 'array') current = /^\d+$/.test(segment) ? (current.items ?? {}) : undefined;
    else if (current.type === 'object' || current.properties) {
      current =
        current.properties?.[segment] ??
        (typeof current.additionalProperties === 'object' ? current.additionalProperties : undefined);
    } else if (current.type === undefined) return {};
    else return undefined;
  }
  return current;
}

/** Input problems (paths from `input`), ignoring those at a reference: its value is not known yet. */
function inputIssues(schema: z.ZodType, input: unknown, refs: Ref[]): Problem[] {
  const parsed = schema.safeParse(input);
  if (parsed.success) return [];
  const refPaths = refs.map((ref) => ['input', ...ref.at.slice(3)].map(String).join('\0'));
  return parsed.error.issues.flatMap(toProblems).filter((problem) => {
    const at = problem.path.map(String).join('\0');
    return !refPaths.some((ref) => at === ref || at.startsWith(`${ref}\0`));
  });
}

/** Cycles as paths that return to their start, following dependsOn (`a → b → c → a`). */
function findCycles(ids: string[], deps: (id: string) => string[]): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (id: string) => {
    state.set(id, 'open');
    stack.push(id);
    for (const dep of deps(id)) {
      if (state.get(dep) === 'open') cycles.push([...stack.slice(stack.indexOf(dep)), dep]);
      else if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(id, 'done');
  };
  for (const id of ids) if (!state.has(id)) visit(id);
  return cycles;
}

function ancestorSets(ids: string[], deps: (id: string) => string[]): Map<string, Set<string>> {
  const memo = new Map<string, Set<string>>();
  const of = (id: string, seen: Set<string>): Set<string> => {
    const known = memo.get(id);
    if (known) return known;
    const result = new Set<string>();
    for (const dep of deps(id)) {
      result.add(dep);
      if (!seen.has(dep)) for (const up of of(dep, new Set([...seen, dep]))) result.add(up);
    }
    memo.set(id, result);
    return result;
  };
  for (const id of ids) of(id, new Set([id]));
  return memo;
}

/** Kahn's algorithm, level by level; ids in a level keep request order. */
export function kahnLevels(ids: string[], deps: (id: string) => string[]): string[][] {
  const remaining = new Map(ids.map((id) => [id, new Set(deps(id))]));
  const levels: string[][] = [];
  while (remaining.size > 0) {
    const level = [...remaining].filter(([, waiting]) => waiting.size === 0).map(([id]) => id);
    if (level.length === 0) break; // a cycle: reported above
    levels.push(level);
    for (const id of level) remaining.delete(id);
    for (const waiting of remaining.values()) for (const id of level) waiting.delete(id);
  }
  return levels;
}
