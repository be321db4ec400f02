import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { type Client, createClient } from 'graphql-ws';

/** A raw GraphQL POST: status, the body as JSON (or null), headers. */
export async function post(
  url: string,
  body: string | Record<string, unknown>,
  token?: string,
  headers: Record<string, string> = {},
) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] } | null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: response.status, json, headers: response.headers };
}

/** A graphql-ws client that never retries, for tests of refusals. */
export function wsClient(url: string, token?: string | null, onClosed?: (event: unknown) => void): Client {
  return createClient({
    url: url.replace(/^http/, 'ws'),
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
    on: onClosed ? { closed: onClosed } : undefined,
  });
}

/** The outcome of one operation over graphql-ws: its results, or the error it ended with. */
export function runWs(
  client: Client,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<{ results: unknown[]; error?: unknown }> {
  return new Promise((resolve) => {
    const results: unknown[] = [];
    client.subscribe(
      { query, variables },
      {
        next: (value) => results.push(value),
        error: (error) => resolve({ results, error }),
        complete: () => resolve({ results }),
      },
    );
  });
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/**
 * A POST on a fresh connection (no keep-alive), returning the status and the first error's code:
 * for large bodies sent in bulk, where a reused idle socket may be closed under the client.
 */
export function postOnce(url: string, body: string): Promise<{ status: number; code: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', accept: 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, code: JSON.parse(text).errors?.[0]?.extensions?.code }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
