import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import type { Plugin } from 'graphql-yoga';

export interface CorsOptions {
  /** Origins (scheme://host[:port]) allowed besides the server's own. */
  origins: string[];
  /** Whether any `http://localhost:<port>` / `http://127.0.0.1:<port>` origin is allowed too. */
  allowLocalhost: boolean;
}

const LOCALHOST = /^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;

/**
 * Yoga's `cors` option: a browser on an allowed origin gets CORS headers for it; any other origin
 * gets none, so the browser neither sends its preflighted requests nor shows it a response.
 */
export function corsFor({ origins, allowLocalhost }: CorsOptions) {
  const allowed = new Set(origins);
  return (request: Request) => {
    const origin = request.headers.get('origin');
    if (!origin) return false as const;
    const own = new URL(request.url).origin;
    if (origin === own || allowed.has(origin) || (allowLocalhost && LOCALHOST.test(origin))) {
      return { origin, credentials: false, maxAge: 600 };
    }
    return false as const;
  };
}

/**
 * CSRF prevention (Yoga's maintained plugin): a request a browser would send cross-site without
 * a preflight — a GET, or a POST of a form or text/plain — must carry the `x-graphql-yoga-csrf`
 * header (any value) or an `Authorization` header, or is refused with 403. Neither header is
 * CORS-safelisted, so a cross-site page cannot add one without a preflight (which CORS refuses).
 * JSON POSTs (clients, graphql-sse and SSE with `Accept: text/event-stream`) are unaffected;
 * GraphiQL's subscriptions are GETs with `Accept: text/event-stream` and the Headers tab's
 * Authorization.
 */
export const useCsrfPrevention = (): Plugin =>
  useCSRFPrevention({ requestHeaders: ['x-graphql-yoga-csrf', 'authorization'] });
