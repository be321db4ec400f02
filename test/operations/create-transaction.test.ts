import { describe, expect, it } from 'vitest';
import { insertOperation } from '../../src/operations/insert.ts';
import type { EventMessage } from '../../src/operations/record.ts';
import { useApiOnlyApp } from '../support/fixtures.ts';

const TYPE = 'diagnostics.sleep';

// API role only: no worker takes the committed job, so its row and events stay as inserted.
const fixture = useApiOnlyApp();

function spec(idempotencyKey: string | null = null) {
  const type = fixture.app.resources.registry.get(TYPE);
  if (!type) throw new Error(`${TYPE} is not registered`);
  return {
    type,
    input: { steps: 1, stepMs: 1 },
    ownerId: fixture.ownerId,
    idempotencyKey,
    inputHash: 'test-hash',
  };
}

async function counts(operationId: string, jobId: string) {
  const [row] = await fixture.db.query<{ operations: number; events: number; jobs: number }>(
    `SELECT (SELECT count(*)::int FROM "Operation" WHERE id = $1) AS operations,
            (SELECT count(*)::int FROM "OperationEvent" WHERE "operationId" = $1) AS events,
            (SELECT count(*)::int FROM pgboss.job WHERE id = $2) AS jobs`,
    [operationId, jobId],
  );
  return row;
}

describe('creating an operation in a transaction', () => {
  it('a rolled-back creation leaves no operation row, no event and no job', async () => {
    let created: EventMessage | null = null;
    const rollback = new Error('rollback');
    const outcome = fixture.app.resources.db.$transaction(async (tx) => {
      created = await insertOperation(tx, fixture.app.resources, spec());
      // Inside the transaction all three exist...
      const [inside] = await tx.$queryRawUnsafe<{ operations: number; jobs: number }[]>(
        `SELECT (SELECT count(*)::int FROM "Operation" WHERE id = $1::uuid) AS operations,
                (SELECT count(*)::int FROM pgboss.job WHERE id = $2::uuid) AS jobs`,
        created!.operation.id,
        created!.operation.jobId,
      );
      expect(inside).toEqual({ operations: 1, jobs: 1 });
      throw rollback;
    });
    await expect(outcome).rejects.toBe(rollback);

    const message = created as EventMessage | null;
    expect(message).not.toBeNull();
    expect(message!.event.operationId).toBe(message!.operation.id);
    expect(message!.operation.jobId).toMatch(/^[0-9a-f-]{36}$/);
    // ...and after the rollback none of them does.
    expect(await counts(message!.operation.id, message!.operation.jobId!)).toEqual({
      operations: 0,
      events: 0,
      jobs: 0,
    });
  });

  it('a committed creation leaves exactly one operation, one CREATED event and one queued job', async () => {
    const created = await fixture.app.resources.db.$transaction((tx) =>
      insertOperation(tx, fixture.app.resources, spec()),
    );
    expect(created).not.toBeNull();
    const { operation, event } = created!;
    expect(operation).toMatchObject({ type: TYPE, ownerId: fixture.ownerId, status: 'PENDING', sequence: 1 });
    expect(event).toMatchObject({
      operationId: operation.id,
      sequence: 1,
      kind: 'CREATED',
      status: 'PENDING',
    });

    expect(await counts(operation.id, operation.jobId!)).toEqual({ operations: 1, events: 1, jobs: 1 });
    const [job] = await fixture.db.query<{ name: string; data: { operationId: string }; state: string }>(
      'SELECT name, data, state FROM pgboss.job WHERE id = $1',
      [operation.jobId],
    );
    expect(job).toEqual({ name: TYPE, data: { operationId: operation.id }, state: 'created' });
    const [row] = await fixture.db.query<{ jobId: string; status: string }>(
      'SELECT "jobId", status FROM "Operation" WHERE id = $1',
      [operation.id],
    );
    expect(row).toEqual({ jobId: operation.jobId, status: 'PENDING' });
  });

  it('a repeated idempotency key writes nothing and returns null', async () => {
    const totals = async () =>
      (
        await fixture.db.query<{ operations: number; events: number; jobs: number }>(
          `SELECT (SELECT count(*)::int FROM "Operation") AS operations,
                  (SELECT count(*)::int FROM "OperationEvent") AS events,
                  (SELECT count(*)::int FROM pgboss.job) AS jobs`,
        )
      )[0]!;
    const before = await totals();
    const insert = () =>
      fixture.app.resources.db.$transaction((tx) =>
        insertOperation(tx, fixture.app.resources, spec('same-key')),
      );
    expect(await insert()).not.toBeNull();
    expect(await insert()).toBeNull();
    const after = await totals();
    expect(after).toEqual({
      operations: before.operations + 1,
      events: before.events + 1,
      jobs: before.jobs + 1,
    });
  });
});
