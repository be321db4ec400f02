import WebSocket from 'ws';
import type { ServerProcess } from '../test/support/app.ts';

/**
 * A V8 inspector session with a server process started with `INSPECT_ENV`: its memory after a
 * full GC, and (for finding what a subscription costs) the allocation sites of what is still
 * alive, from V8's sampling heap profiler. No server code is involved.
 */

/** Environment that opens the inspector on a free local port (printed to the process's stderr). */
export const INSPECT_ENV = {
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:0`.trim(),
};

/** A script URL without its node_modules or checkout prefix. */
const shortUrl = (url: string) =>
  url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(src|bench|test)\//, '$1/');

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

export class Inspector {
  private next = 0;
  private readonly pending = new Map<number, (result: unknown) => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const reply = JSON.parse(data.toString()) as { id?: number; result?: unknown };
      if (reply.id !== undefined) this.pending.get(reply.id)?.(reply.result);
    });
  }

  static async attach(server: ServerProcess): Promise<Inspector> {
    const line = server.logs.find((entry) => entry.includes('Debugger listening on'));
    const url = line && /ws:\/\/\S+/.exec(line)?.[0];
    if (!url) throw new Error('the server has no inspector: start it with INSPECT_ENV');
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new Inspector(socket);
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    return new Promise<unknown>((resolve) => {
      this.next += 1;
      const id = this.next;
      this.pending.set(id, resolve);
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /**
   * `process.memoryUsage()` inside the process after a full GC (`HeapProfiler.collectGarbage`,
   * twice, so what only weak references held is gone too).
   */
  async memoryAfterGc(): Promise<NodeJS.MemoryUsage> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const result = (await this.call('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    })) as { result: { value: string } };
    return JSON.parse(result.result.value) as NodeJS.MemoryUsage;
  }

  /** CPU time (user + system, µs) the process has used so far: `process.cpuUsage()` inside it. */
  async cpuMicros(): Promise<number> {
    const result = (await this.call('Runtime.evaluate', {
      expression: 'JSON.stringify(process.cpuUsage())',
      returnByValue: true,
    })) as { result: { value: string } };
    const { user, system } = JSON.parse(result.result.value) as { user: number; system: number };
    return user + system;
  }

  /** Starts V8's CPU profiler in the process (1 ms sampling). */
  async startCpuProfile(): Promise<void> {
    await this.call('Profiler.enable');
    await this.call('Profiler.setSamplingInterval', { interval: 1000 });
    await this.call('Profiler.start');
  }

  /** Stops the CPU profiler: the share of samples by function (self time), largest first. */
  async stopCpuProfile(top = 20): Promise<[string, number][]> {
    const { profile } = (await this.call('Profiler.stop')) as {
      profile: { nodes: (ProfileNode & { hitCount?: number })[] };
    };
    const byFunction = new Map<string, number>();
    let total = 0;
    for (const node of profile.nodes) {
      const hits = node.hitCount ?? 0;
      total += hits;
      const name = node.callFrame.functionName || '(anonymous)';
      if (name === '(idle)' || name === '(program)') continue;
      const key = `${name} ${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + hits);
    }
    return [...byFunction]
      .map(([key, hits]): [string, number] => [key, total ? hits / total : 0])
      .sort((x, y) => y[1] - x[1])
      .slice(0, top);
  }

  /** Starts sampling allocations (V8 keeps the samples of objects that stay alive). */
  startSampling(): Promise<unknown> {
    return this.call('HeapProfiler.startSampling', { samplingInterval: 1024 });
  }

  /**
   * After a full GC: bytes still alive by allocation site (function and its two callers), largest
   * first, from the samples taken since `startSampling`.
   */
  async liveBySite(top = 25): Promise<[string, number][]> {
    await this.call('HeapProfiler.collectGarbage');
    const { profile } = (await this.call('HeapProfiler.getSamplingProfile')) as {
      profile: { head: ProfileNode };
    };
    await this.call('HeapProfiler.stopSampling');
    const sites = new Map<string, number>();
    const frame = (node: ProfileNode) =>
      `${node.callFrame.functionName || '(anonymous)'} ${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
    const walk = (node: ProfileNode, stack: string[]) => {
      const here = [frame(node), ...stack].slice(0, 3);
      if (node.selfSize > 0) {
        const key = here.join(' ← ');
        sites.set(key, (sites.get(key) ?? 0) + node.selfSize);
      }
      for (const child of node.children) walk(child, here);
    };
    walk(profile.head, []);
    return [...sites].sort((x, y) => y[1] - x[1]).slice(0, top);
  }

  close(): void {
    this.socket.close();
  }
}
