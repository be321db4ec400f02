import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { METRICS_PATH, serveMetrics, timeRequest } from '../metrics/route.ts';
import { requestIdFrom, runInRequest } from '../request-context.ts';
import type { Resources } from '../resources.ts';
import { createReadiness, dependenciesOf } from './readiness.ts';

/** Paths answered here, before anything else, without authentication. */
export const HEALTH_PATH = '/health';
export const READY_PATH = '/ready';

type OperatorResources = Pick<
  Resources,
  'config' | 'db' | 'bus' | 'boss' | 'logger' | 'draining' | 'metrics'
>;

/**
 * Wraps a request handler (the GraphQL server's) with what operators need on the same port:
 * `GET /health` (200 while the process runs; no I/O), `GET /ready` (200 when PostgreSQL, Redis
 * when configured, and pg-boss answer within `readyTimeoutMs`; 503 naming the failing parts, or
 * while draining), `GET /metrics` (Prometheus text format, unless OPSGRAPH_METRICS is off; with
 * OPSGRAPH_METRICS_TOKEN set, only with that bearer token: src/metrics/route.ts). Every other request gets a request id (its `x-request-id` when plain, else a new
 * one; echoed in the response) that every log line written for it, and every operation it starts,
 * carries; it is logged at debug level with its headers (credentials redacted).
 */
export function withOperatorRoutes(r: OperatorResources, next: RequestListener): RequestListener {
  const readiness = createReadiness({
    dependencies: dependenciesOf(r),
    draining: r.draining,
    timeoutMs: r.config.readyTimeoutMs,
    logger: r.logger.child({ component: 'readiness' }),
  });
  const log = r.logger.child({ component: 'http' });

  const metricsOn = r.config.metrics === 'on';
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0] as string;
    if (metricsOn) {
      timeRequest(r.metrics, path, req, res);
      if (path === METRICS_PATH) {
        serveMetrics(r.config, r.metrics, log, req, res);
        return;
      }
    }
    if (path === HEALTH_PATH || path === READY_PATH) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'use GET' });
      if (path === HEALTH_PATH) return send(res, 200, { status: 'ok' });
      readiness().then(
        (ready) => send(res, ready.status === 'ready' ? 200 : 503, ready),
        (error: unknown) => {
          log.error('readiness check failed', { err: error });
          send(res, 503, { status: 'unavailable', failing: ['readiness'], checks: {} });
        },
      );
      return;
    }
    const requestId = requestIdFrom(req.headers['x-request-id']);
    res.setHeader('x-request-id', requestId);
    runInRequest(requestId, () => {
      if (log.isLevelEnabled('debug')) logRequest(log, req, res);
      next(req, res);
    });
  };
}

function logRequest(log: Resources['logger'], req: IncomingMessage, res: ServerResponse): void {
  const started = performance.now();
  log.debug('request', { req });
  res.once('finish', () =>
    log.debug('request finished', {
      statusCode: res.statusCode,
      durationMs: Math.round(performance.now() - started),
    }),
  );
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}
