import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from './metrics.ts';

/** The path Prometheus scrapes. */
export const METRICS_PATH = '/metrics';

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Whether `Authorization` carries `Bearer <token>`, compared in constant time. */
function authorized(header: string | undefined, token: string): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? '');
  return match !== null && timingSafeEqual(digest(match[1] as string), digest(token));
}

/**
 * Answers `GET /metrics` with this process's registry in Prometheus text format; 401 when
 * `metricsToken` is set and the request does not carry it, 405 for other methods. (With metrics
 * `off` the route is not served at all.)
 */
export function serveMetrics(
  config: Pick<Config, 'metricsToken'>,
  metrics: Metrics,
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const plain = (status: number, text: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
      ...headers,
    });
    res.end(text);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    plain(405, 'use GET\n', { allow: 'GET, HEAD' });
    return;
  }
  if (config.metricsToken !== undefined && !authorized(req.headers.authorization, config.metricsToken)) {
    plain(401, 'a bearer token is required\n', { 'www-authenticate': 'Bearer realm="metrics"' });
    return;
  }
  metrics.registry.metrics().then(
    (text) => plain(200, req.method === 'HEAD' ? '' : text, { 'content-type': metrics.registry.contentType }),
    (error: unknown) => {
      log.error('metrics could not be collected', { err: error });
      plain(500, 'metrics could not be collected\n');
    },
  );
}

/** Known paths as the `route` label; anything else is `other` (paths are client-chosen). */
const ROUTES = new Set(['/graphql', '/health', '/ready', METRICS_PATH]);
const METHODS = new Set(['GET', 'HEAD', 'POST', 'OPTIONS', 'PUT', 'DELETE', 'PATCH']);

/**
 * Observes the request's duration in `opsgraph_http_request_duration_seconds` when it finishes.
 * Event streams (SSE subscriptions) are left out: they last as long as the subscription.
 */
export function timeRequest(metrics: Metrics, path: string, req: IncomingMessage, res: ServerResponse): void {
  if (req.headers.accept?.includes('text/event-stream')) return;
  const end = metrics.httpDuration.startTimer();
  res.once('finish', () =>
    end({
      route: ROUTES.has(path) ? path : 'other',
      method: METHODS.has(req.method ?? '') ? (req.method as string) : 'other',
      status: String(res.statusCode),
    }),
  );
}
