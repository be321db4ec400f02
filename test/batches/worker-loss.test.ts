import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { graphql } from '../gql/index.ts';
import { CancelBatch, startBatchOk } from '../support/batches.ts';
import { gql, subscribeWs } from '../support/client.ts';
import { useApiAndWorkers } from '../support/fixtures.ts';
import { eventsOf, operationRow, uuidOf, waitForTerminal } from '../support/operations.ts';

/** A: API only. W1 runs the batch's coordinator and items until SIGKILLed; W2 takes over. */
const cluster = useApiAndWorkers();

interface ItemRow {
  id: string;
  item: string;
  status: string;
  attempt: number;
  workerId: string | null;
  error: { code: string } | null;
}

const itemRows = (batch: string) =>
  cluster.db.query<ItemRow>(
    `SELECT id, "batchItemId" AS item, status::text AS status, attempt, "workerId", error
       FROM "Operation" WHERE "batchId" = $1 ORDER BY "batchItemId"`,
    [batch],
  );

async function waitForItems(batch: string, done: (rows: ItemRow[]) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await itemRows(batch);
    if (done(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`timed out; items: ${JSON.stringify(rows)}`);
    await sleep(50);
  }
}

/** i1 → i2 → … → i<count>, all of one type and input. */
const chain = (type: string, input: Record<string, unknown>, count: number) =>
  Array.from({ length: count }, (_, i) => ({ id: `i${i + 1}`, type, input, dependsOn: i ? [`i${i}`] : [] }));

const BatchUpdatedAcrossLoss = graphql(`
  subscription BatchUpdatedAcrossLoss($id: ID!) {
    batchUpdated(id: $id) { sequence event { sequence kind status data } operation { status } }
  }
`);

/**
 * Starts a batch with W1 as the only worker, waits until item i2 runs on W1, SIGKILLs W1 and starts
 * W2; returns once the batch has ended, with what happened. Checks what holds either way.
 */
async function killCoordinatorMidBatch(items: unknown[], atomic: boolean) {
  const w1 = await cluster.spawnWorker('w1');
  const { id } = await startBatchOk(cluster.api.url, cluster.token, { items: items as never, atomic });
  const batch = uuidOf(id);
  const sub = subscribeWs(cluster.api.url, BatchUpdatedAcrossLoss, { id }, cluster.token);
  try {
    await waitForItems(batch, (rows) => rows.find((r) => r.item === 'i2')?.status === 'PROCESSING', 20_000);
    await sleep(300); // into i2's handler
    const before = await operationRow(cluster.db, batch);
    const i2 = (await itemRows(batch)).find((r) => r.item === 'i2')!;
    expect([before.status, before.workerId, i2.status, i2.workerId]).toEqual([
      'PROCESSING',
      w1.id,
      'PROCESSING',
      w1.id,
    ]);
    const killedAt = Date.now();
    w1.process.child.kill('SIGKILL');
    await w1.process.exited;
    const w2 = await cluster.spawnWorker('w2');
    const final = await waitForTerminal(cluster.db, batch, 90_000);
    const endedMs = Date.now() - killedAt;
    const events = await eventsOf(cluster.db, batch);
    const retry = events.find((e) => e.kind === 'RETRY_SCHEDULED');
    const restarted = events.find((e) => e.kind === 'STARTED' && e.sequence > (retry?.sequence ?? 0));
    const since = (at?: Date) => (at ? at.getTime() - killedAt : 'never');
    console.log(
      `${atomic ? 'atomic' : 'non-atomic'} batch, coordinator SIGKILLed: kill → coordinator RETRY_SCHEDULED ${since(retry?.createdAt)} ms, → restarted on W2 ${since(restarted?.createdAt)} ms, → batch ${final.status} ${endedMs} ms`,
    );
    await sub.done;
    expect(sub.errors).toEqual([]);
    // The API's subscriber saw the batch's events across the loss: contiguous, ending terminal.
    const updates = sub.messages.map((m) => m.batchUpdated);
    expect(updates[0]!.event).toBeNull();
    expect(updates.slice(1).map((u) => u.event!.sequence)).toEqual(
      updates.slice(0, -1).map((u) => u.sequence + 1),
    );
    expect(updates.at(-1)!.event!.kind).toBe(final.status);
    expect(updates.at(-1)!.sequence).toBe(events.at(-1)!.sequence);
    // The coordinator was retried once, on W2, and ended the batch once.
    expect(retry?.data).toMatchObject({ error: { code: 'WORKER_LOST' }, attempt: 1 });
    expect(final.attempt).toBe(2);
    expect(events.filter((e) => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(e.kind))).toHaveLength(1);
    expect(w2.process.logs.some((line) => line.includes('repaired operation'))).toBe(true);
    // No item status was announced twice in a row, even across the restart.
    const announced = events
      .filter((e) => e.kind === 'ITEM')
      .map((e) => e.data as { item: string; status: string });
    console.log(`ITEM events: ${announced.map((a) => `${a.item}:${a.status}`).join(' ')}`);
    const last = new Map<string, string>();
    for (const { item, status } of announced) {
      expect(last.get(item), `${item} announced ${status} twice`).not.toBe(status);
      last.set(item, status);
    }
    const rows = await itemRows(batch);
    const itemEvents = new Map(
      await Promise.all(rows.map(async (r) => [r.item, await eventsOf(cluster.db, r.id)] as const)),
    );
    return { final, rows, itemEvents };
  } finally {
    sub.close();
  }
}

