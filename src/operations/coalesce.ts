/**
 * Group commit for one kind of write: the first call runs at once; calls made while a run is in
 * flight wait for it and then run together, in one statement, up to `max` at a time. So a lone
 * write costs no extra wait, and under load N writes cost one round trip and one transaction
 * instead of N (src/operations/grouped.ts uses it for the worker's start and complete transitions).
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
    while (queue.length > 0) {
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
