import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { gql } from '../support/client.ts';
import { OperationAttempts } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { type EventRow, eventsOf, startOperation, waitForTerminal } from '../support/operations.ts';

/** diagnostics.flaky: retryLimit 3, first retry after 1 s, doubling. */
// Default configuration: the retry must run on time without tuning pg-boss's polling.
const server = useServer();

const start = (input: Record<string, unknown>) =>
  startOperation(server.app.url, server.tokens.alice, 'diagnostics.flaky', input);

const query = async (id: string) => {
  const response = await gql(server.app.url, OperationAttempts, { id }, server.tokens.alice);
  if (!response.data?.operation) throw new Error(JSON.stringify(response));
  return response.data.operation;
};

const kinds = (events: EventRow[], kind: string) => events.filter((event) => event.kind === kind);
const attemptOf = (event: EventRow) => (event.data as { attempt: number }).attempt;
const retryData = (event: EventRow) =>
  event.data as { attempt: number; error: { code: string; message: string }; nextAttemptAt: string };

describe('retries of diagnostics.flaky', () => {
  it('fails twice, waits PENDING with nextAttemptAt after each failure, then completes on attempt 3 with growing delays', async () => {
    const { id, uuid } = await start({ steps: 2, stepMs: 10, failAtStep: 1, failAttempts: 2 });

    // While it waits for attempt 2 the API shows it PENDING, with the time of the next attempt.
    const deadline = Date.now() + 15_000;
    let waiting: Awaited<ReturnType<typeof query>> | undefined;
    while (!waiting && Date.now() < deadline) {
      const current = await query(id);
      if (current.status === 'PENDING' && current.nextAttemptAt) waiting = current;
      else await sleep(20);
    }
    expect(waiting, 'never seen PENDING with nextAttemptAt').toBeDefined();
    expect(waiting!.attempt).toBe(1);
    expect(waiting!.error?.code).toBe('REQUESTED_FAILURE');
    expect(Date.parse(waiting!.nextAttemptAt!)).toBeGreaterThan(Date.now() - 1000);

    // Bounded generously so that late retries are measured below rather than cut off here.
    const final = await waitForTerminal(server.db, uuid, 100_000);
    expect(final.status).toBe('COMPLETED');
    expect(final.result).toMatchObject({ attempt: 3, steps: 2 });
    const done = await query(id);
    expect(done.nextAttemptAt).toBeNull();
    expect(done.attempt).toBe(3);

    const events = await eventsOf(server.db, uuid);
    expect(kinds(events, 'STARTED').map(attemptOf)).toEqual([1, 2, 3]);
    const retries = kinds(events, 'RETRY_SCHEDULED');
    expect(retries.map((event) => retryData(event).attempt)).toEqual([1, 2]);
    expect(retries.every((event) => retryData(event).error.code === 'REQUESTED_FAILURE')).toBe(true);
    expect(retries.every((event) => event.status === 'PENDING')).toBe(true);
    expect(kinds(events, 'COMPLETED')).toHaveLength(1);
    expect(events.at(-1)!.kind).toBe('COMPLETED');
    // The order of the audit trail: STARTED 1, RETRY 1, STARTED 2, RETRY 2, STARTED 3, COMPLETED.
    expect(events.filter((e) => e.kind !== 'PROGRESS').map((e) => e.kind)).toEqual([
      'CREATED',
      'STARTED',
      'RETRY_SCHEDULED',
      'STARTED',
      'RETRY_SCHEDULED',
      'STARTED',
      'COMPLETED',
    ]);

    const delays = retries.map(
      (event) => Date.parse(retryData(event).nextAttemptAt) - event.createdAt.getTime(),
    );
    // When each attempt actually started, relative to the time it was scheduled for.
    const started = kinds(events, 'STARTED').slice(1);
    const lateness = started.map(
      (event, i) => event.createdAt.getTime() - Date.parse(retryData(retries[i]!).nextAttemptAt),
    );
    console.log(
      `retry delays (nextAttemptAt − event time): ${delays.join(' ms, ')} ms; ` +
        `attempts started ${lateness.join(' ms, ')} ms after their nextAttemptAt`,
    );
    expect(delays[0]).toBeGreaterThanOrEqual(900);
    expect(delays[0]).toBeLessThan(1500);
    expect(delays[1]).toBeGreaterThanOrEqual(1900);
    expect(delays[1]).toBeLessThan(2500);
    expect(delays[1]).toBeGreaterThan(delays[0]!);
    // An attempt never starts before its time, and not long after it: otherwise nextAttemptAt
    // and the backoff are fiction.
    for (const late of lateness) {
      expect(late).toBeGreaterThanOrEqual(-50);
      expect(late, `attempts started ${lateness.join(' ms, ')} ms after nextAttemptAt`).toBeLessThan(3000);
    }
  }, 120_000);

  it('a non-retryable error ends FAILED after one attempt, with no retry scheduled', async () => {
    const { id, uuid } = await start({ steps: 2, stepMs: 10, failAtStep: 1, permanent: true });
    const final = await waitForTerminal(server.db, uuid, 15_000);
    expect(final.status).toBe('FAILED');
    expect(final.error?.code).toBe('REQUESTED_FAILURE');
    // Longer than the first retry delay (1 s): a retry, if any, would have started by now.
    await sleep(1500);
    const events = await eventsOf(server.db, uuid);
    expect(kinds(events, 'RETRY_SCHEDULED')).toEqual([]);
    expect(kinds(events, 'STARTED').map(attemptOf)).toEqual([1]);
    expect(kinds(events, 'FAILED')).toHaveLength(1);
    expect(events.at(-1)!.kind).toBe('FAILED');
    const after = await query(id);
    expect(after).toMatchObject({ status: 'FAILED', attempt: 1, nextAttemptAt: null });
    const [jobs] = await server.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pgboss.job WHERE data->>'operationId' = $1`,
      [uuid],
    );
    expect(jobs!.n).toBe(1);
  });

  it('when every attempt fails it ends FAILED after 4 attempts (1 + retryLimit 3) with the final error', async () => {
    const { id, uuid } = await start({ steps: 2, stepMs: 10, failAtStep: 1, failAttempts: 10 });
    const begun = Date.now();
    // Delays 1 + 2 + 4 s; bounded generously (late retries are the first test's concern).
    const final = await waitForTerminal(server.db, uuid, 150_000);
    console.log(`4 failing attempts with backoff took ${Date.now() - begun} ms`);
    expect(final.status).toBe('FAILED');
    expect(final.attempt).toBe(4);
    expect(final.error).toEqual({
      code: 'REQUESTED_FAILURE',
      message: 'failed at step 1 of attempt 4 as requested',
    });
    const events = await eventsOf(server.db, uuid);
    expect(kinds(events, 'STARTED').map(attemptOf)).toEqual([1, 2, 3, 4]);
    const retries = kinds(events, 'RETRY_SCHEDULED');
    expect(retries.map((event) => retryData(event).error.message)).toEqual(
      [1, 2, 3].map((n) => `failed at step 1 of attempt ${n} as requested`),
    );
    const delays = retries.map(
      (event) => Date.parse(retryData(event).nextAttemptAt) - event.createdAt.getTime(),
    );
    const lateness = kinds(events, 'STARTED')
      .slice(1)
      .map((event, i) => event.createdAt.getTime() - Date.parse(retryData(retries[i]!).nextAttemptAt));
    console.log(
      `retry delays when exhausting retries: ${delays.join(' ms, ')} ms; ` +
        `attempts started ${lateness.join(' ms, ')} ms after their nextAttemptAt`,
    );
    expect(delays[2]).toBeGreaterThan(delays[1]!);
    expect(delays[1]).toBeGreaterThan(delays[0]!);
    const failed = kinds(events, 'FAILED');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.data).toMatchObject({ attempt: 4, error: { code: 'REQUESTED_FAILURE' } });
    expect(events.at(-1)!.kind).toBe('FAILED');
    expect((await query(id)).nextAttemptAt).toBeNull();
  }, 170_000);
});
