import type { Db } from '../db/prisma.ts';
import { enforceQuotas } from '../quotas/quotas.ts';
import type { Resources } from '../resources.ts';
import { describe } from './attempt.ts';
import * as batchTransitions from './batch-transitions.ts';
import { insertOperation, type NewOperation } from './insert.ts';
import type { EventMessage } from './record.ts';
import type { OperationType, RunContext } from './registry.ts';
import * as transitions from './transitions.ts';

/** Longest an inline operation's transaction may run, in ms (its hard timeout, capped). */
const MAX_INLINE_MS = 60_000;

class RollBack extends Error {}

/**
 * Runs an inline operation inside the request: its row, its events (CREATED, STARTED, COMPLETED)
 * and the handler's writes are one transaction. When the handler throws, all of that is rolled
 * back and the operation is recorded as FAILED instead (CREATED, STARTED, FAILED), so the caller
 * still gets an operation with its error. Returns the events to publish, or null when the
 * idempotency key was taken meanwhile. Progress reports of inline handlers are not recorded.
 */
export const runInline = (r: Resources, type: OperationType, spec: NewOperation) =>
  runInlineWith(r, type, spec.input, spec.ownerId, (tx) => begin(tx, r, spec));

/**
 * Runs a batch's inline item, an operation already PENDING, the same way: released with its
 * resolved input, started, run and completed in one transaction, or FAILED when the handler throws.
 */
export const runInlineItem = (
  r: Resources,
  type: OperationType,
  operationId: string,
  input: unknown,
  ownerId: string,
) =>
  runInlineWith(r, type, input, ownerId, async (tx) => {
    const released = await batchTransitions.release(tx, operationId, input, null);
    if (!released) return null;
    const started = await transitions.start(tx, operationId, r.config.instanceId);
    if (!started) throw new Error('an inline item could not start in its own transaction');
    return [released, started] as const;
  });

type Begin = (tx: Tx) => Promise<readonly [EventMessage, EventMessage] | null>;

async function runInlineWith(
  r: Resources,
  type: OperationType,
  input: unknown,
  ownerId: string,
  beginIn: Begin,
): Promise<EventMessage[] | null> {
  const timeoutMs = Math.min(type.policy.hardTimeoutSeconds * 1000, MAX_INLINE_MS);
  let failure: transitions.OperationError | undefined;
  try {
    return await r.db.$transaction(
      async (tx) => {
        const begun = await beginIn(tx);
        if (!begun) return null;
        const [created, started] = begun;
        const signal = AbortSignal.timeout(type.policy.softTimeoutSeconds * 1000);
        let result: unknown;
        try {
          result = await type.run(input, inlineContext(r, tx, type, started.operation, ownerId, signal));
        } catch (error) {
          failure = describe(error, signal, r.logger.child({ type: type.name }));
          throw new RollBack();
        }
        const completed = await transitions.complete(
          tx,
          created.operation.id,
          started.operation.claimId as string,
          result,
        );
        if (!completed) throw new Error('an inline operation changed during its own transaction');
        return [created, started, completed];
      },
      { maxWait: 10_000, timeout: timeoutMs },
    );
  } catch (error) {
    if (!(error instanceof RollBack)) throw error;
  }
  const error = failure as transitions.OperationError;
  return r.db.$transaction(async (tx) => {
    const begun = await beginIn(tx);
    if (!begun) return null;
    const [created, started] = begun;
    const failed = await transitions.fail(tx, created.operation.id, started.operation.claimId, error);
    if (!failed) throw new Error('an inline operation changed during its own transaction');
    return [created, started, failed];
  });
}

type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/**
 * What an inline handler is given: the transaction it runs in as its database (it must not open
 * transactions of its own), a signal that aborts at its soft timeout, and no progress reporting.
 */
export const inlineContext = (
  r: Resources,
  tx: Tx,
  type: OperationType,
  started: { id: string; claimId: string | null },
  ownerId: string,
  signal: AbortSignal,
): RunContext => ({
  operationId: started.id,
  ownerId,
  attempt: 1,
  signal,
  progress: () => {},
  logger: r.logger.child({ operationId: started.id, type: type.name }),
  db: tx as unknown as Db,
  config: r.config,
  claimId: started.claimId as string,
});

async function begin(tx: Tx, r: Resources, spec: NewOperation) {
  const created = await insertOperation(tx, r, spec);
  if (!created) return null;
  await enforceQuotas(tx, r.config, {
    ownerId: spec.ownerId,
    operations: 1,
    reserveFor: created.operation.id,
  });
  const started = await transitions.start(tx, created.operation.id, r.config.instanceId);
  if (!started) throw new Error('an inline operation could not start in its own transaction');
  return [created, started] as const;
}
