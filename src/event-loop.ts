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
    await nextLoopTurn();
    since = performance.now();
  };
}

/**
 * Resolves once the event loop has run its timers and its I/O callbacks: after two `setImmediate`s.
 * One is not enough when called from an I/O callback (a request's body or a database answer
 * arriving): its callback runs in the check phase of the same loop iteration, so the work before
 * and after it would hold the loop as one turn, with no timer (heartbeats) or other request between.
 */
export function nextLoopTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
}
