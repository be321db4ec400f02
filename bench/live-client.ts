import WebSocket from 'ws';

/**
 * A cheap graphql-ws client for benchmarks that hold thousands of subscriptions from one process:
 * one socket carries many subscriptions, and a message is only stamped with its arrival time and
 * kept as raw bytes when it arrives; it is parsed later (`drain`), outside the measured path, so a
 * burst of thousands of messages costs the bench little per message.
 */

/** One message of a subscription with the time (Date.now, ms) its frame was handed to the bench. */
export interface Arrival<T> {
  at: number;
  data: T;
}

export interface LiveSubscription<T> {
  messages: Arrival<T>[];
  /** GraphQL errors of a `next`, or the payload of an `error` message. */
  errors: unknown[];
  /** The server completed or failed the subscription. */
  done: boolean;
}

export class LiveConnection {
  private readonly subscriptions = new Map<string, LiveSubscription<unknown>>();
  private readonly arrivedAt: number[] = [];
  private readonly frames: WebSocket.RawData[] = [];
  private nextId = 0;
  /** Set when the socket closed (code and reason). */
  closed: string | undefined;

  private constructor(private readonly socket: WebSocket) {}

  /** Opens a socket to `url` (http or ws) and authenticates it; rejects when the server refuses. */
  static open(url: string, token: string, timeoutMs = 30_000): Promise<LiveConnection> {
    const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const connection = new LiveConnection(socket);
    return new Promise<LiveConnection>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error(`no connection_ack within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('open', () =>
        socket.send(
          JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }),
        ),
      );
      socket.on('error', () => {}); // reported by 'close'
      socket.on('close', (code, reason) => {
        connection.closed = `${code} ${reason.toString()}`;
        clearTimeout(timer);
        reject(new Error(`socket closed before connection_ack: ${connection.closed}`));
      });
      const onAck = (data: WebSocket.RawData) => {
        if ((JSON.parse(data.toString()) as { type: string }).type !== 'connection_ack') return;
        clearTimeout(timer);
        socket.off('message', onAck);
        socket.on('message', (frame) => {
          connection.arrivedAt.push(Date.now());
          connection.frames.push(frame);
        });
        resolve(connection);
      };
      socket.on('message', onAck);
    });
  }

  subscribe<T>(query: string, variables: Record<string, unknown>): LiveSubscription<T> {
    this.nextId += 1;
    const id = String(this.nextId);
    const subscription: LiveSubscription<T> = { messages: [], errors: [], done: false };
    this.subscriptions.set(id, subscription as LiveSubscription<unknown>);
    this.socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables } }));
    return subscription;
  }

  /** Parses the frames received so far into their subscriptions. */
  drain(): void {
    for (let i = 0; i < this.frames.length; i += 1) {
      const message = JSON.parse(this.frames[i]!.toString()) as {
        id?: string;
        type: string;
        payload?: { data?: unknown; errors?: unknown[] } | unknown[];
      };
      if (message.type === 'ping') {
        this.socket.send(JSON.stringify({ type: 'pong' }));
        continue;
      }
      const subscription = this.subscriptions.get(message.id ?? '');
      if (!subscription) continue;
      if (message.type === 'next') {
        const payload = message.payload as { data?: unknown; errors?: unknown[] };
        if (payload.errors) subscription.errors.push(...payload.errors);
        if (payload.data) subscription.messages.push({ at: this.arrivedAt[i]!, data: payload.data });
      } else if (message.type === 'error') {
        subscription.errors.push(message.payload);
        subscription.done = true;
      } else if (message.type === 'complete') {
        subscription.done = true;
      }
    }
    this.frames.length = 0;
    this.arrivedAt.length = 0;
  }

  close(): void {
    this.socket.terminate();
  }
}
