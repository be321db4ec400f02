import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resources } from '../resources.ts';
import { withOperatorRoutes } from './routes.ts';

/** An HTTP listener that serves only `/health` and `/ready` (worker-only processes). */
export interface HealthServer {
  url: string;
  close(): Promise<void>;
}

/** Serves `/health` and `/ready` on `port` (0: a free port); every other path is 404. */
export async function startHealthServer(r: Resources, port: number): Promise<HealthServer> {
  const server = createServer(
    withOperatorRoutes(r, (_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ error: 'not found: this process serves only /health and /ready' }));
    }),
  );
  await new Promise<void>((resolve) => server.listen(port, r.config.host, resolve));
  const address = server.address() as AddressInfo;
  const host = r.config.host === '0.0.0.0' ? 'localhost' : r.config.host;
  return {
    url: `http://${host}:${address.port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
