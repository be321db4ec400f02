import type { Logger } from '../logger.ts';
import type { Resources } from '../resources.ts';

/** One dependency a process needs to do its work. */
export interface Dependency {
  name: string;
  /** Resolves when the dependency answers; rejects (or never settles) otherwise. */
  probe(): Promise<unknown>;
}

/** The outcome of one readiness check. */
export interface CheckResult {
  ok: boolean;
  /** How long it took, in ms (the timeout when it did not answer). */
  ms: number;
  /** `timeout` or `error` when not ok. */
  problem?: 'timeout' | 'error';
}

/** What `/ready` answers. */
export interface Readiness {
  status: 'ready' | 'unavailable' | 'draining';
  /** The dependencies that did not answer (empty when ready or draining). */
  failing: string[];
  checks: Record<string, CheckResult>;
}

/** The dependencies of a process: PostgreSQL, Redis (when configured) and pg-boss. */
export function dependenciesOf(r: Pick<Resources, 'config' | 'db' | 'bus' | 'boss'>): Dependency[] {
  const dependencies: Dependency[] = [
    { name: 'postgres', probe: () => r.db.$queryRawUnsafe('SELECT 1') },
    { name: 'pgboss', probe: () => r.boss.isInstalled() },
  ];
  if (r.config.redisUrl) {
    // The bus knows its connection: connected means Redis answers and subscriptions are in place.
    dependencies.push({
      name: 'redis',
      probe: () => (r.bus.connected ? Promise.resolve() : Promise.reject(new Error('redis disconnected'))),
    });
  }
  return dependencies;
}

export interface ReadinessOptions {
  dependencies: Dependency[];
  /** Aborted once the process drains: from then on it is not ready. */
  draining: AbortSignal;
  /** How long each check may take, in ms. */
  timeoutMs: number;
  logger: Logger;
}

/**
 * Checks every dependency in parallel, each within `timeoutMs`. A probe still running from an
 * earlier call is awaited again rather than started twice, so frequent probes during an outage do
 * not pile up. Changes (a dependency failing, or answering again) are logged once each.
 */
export function createReadiness(options: ReadinessOptions): () => Promise<Readiness> {
  const { dependencies, draining, timeoutMs, logger } = options;
  const inFlight = new Map<string, Promise<unknown>>();
  const lastOk = new Map<string, boolean>();

  const check = async (dependency: Dependency): Promise<CheckResult> => {
    const started = performance.now();
    let probe = inFlight.get(dependency.name);
    if (!probe) {
      probe = dependency.probe().finally(() => inFlight.delete(dependency.name));
      inFlight.set(dependency.name, probe);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, timeoutMs, 'timeout');
    });
    const outcome = await Promise.race([
      probe.then(
        () => 'ok' as const,
        (error: unknown) => ({ error }),
      ),
      timeout,
    ]);
    clearTimeout(timer);
    const ms = Math.round(performance.now() - started);
    const ok = outcome === 'ok';
    if (lastOk.get(dependency.name) !== ok && (lastOk.has(dependency.name) || !ok)) {
      if (ok) logger.info('readiness: dependency answers again', { dependency: dependency.name });
      else
        logger.warn('readiness: dependency not answering', {
          dependency: dependency.name,
          ...(outcome === 'timeout' ? { timeoutMs } : { err: outcome.error }),
        });
    }
    lastOk.set(dependency.name, ok);
    if (ok) return { ok, ms };
    return { ok, ms, problem: outcome === 'timeout' ? 'timeout' : 'error' };
  };

  return async () => {
    if (draining.aborted) return { status: 'draining', failing: [], checks: {} };
    const results = await Promise.all(dependencies.map(async (d) => [d.name, await check(d)] as const));
    const failing = results.filter(([, result]) => !result.ok).map(([name]) => name);
    // Checked again: SIGTERM may have arrived while the probes ran.
    const status = draining.aborted ? 'draining' : failing.length ? 'unavailable' : 'ready';
    return { status, failing, checks: Object.fromEntries(results) };
  };
}
