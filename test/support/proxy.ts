import { connect, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  /** `url` with its port replaced by the proxy's. */
  url: string;
  /** Connections made through the proxy so far. */
  readonly connections: number;
  /** Cuts every open connection (both sides), as a network fault would; new ones still pass. */
  drop(): void;
  /** Stops forwarding on every open connection without closing it (a silent drop); new ones pass. */
  stall(): void;
  close(): Promise<void>;
}

/** A TCP proxy in front of `target` (an http:// URL) whose connections a test can cut. */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const upstream = new URL(target);
  const open = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let connections = 0;
  const server = createServer((client) => {
    connections += 1;
    const server = connect(Number(upstream.port), upstream.hostname);
    for (const socket of [client, server]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => {
        client.destroy();
        server.destroy();
      });
    }
    client.pipe(server);
    server.pipe(client);
    const pair: [Socket, Socket] = [client, server];
    pairs.add(pair);
    client.on('close', () => pairs.delete(pair));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no port');
  const url = new URL(target);
  url.port = String(address.port);
  return {
    url: url.href,
    get connections() {
      return connections;
    },
    drop() {
      for (const socket of open) socket.resetAndDestroy();
    },
    stall() {
      for (const [client, server] of pairs) {
        client.unpipe(server);
        server.unpipe(client);
        client.pause();
        server.pause();
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
