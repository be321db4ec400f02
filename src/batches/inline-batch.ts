import type { Viewer } from '../auth/viewer.ts';
import { describe, publish } from '../operations/attempt.ts';
import * as batchTransitions from '../operations/batch-transitions.ts';
import { inlineContext } from '../operations/inline.ts';
import { measureJson } from '../operations/input-limits.ts';
import type { EventMessage } from '../operations/record.ts';
import * as transitions from '../operations/transitions.ts';
import type { Resources } from '../resources.ts';
import type { InputBudget } from './items.ts';
import type { ItemRow } from './outcome.ts';
import { InputTooLargeError, resolveRefs } from './refs.ts';

class RollBack extends Error {}

/**
 * An atomic batch of inline items only: every item runs, in dependency order, inside ONE database
 * transaction. If any fails, the transaction rolls back, so no effect of the batch remains; the
 * failing item is then recorded FAILED, those before it ROLLED_BACK, those after SKIPPED.
 */
export async function runInlineBatch(
  r: Resources,
  viewer: Viewer,
  rows: ItemRow[],
  order: string[],
  budget: InputBudget,
): Promise<void> {
  budget.begin(rows);
  const byItem = new Map(rows.map((row) => [row.batchItemId, row]));
  const ordered = order.map((id) => byItem.get(id) as ItemRow);
  let failure: { row: ItemRow; error: transitions.OperationError } | undefined;
  let messages: EventMessage[] = [];
  try {
    await r.db.$transaction(
      async (tx) => {
        const results = new Map<string, unknown>();
        for (const row of ordered) {
          const type = r.registry.get(row.type);
          if (!type) throw new Error(`unknown type ${row.type}`);
          const signal = AbortSignal.timeout(type.policy.softTimeoutSeconds * 1000);
          try {
            const limits = budget.limitsFor(row);
            const input = type.input.parse(resolveRefs(row.input, results, limits));
            const measured = measureJson(input, limits);
            if (measured.over)
              throw new InputTooLargeError('with its references resolved, the input is too large');
            budget.spend(row, measured.bytes);
            const released = await batchTransitions.release(tx, row.id, input, null);
            const started = await transitions.start(tx, row.id, r.config.instanceId);
            if (!released || !started) throw new Error('a batch item changed during its batch transaction');
            const ctx = inlineContext(r, tx, type, started.operation, viewer.id, signal);
            const result = await type.run(input, ctx);
            const completed = await transitions.complete(
              tx,
              row.id,
              started.operation.claimId as string,
              result,
            );
            if (!completed) throw new Error('a batch item changed during its batch transaction');
            messages.push(released, started, completed);
            results.set(row.batchItemId, result);
          } catch (error) {
            failure = { row, error: describe(error, signal, r.logger) };
            throw new RollBack();
          }
        }
      },
      { maxWait: 10_000, timeout: 60_000 },
    );
  } catch (error) {
    if (!(error instanceof RollBack)) throw error;
    messages = [];
  }
  if (failure) {
    const failed = failure.row;
    const at = ordered.indexOf(failed);
    messages = await r.db.$transaction(async (tx) => {
      const written: (EventMessage | null)[] = [];
      written.push(await transitions.fail(tx, failed.id, null, failure!.error, { from: ['PENDING'] }));
      for (const row of ordered.slice(0, at)) {
        const reason = `rolled back with the batch's transaction: item ${failed.batchItemId} failed`;
        written.push(await batchTransitions.skip(tx, row.id, reason, failed.batchItemId, 'ROLLED_BACK'));
      }
      for (const row of ordered.slice(at + 1)) {
        const reason = `not started: item ${failed.batchItemId} failed`;
        written.push(await batchTransitions.skip(tx, row.id, reason, failed.batchItemId));
      }
      return written.filter((message): message is EventMessage => message !== null);
    });
  }
  for (const message of messages) publish(r, message);
}
