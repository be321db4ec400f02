/**
 * Group commit for one kind of write: calls wait for the end of the current event-loop turn, then
 * run together, in one statement, up to `max` at a time; calls made while a run is in flight run
 * together after it. Each group is taken at the end of a turn (one `setImmediate`), not at once:
 * the calls of one turn (the attempts a fetch or a statement's answer resumed together) and the
 * callers the previous group's answer resumed join the same group. Taken at once, a fetch of 8 jobs
 * started as a group of 1 and one of 7, and slots freed by one answer missed the next group (groups
 * of ~2 for 8 slots, measured with bench:batch). A lone write waits one turn of an idle loop.
 * Under load N writes cost one round trip and one transaction instead of N
 * (src/operations/grouped.ts uses it for the worker's start and complete transitions).
 */
export function coalesce<I, O>(
  run: (items: I[]) => Promise<O[]>,
  options: {
    max?: number;
    /** Whether a failed group should be retried item by item (each then fails on its own). */
    retrySingly?: (error: unknown) => boolean;
  } = {},
): (item: I) => Promise<O> {
  const max = options.max ?? 64;
  const queue: { item: I; resolve: (value: O) => void; reject: (error: unknown) => void }[] = [];
  let running = false;

  const runOne = async (entry: (typeof queue)[number]) => {
    try {
      const [result] = await run([entry.item]);
      entry.resolve(result as O);
    } catch (error) {
      entry.reject(error);
    }
  };

  const drain = async () => {
    running = true;
    for (;;) {
      await endOfTurn();
      if (queue.length === 0) break;
      const group = queue.splice(0, max);
      try {
        const results = await run(group.map((entry) => entry.item));
        for (const [index, entry] of group.entries()) entry.resolve(results[index] as O);
      } catch (error) {
        if (group.length > 1 && options.retrySingly?.(error)) await Promise.all(group.map(runOne));
        else for (const entry of group) entry.reject(error);
      }
    }
    running = false;
  };

  return (item) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (!running) void drain();
    });
}

/** Resolves in the check phase of this loop iteration, once its microtasks and I/O callbacks ran. */
const endOfTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
