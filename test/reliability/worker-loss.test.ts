import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { useApiAndWorkers } from '../support/fixtures.ts';
import {
  type EventRow,
  eventsOf,
  operationRow,
  startOperation,
  waitForRow,
  waitForTerminal,
} from '../support/operations.ts';

/** A: API only. Workers: W1 (killed with SIGKILL mid-operation), then W2 (takes over). */
const cluster = useApiAndWorkers();

/**
 * Starts an operation, waits until W1 runs it, SIGKILLs W1 and starts W2. Returns the operation,
 * W2 and when W1 was killed.
 */
async function killWorkerMidOperation(type: string, input: Record<string, unknown>) {
  const w1 = await cluster.spawnWorker('w1');
  const { uuid } = await startOperation(cluster.api.url, cluster.token, type, input);
  await waitForRow(
    cluster.db,
    uuid,
    (row) => row.status === 'PROCESSING' && row.workerId === w1.id,
    15_000,
    'PROCESSING on W1',
  );
  // Some progress first, so the kill lands in the middle of the handler.
  await sleep(500);
  expect((await operationRow(cluster.db, uuid)).status).toBe('PROCESSING');
  const killedAt = Date.now();
  w1.process.child.kill('SIGKILL');
  await w1.process.exited;
  const w2 = await cluster.spawnWorker('w2');
  return { uuid, w1, w2, killedAt };
}

/** Waits for the event of `kind` on the operation (within `timeoutMs`). */
async function waitForEvent(uuid: string, kind: string, timeoutMs: number): Promise<EventRow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await eventsOf(cluster.db, uuid)).find((event) => event.kind === kind);
    if (found) return found;
    if (Date.now() > deadline) {
      const row = await operationRow(cluster.db, uuid);
      throw new Error(`no ${kind} event within ${timeoutMs} ms; operation: ${JSON.stringify(row)}`);
    }
    await sleep(100);
  }
}

const errorCode = (event: EventRow) => (event.data as { error?: { code?: string } }).error?.code;

describe('a worker process killed with SIGKILL mid-operation', () => {
  it('diagnostics.flaky (retries): the lost attempt is retried on W2 and the operation COMPLETES', async () => {
    // 40 × 250 ms: about 10 s per attempt.
    const { uuid, w1, w2, killedAt } = await killWorkerMidOperation('diagnostics.flaky', {
      steps: 40,
      stepMs: 250,
    });
    const retry = await waitForEvent(uuid, 'RETRY_SCHEDULED', 30_000);
    const detectionMs = retry.createdAt.getTime() - killedAt;
    console.log(`SIGKILL of W1 → RETRY_SCHEDULED (WORKER_LOST): ${detectionMs} ms`);
    expect(errorCode(retry)).toBe('WORKER_LOST');
    expect(retry.data).toMatchObject({ attempt: 1 });
    expect(detectionMs).toBeGreaterThan(0);
    expect(detectionMs).toBeLessThan(30_000);

    // Attempt 2 runs on W2 (bounded generously: when it starts is measured in retries.test.ts).
    const running = await waitForRow(
      cluster.db,
      uuid,
      (row) => row.attempt === 2 && row.status !== 'PENDING',
      60_000,
      'attempt 2 started',
    );
    expect(running.status, JSON.stringify(running)).toBe('PROCESSING');
    expect(running.workerId).toBe(w2.id);
    const final = await waitForTerminal(cluster.db, uuid, 30_000);
    expect(final.status).toBe('COMPLETED');
    expect(final.result).toMatchObject({ attempt: 2, steps: 40 });

    const events = await eventsOf(cluster.db, uuid);
    const transitions = events.filter((e) => e.kind !== 'PROGRESS');
    expect(transitions.map((e) => [e.kind, e.data && (e.data as { attempt?: number }).attempt])).toEqual([
      ['CREATED', null],
      ['STARTED', 1],
      ['RETRY_SCHEDULED', 1],
      ['STARTED', 2],
      ['COMPLETED', undefined],
    ]);
    const started2 = transitions[3]!;
    const dueAt = Date.parse((retry.data as { nextAttemptAt: string }).nextAttemptAt);
    console.log(`attempt 2 started on W2 ${started2.createdAt.getTime() - dueAt} ms after its nextAttemptAt`);
    // Nothing W1 wrote lands after the repair: progress after it belongs to attempt 2 only.
    const between = events.filter((e) => e.sequence > retry.sequence && e.sequence < started2.sequence);
    expect(between).toEqual([]);
    expect(w1.process.child.signalCode).toBe('SIGKILL');
    expect(w2.process.logs.some((line) => line.includes('repaired operation'))).toBe(true);
  }, 120_000);

  it('diagnostics.sleep (no retries): the operation ends FAILED with WORKER_LOST, never left PROCESSING', async () => {
    // 100 × 200 ms: 20 s, far longer than detection should take.
    const { uuid, killedAt } = await killWorkerMidOperation('diagnostics.sleep', { steps: 100, stepMs: 200 });
    const failedEvent = await waitForEvent(uuid, 'FAILED', 30_000);
    const detectionMs = failedEvent.createdAt.getTime() - killedAt;
    console.log(`SIGKILL of W1 → FAILED (WORKER_LOST): ${detectionMs} ms`);
    expect(detectionMs).toBeGreaterThan(0);
    expect(detectionMs).toBeLessThan(30_000);
    const final = await operationRow(cluster.db, uuid);
    expect(final.status).toBe('FAILED');
    expect(final.error?.code).toBe('WORKER_LOST');
    expect(final.attempt).toBe(1);
    expect(final.workerId).toBeNull();
    expect(final.claimId).toBeNull();

    // A few more reconcile passes on W2: it stays FAILED, with one terminal event.
    await sleep(3000);
    const events = await eventsOf(cluster.db, uuid);
    expect(events.at(-1)!.kind).toBe('FAILED');
    expect(events.filter((e) => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(e.kind))).toHaveLength(1);
    expect(events.filter((e) => e.kind === 'STARTED')).toHaveLength(1);
    expect(errorCode(failedEvent)).toBe('WORKER_LOST');
    const [processing] = await cluster.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "Operation" WHERE status = 'PROCESSING'`,
    );
    expect(processing!.n).toBe(0);
  }, 90_000);
});
