import type { z } from 'zod';
import type { Config } from '../config.ts';
import type { Problem } from '../errors.ts';
import { slicer } from '../event-loop.ts';
import { checkInput, type InputLimits, inputLimits, ProblemList, quote } from '../operations/input-limits.ts';
import type { OperationType, Registry } from '../operations/registry.ts';
import { toProblems } from '../operations/start.ts';
import { ancestry, findCycles, levelsOf } from './graph.ts';
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

/** The limits a batch is validated against (from the configuration). */
export interface BatchLimits {
  /** Most items. Default 1000 (`OPSGRAPH_BATCH_MAX_ITEMS`). */
  maxItems: number;
  /** Most dependsOn entries of one item. Default 1000. */
  maxItemDependencies: number;
  /** Most dependsOn entries of the whole batch. Default 10000. */
  maxDependencies: number;
  /** Bounds of each item's input. Defaults 1 MB and 64 levels. */
  input: InputLimits;
  /** Most bytes of all item inputs together. Default 2 MB. */
  maxInputBytes: number;
  /** Most `$ref:`s in all item inputs together. Default 10000. */
  maxRefs: number;
  /** Most problems listed in the ValidationError. Default 100. */
  maxProblems: number;
}

export const batchLimits = (config: Config): BatchLimits => ({
  maxItems: config.batchMaxItems,
  maxItemDependencies: config.batchMaxItemDependencies,
  maxDependencies: config.batchMaxDependencies,
  input: inputLimits(config),
  maxInputBytes: config.batchInputMaxBytes,
  maxRefs: config.batchMaxRefs,
  maxProblems: config.maxProblems,
});

/** Item ids of a cycle as shown in a message: the first 20, then how many more. */
function showCycle(ids: string[]): string {
  if (ids.length <= 21) return ids.join(' → ');
  return `${ids.slice(0, 20).join(' → ')} → … (${ids.length - 21} more) → ${ids.at(-1)}`;
}

/**
 * Validates a whole batch before anything runs and returns its plan, or throws one
 * ValidationError listing its problems (the first `maxProblems`, and how many more) with their
 * item and path. Linear in items + dependencies + the size of the inputs.
 */
export async function planBatch(
  registry: Registry,
  request: BatchRequest,
  limits: BatchLimits,
): Promise<Plan> {
  const slice = slicer();
  const problems = new ProblemList(limits.maxProblems);
  const add = (path: (string | number)[], message: string | (() => string)) => problems.add(path, message);
  const { items } = request;
  if (items.length === 0) add(['items'], 'a batch needs at least one item');
  if (items.length > limits.maxItems) {
    // Nothing else is looked at: the request is refused for its size alone.
    add(['items'], `at most ${limits.maxItems} items (got ${items.length})`);
    problems.throwIfAny();
  }
  const edges = items.reduce((sum, item) => sum + (item.dependsOn?.length ?? 0), 0);
  if (edges > limits.maxDependencies) {
    add(['items'], `at most ${limits.maxDependencies} dependencies in a batch (got ${edges})`);
    problems.throwIfAny();
  }
  if (request.continueOnError && request.atomic) {
    add(['continueOnError'], 'only applies to non-atomic batches (set atomic: false)');
  }

  // Item ids first (the first item with an id owns it), so that dependsOn is checked in one pass.
  const byId = new Map<string, number>();
  items.forEach((item, i) => {
    if (item.id && ITEM_ID.test(item.id) && !byId.has(item.id)) byId.set(item.id, i);
  });
  const deps: number[][] = items.map(() => []);
  items.forEach((item, i) => {
    if (!item.id) add(['items', i, 'id'], 'is required');
    else if (!ITEM_ID.test(item.id)) add(['items', i, 'id'], 'must be 1–100 letters, digits, "_" or "-"');
    else if (byId.get(item.id) !== i)
      add(['items', i, 'id'], `duplicate id "${item.id}" (also item ${byId.get(item.id)})`);
    if (!item.type) add(['items', i, 'type'], 'is required');
    else if (!registry.startable(item.type))
      add(['items', i, 'type'], () => `unknown operation type ${quote(item.type as string)}`);
    const dependsOn = item.dependsOn ?? [];
    if (dependsOn.length > limits.maxItemDependencies) {
      add(
        ['items', i, 'dependsOn'],
        `at most ${limits.maxItemDependencies} dependencies (got ${dependsOn.length})`,
      );
      return;
    }
    const own = byId.get(item.id ?? '') === i;
    const seen = new Set<number>();
    dependsOn.forEach((dep, j) => {
      const target = byId.get(dep);
      if (target === undefined) add(['items', i, 'dependsOn', j], () => `unknown item ${quote(dep)}`);
      else if (target === i || dep === item.id)
        add(['items', i, 'dependsOn', j], 'an item cannot depend on itself');
      else if (own && !seen.has(target)) {
        seen.add(target);
        deps[i]?.push(target);
      }
    });
  });
  findCycles(deps, (start, cycle) =>
    add(['items', start, 'dependsOn'], () => {
      const ids = cycle().map((i) => items[i]?.id as string);
      return `dependency cycle (each depends on the next): ${showCycle(ids)}`;
    }),
  );
  const levels = levelsOf(deps);

  const candidates: { item: BatchItemRequest; i: number; type: OperationType; refs: Ref[] }[] = [];
  let inputBytes = 0;
  let refCount = 0;
  for (const [i, item] of items.entries()) {
    await slice();
    const type = item.type ? registry.startable(item.type) : undefined;
    if (!item.id || !type || byId.get(item.id) !== i) continue;
    const at = ['items', i, 'input'];
    const bytes = checkInput(item.input ?? {}, at, limits.input, problems, true);
    if (bytes === null) continue; // too large or too deep: not looked at further
    inputBytes += bytes;
    if (inputBytes > limits.maxInputBytes) break;
    const refs = findRefs(item.input, at, limits.maxRefs - refCount);
    refCount += refs.length;
    if (refCount > limits.maxRefs) break;
    candidates.push({ item, i, type, refs });
  }
  if (inputBytes > limits.maxInputBytes || refCount > limits.maxRefs) {
    if (inputBytes > limits.maxInputBytes) {
      add(['items'], `the item inputs take more than ${limits.maxInputBytes} bytes as JSON together`);
    } else add(['items'], `at most ${limits.maxRefs} references ($ref:) in a batch`);
    problems.throwIfAny();
  }

  // "Is the referenced item an ancestor?" for every reference at once (bitsets, see ancestry).
  const queries: [number, number][] = [];
  for (const { i, refs } of candidates) {
    for (const ref of refs) {
      const target = byId.get(ref.item);
      if (target !== undefined) queries.push([i, target]);
    }
  }
  const answers = ancestry(deps, levels.flat(), queries);
  const schemaChecks = new Map<string, string | undefined>();
  let q = 0;
  const planned: PlannedItem[] = [];
  for (const { item, i, type, refs } of candidates) {
    await slice();
    for (const ref of refs) {
      const isAncestor = byId.has(ref.item) ? (answers[q++] as boolean) : false;
      const problem = refProblem(registry, ref, items, byId, isAncestor, schemaChecks);
      if (problem) add(ref.at, problem);
    }
    for (const issue of inputIssues(type.input, item.input, refs))
      add(['items', i, ...issue.path], issue.message);
    if (
      (request.atomic && !type.compensate && !type.inline) ||
      (request.atomic && type.inline && !type.compensate && (deps[i]?.length ?? 0) > 0)
    ) {
      add(
        ['items', i, 'type'],
        `${type.name} has no compensation step, so it cannot be part of an atomic batch`,
      );
    }
    const dependsOn = (deps[i] ?? []).map((d) => items[d]?.id as string);
    planned.push({ id: item.id as string, type, input: item.input, dependsOn, refs });
  }
  problems.throwIfAny();
  const ids = items.map((item) => item.id as string);
  return { items: planned, levels: levels.map((level) => level.map((i) => ids[i] as string)) };
}

