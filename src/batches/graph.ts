/**
 * A batch's dependency graph, over item indexes. Every function here is iterative (no recursion,
 * so a chain of any length cannot overflow the stack) and linear in items + dependencies, except
 * `ancestry`, which is linear times the number of distinct `$ref` targets / 32.
 */

/** `deps[i]`: the distinct indexes item `i` depends on. */
export type Deps = readonly (readonly number[])[];

/** Who depends on each item. */
function dependentsOf(deps: Deps): number[][] {
  const dependents: number[][] = deps.map(() => []);
  deps.forEach((list, i) => {
    for (const dep of list) dependents[dep]?.push(i);
  });
  return dependents;
}

/**
 * Topological levels (Kahn's algorithm): each level depends only on earlier ones; indexes in a level
 * are in request order. Items in a cycle, or depending on one, are in no level.
 */
export function levelsOf(deps: Deps): number[][] {
  const waiting = deps.map((list) => list.length);
  const dependents = dependentsOf(deps);
  const levels: number[][] = [];
  let level = waiting.flatMap((count, i) => (count === 0 ? [i] : []));
  while (level.length > 0) {
    levels.push(level);
    const next: number[] = [];
    for (const i of level) {
      for (const dependent of dependents[i] ?? []) {
        waiting[dependent] = (waiting[dependent] as number) - 1;
        if (waiting[dependent] === 0) next.push(dependent);
      }
    }
    level = next.sort((a, b) => a - b);
  }
  return levels;
}

/**
 * Cycles found by a depth-first walk along dependencies, each as the indexes of its path back to
 * its start (`a → b → c → a`); one per dependency that closes a cycle. `onCycle` receives each
 * cycle's start, and the cycle as a function to call at once if needed (the walk moves on after).
 */
export function findCycles(deps: Deps, onCycle: (start: number, cycle: () => number[]) => void): void {
  const state = new Uint8Array(deps.length); // 0 unseen, 1 on the path, 2 done
  const position = new Int32Array(deps.length).fill(-1);
  for (let root = 0; root < deps.length; root += 1) {
    if (state[root] !== 0) continue;
    const path: number[] = [root];
    const next: number[] = [0];
    state[root] = 1;
    position[root] = 0;
    while (path.length > 0) {
      const top = path.length - 1;
      const node = path[top] as number;
      const list = deps[node] ?? [];
      const index = next[top] as number;
      if (index >= list.length) {
        state[node] = 2;
        position[node] = -1;
        path.pop();
        next.pop();
        continue;
      }
      next[top] = index + 1;
      const dep = list[index] as number;
      if (state[dep] === 1) {
        const from = position[dep] as number;
        const snapshot = path.length;
        onCycle(dep, () => [...path.slice(from, snapshot), dep]);
      } else if (state[dep] === 0) {
        state[dep] = 1;
        position[dep] = path.length;
        path.push(dep);
        next.push(0);
      }
    }
  }
}

/** Distinct targets handled per pass of `ancestry` (bits per item per pass). */
const BLOCK = 1024;

/**
 * Answers "is `target` among the direct or indirect dependencies of `item`?" for each query, with
 * ancestor bitsets propagated in topological `order`, BLOCK targets at a time (memory: items ×
 * BLOCK bits). Items outside `order` (in or behind a cycle) answer true: their batch is refused
 * for the cycle already.
 */
export function ancestry(deps: Deps, order: readonly number[], queries: readonly [number, number][]) {
  const answers = queries.map(() => true);
  const placed = new Uint8Array(deps.length);
  for (const i of order) placed[i] = 1;
  const targets = [...new Set(queries.map(([, target]) => target))];
  for (let start = 0; start < targets.length; start += BLOCK) {
    const block = targets.slice(start, start + BLOCK);
    const slot = new Map(block.map((target, i) => [target, i]));
    const words = Math.ceil(block.length / 32);
    const bits = new Uint32Array(deps.length * words);
    for (const item of order) {
      const base = item * words;
      for (const dep of deps[item] ?? []) {
        const from = dep * words;
        for (let w = 0; w < words; w += 1)
          bits[base + w] = (bits[base + w] as number) | (bits[from + w] as number);
        const own = slot.get(dep);
        if (own !== undefined) {
          const word = base + (own >> 5);
          bits[word] = (bits[word] as number) | (1 << (own & 31));
        }
      }
    }
    queries.forEach(([item, target], q) => {
      const own = slot.get(target);
      if (own === undefined || !placed[item]) return;
      answers[q] = ((bits[item * words + (own >> 5)] as number) & (1 << (own & 31))) !== 0;
    });
  }
  return answers;
}
