/**
 * Long synchronous work split into slices: `await slice()` inside a loop lets other callbacks run
 * (requests, heartbeats of operations running in this process) once `ms` have passed since the last
 * time it did, and costs a clock read otherwise. Default 10 ms, well under the 50 ms a request may
 * hold the event loop (issue 9, point 5).
 */
export function slicer(ms = 10): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < ms) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    since = performance.now();
  };
}
