/**
 * The worst inputs the input limits allow (issue 9, points 4–5), built from the configured limits:
 * used by `bench/validate.ts` (timing planBatch alone) and `test/security/event-loop.test.ts`
 * (sending them to a server). Item inputs use `diagnostics.echo`, whose `value` is any JSON and
 * whose result is `{ value }`.
 */

export interface Item {
  id: string;
  type: string;
  input?: unknown;
  dependsOn?: string[];
}

export interface Limits {
  maxItems: number;
  maxDependencies: number;
  maxItemDependencies: number;
  inputMaxBytes: number;
  inputMaxDepth: number;
  batchInputMaxBytes: number;
  maxRefs: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxItems: 1000,
  maxDependencies: 10_000,
  maxItemDependencies: 1000,
  inputMaxBytes: 1024 * 1024,
  inputMaxDepth: 64,
  batchInputMaxBytes: 2 * 1024 * 1024,
  maxRefs: 10_000,
};

const id = (i: number) => `i${i}`;

/**
 * `edges` dependencies spread over `items` items, each item on earlier ones only (no cycle): item i
 * depends on i-1 (a chain as long as the batch: the deepest ancestry), then on the items furthest
 * back, so that ancestor sets are as large as they can be.
 */
function dependencies(items: number, edges: number, perItem: number): string[][] {
  const deps = Array.from({ length: items }, (_, i) => (i > 0 && i <= edges ? [id(i - 1)] : []));
  let left = edges - Math.min(edges, items - 1);
  for (let k = 0; left > 0 && k < items; k += 1) {
    for (let i = k + 2; i < items && left > 0; i += 1) {
      const list = deps[i] as string[];
      if (list.length >= perItem) continue;
      list.push(id(k));
      left -= 1;
    }
  }
  return deps;
}

/**
 * The densest allowed validateOnly batch: the most items, the most dependencies, the most `$ref:`s
 * (to far ancestors, each checked for ancestry and against the referenced type's output schema),
 * and inputs that fill the rest of the batch's byte limit with many small values.
 */
export function densestBatch(limits: Limits = DEFAULT_LIMITS, edges = limits.maxDependencies): Item[] {
  const n = limits.maxItems;
  const deps = dependencies(n, edges, limits.maxItemDependencies);
  const refsPerItem = Math.floor(limits.maxRefs / n);
  const perItem = Math.floor((limits.batchInputMaxBytes * 0.9) / n);
  return deps.map((dependsOn, i) => {
    const refs = i === 0 ? [] : Array.from({ length: refsPerItem }, (_, k) => `$ref:${id(k % i)}.value`);
    const used = refs.reduce((sum, ref) => sum + ref.length + 3, 40);
    const small = Array.from({ length: Math.max(0, Math.floor((perItem - used) / 2)) }, () => 0);
    return { id: id(i), type: 'diagnostics.echo', input: { value: { refs, small } }, dependsOn };
  });
}

/**
 * 1,000 items with 1,000 dependencies in total (the figure of the issue): a chain, each item
 * referencing its predecessor and the first item (small inputs).
 */
export function thousandBatch(limits: Limits = DEFAULT_LIMITS): Item[] {
  return dependencies(limits.maxItems, 1000, limits.maxItemDependencies).map((dependsOn, i) => ({
    id: id(i),
    type: 'diagnostics.echo',
    input: i === 0 ? { value: 1 } : { value: [`$ref:${id(i - 1)}.value`, `first: $ref:${id(0)}.value`] },
    dependsOn,
  }));
}

/** A JSON value of about `bytes` bytes nested `depth` deep (objects of short strings). */
export function largeValue(bytes: number, depth = 1): unknown {
  const leaf = 'x'.repeat(1000);
  const entries = Math.max(1, Math.floor((bytes - depth * 12) / 1012));
  const flat = Object.fromEntries(Array.from({ length: entries }, (_, i) => [`k${i}`, leaf]));
  let value: unknown = flat;
  for (let d = 1; d < depth; d += 1) value = { d: value };
  return value;
}

/** The largest allowed startBatch: inputs as large as the batch allows, nested as deep as allowed. */
export function largestBatch(limits: Limits = DEFAULT_LIMITS): Item[] {
  const count = Math.max(1, Math.floor(limits.batchInputMaxBytes / limits.inputMaxBytes));
  const size = Math.floor((limits.batchInputMaxBytes * 0.97) / count) - 64;
  return Array.from({ length: count }, (_, i) => ({
    id: id(i),
    type: 'diagnostics.echo',
    input: { value: largeValue(Math.min(size, limits.inputMaxBytes - 64), limits.inputMaxDepth - 2) },
  }));
}

/**
 * A small batch whose references would amplify past the limits: item `big` returns a value of
 * almost the input limit, item `copy` references it `copies` times (a few hundred bytes of request).
 */
export function amplifyingBatch(limits: Limits = DEFAULT_LIMITS, copies = 2000): Item[] {
  return [
    { id: 'big', type: 'diagnostics.echo', input: { value: largeValue(limits.inputMaxBytes - 1024) } },
    {
      id: 'copy',
      type: 'diagnostics.echo',
      input: { value: Array.from({ length: copies }, () => '$ref:big.value') },
      dependsOn: ['big'],
    },
  ];
}

/** A batch with as many problems as the limits allow (every dependency unknown). */
export function problemBatch(limits: Limits = DEFAULT_LIMITS): Item[] {
  const perItem = Math.floor(limits.maxDependencies / limits.maxItems);
  return Array.from({ length: limits.maxItems }, (_, i) => ({
    id: id(i),
    type: 'diagnostics.echo',
    input: {},
    dependsOn: Array.from({ length: perItem }, (_, j) => `ghost${j}`),
  }));
}

/** A batch that is one big cycle, with every other allowed dependency closing a cycle too. */
export function cyclicBatch(limits: Limits = DEFAULT_LIMITS): Item[] {
  const n = limits.maxItems;
  const extra = Math.floor(limits.maxDependencies / n) - 1;
  return Array.from({ length: n }, (_, i) => ({
    id: id(i),
    type: 'diagnostics.echo',
    input: {},
    dependsOn: [id((i + 1) % n), ...Array.from({ length: extra }, (_, k) => id((i + n - 1 - k) % n))].filter(
      (dep, k, all) => dep !== id(i) && all.indexOf(dep) === k,
    ),
  }));
}