describe('a batch whose coordinator worker is SIGKILLed mid-run', () => {
  it('items with retries (diagnostics.flaky, non-atomic): the batch COMPLETES, every item COMPLETED exactly once', async () => {
    const { final, rows, itemEvents } = await killCoordinatorMidBatch(
      chain('diagnostics.flaky', { steps: 6, stepMs: 250 }, 5),
      false,
    );
    expect(final.status).toBe('COMPLETED');
    expect((final.result as { status: string }).status).toBe('COMPLETED');
    expect(rows.map((r) => r.status)).toEqual(Array(5).fill('COMPLETED'));
    for (const [item, events] of itemEvents) {
      expect(
        events.filter((e) => e.kind === 'COMPLETED'),
        item,
      ).toHaveLength(1);
      expect(
        events.filter((e) => ['FAILED', 'CANCELLED'].includes(e.kind)),
        item,
      ).toEqual([]);
    }
    // i2 ran on W1 when it died: its lost attempt was retried (on W2); the others ran once.
    expect(Object.fromEntries(rows.map((r) => [r.item, r.attempt]))).toEqual({
      i1: 1,
      i2: 2,
      i3: 1,
      i4: 1,
      i5: 1,
    });
    const i2 = itemEvents.get('i2')!.filter((e) => e.kind !== 'PROGRESS');
    expect(i2.map((e) => e.kind)).toEqual([
      'CREATED',
      'READY',
      'STARTED',
      'RETRY_SCHEDULED',
      'STARTED',
      'COMPLETED',
    ]);
  }, 150_000);

  it('items without retries (diagnostics.echo, atomic): the item lost with W1 FAILS (WORKER_LOST) and the recovered coordinator rolls the batch back', async () => {
    // echo's policy has no retries, so the item running on W1 cannot complete: the batch must still
    // end (never stay PROCESSING), FAILED, with i1 undone and the rest skipped.
    const { final, rows, itemEvents } = await killCoordinatorMidBatch(
      chain('diagnostics.echo', { sleepMs: 1500 }, 5),
      true,
    );
    expect(final.status).toBe('FAILED');
    const outcome = final.result as { status: string; items: Record<string, { status: string }> };
    expect(outcome.status).toBe('FAILED');
    expect(Object.fromEntries(Object.entries(outcome.items).map(([k, v]) => [k, v.status]))).toEqual({
      i1: 'ROLLED_BACK',
      i2: 'FAILED',
      i3: 'SKIPPED',
      i4: 'SKIPPED',
      i5: 'SKIPPED',
    });
    expect(rows.find((r) => r.item === 'i2')?.error?.code).toBe('WORKER_LOST');
    expect(itemEvents.get('i1')!.filter((e) => e.kind === 'COMPLETED')).toHaveLength(1);
    for (const item of ['i3', 'i4', 'i5']) {
      expect(
        itemEvents.get(item)!.filter((e) => e.kind === 'STARTED'),
        item,
      ).toEqual([]);
    }
  }, 150_000);

  it('a PENDING batch is CANCELLED at once by cancelBatch with no worker running, and a later worker changes nothing', async () => {
    const { id } = await startBatchOk(cluster.api.url, cluster.token, {
      items: chain('diagnostics.echo', {}, 3),
    });
    const batch = uuidOf(id);
    const cancelled = await gql(cluster.api.url, CancelBatch, { id, reason: 'no workers' }, cluster.token);
    expect(cancelled.data?.cancelBatch.__typename).toBe('CancelBatchSuccess');
    expect((await itemRows(batch)).map((r) => [r.status, r.error?.code])).toEqual(
      Array(3).fill(['CANCELLED', 'SKIPPED']),
    );
    const row = await operationRow(cluster.db, batch);
    expect(row.status).toBe('CANCELLED');
    expect(row.result).toMatchObject({ status: 'CANCELLED', counts: { SKIPPED: 3 } });
    const before = await eventsOf(cluster.db, batch);
    await cluster.spawnWorker('w1');
    await sleep(1500);
    expect(await eventsOf(cluster.db, batch)).toEqual(before);
    expect((await operationRow(cluster.db, batch)).status).toBe('CANCELLED');
  }, 60_000);
});