function refProblem(
  registry: Registry,
  ref: Ref,
  items: readonly BatchItemRequest[],
  byId: Map<string, number>,
  isAncestor: boolean,
  schemaChecks: Map<string, string | undefined>,
): string | undefined {
  const dotted = [ref.item, ...ref.path].join('.');
  const shown = `$ref:${dotted.length > 100 ? `${dotted.slice(0, 100)}…` : dotted}`;
  if (!byId.has(ref.item)) return `${shown}: no item ${quote(ref.item)} in this batch`;
  if (!isAncestor)
    return `${shown}: "${ref.item}" is not among this item's dependencies (direct or indirect)`;
  const typeName = items[byId.get(ref.item) as number]?.type as string;
  // The same path into the same type is checked once, however many references use it.
  const key = `${typeName}\0${ref.whole}\0${ref.path.join('\0')}`;
  if (!schemaChecks.has(key)) schemaChecks.set(key, schemaProblem(registry, typeName, ref));
  const problem = schemaChecks.get(key);
  return problem && `${shown}: ${problem}`;
}

/** Why the declared output of `typeName` cannot hold what `ref` asks for, if it cannot. */
function schemaProblem(registry: Registry, typeName: string, ref: Ref): string | undefined {
  const schema = registry.outputJsonSchema(typeName);
  if (!schema) return undefined; // no declared output: checked when it runs
  const target = schemaAt(schema as JsonSchema, ref.path);
  if (!target) {
    const at = ref.path.join('.') || '(root)';
    return `${typeName} results have no field at ${at.length > 100 ? `${at.slice(0, 100)}…` : at}`;
  }
  if (!ref.whole && (target.type === 'object' || target.type === 'array')) {
    return `an ${target.type} cannot be interpolated into a string`;
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
  const refPaths = new Set(refs.map((ref) => ['input', ...ref.at.slice(3)].map(String).join('\0')));
  return parsed.error.issues.flatMap(toProblems).filter((problem) => {
    const at = problem.path.map(String);
    for (let end = 1; end <= at.length; end += 1) if (refPaths.has(at.slice(0, end).join('\0'))) return false;
    return true;
  });
}

/** Kahn's algorithm, level by level, over item ids; ids in a level keep request order. */
export function kahnLevels(ids: string[], deps: (id: string) => string[]): string[][] {
  const index = new Map(ids.map((id, i) => [id, i]));
  const graph = ids.map((id) => [
    ...new Set(deps(id).flatMap((dep) => (index.has(dep) ? [index.get(dep) as number] : []))),
  ]);
  return levelsOf(graph).map((level) => level.map((i) => ids[i] as string));
}
