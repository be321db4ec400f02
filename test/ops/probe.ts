import { setTimeout as sleep } from 'node:timers/promises';

/** What `/health` or `/ready` answered. */
export interface Probe {
  status: number;
  body: { status: string; failing?: string[]; checks?: Record<string, { ok: boolean; problem?: string }> };
}

/** GETs `/health` or `/ready` of the process whose GraphQL (or base) URL is `url`. */
export async function probe(url: string, path: '/health' | '/ready'): Promise<Probe> {
  const response = await fetch(new URL(path, url), { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: (await response.json()) as Probe['body'] };
}

/** Polls until `accept` holds for an answer of `path`; returns that answer or throws with the last one. */
export async function probeUntil(
  url: string,
  path: '/health' | '/ready',
  accept: (answer: Probe) => boolean,
  timeoutMs: number,
): Promise<Probe> {
  const deadline = Date.now() + timeoutMs;
  let last: Probe | Error | undefined;
  for (;;) {
    last = await probe(url, path).catch((error: Error) => error);
    if (!(last instanceof Error) && accept(last)) return last;
    if (Date.now() > deadline)
      throw new Error(
        `${path} did not answer as expected within ${timeoutMs} ms; last: ${JSON.stringify(last)}`,
      );
    await sleep(100);
  }
}
