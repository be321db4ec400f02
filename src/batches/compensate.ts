import { setTimeout as sleep } from 'node:timers/promises';
import { publish } from '../operations/attempt.ts';
import * as batchTransitions from '../operations/batch-transitions.ts';
import { safeFailure } from '../operations/failure.ts';
import { type RunContext, retryDelayMs } from '../operations/registry.ts';
import type { Resources } from '../resources.ts';
import type { ItemRow } from './outcome.ts';

/**
 * Undoes an atomic batch: every item that did work (COMPLETED, or cancelled while running) is
 * compensated, in reverse dependency order, each retried by its type's policy. Completed items are
 * then ROLLED_BACK. Returns the compensations that still failed (never dropped silently).
 */
export async function compensate(
  r: Resources,
  ctx: RunContext,
  rows: ItemRow[],
  order: string[],
): Promise<string[]> {
  const byItem = new Map(rows.map((row) => [row.batchItemId, row]));
  const failures: string[] = [];
  for (const id of [...order].reverse()) {
    const row = byItem.get(id);
    const type = row && r.registry.get(row.type);
    if (!row || !type?.compensate || row.compensatedAt) continue;
    const didWork =
      row.status === 'COMPLETED' ||
      (row.status === 'CANCELLED' && row.error?.code === 'CANCELLED' && row.startedAt);
    if (!didWork || (type.inline && row.status !== 'COMPLETED')) continue;
    const attempts = 1 + Math.max(type.policy.retryLimit, 2);
    for (let attempt = 1; ; attempt += 1) {
      try {
        await type.compensate({ operationId: row.id, input: row.input, result: row.result }, ctx);
        break;
      } catch (error) {
        const message = `${id}: compensation failed on attempt ${attempt}: ${safeFailure(error).message}`;
        ctx.logger.warn('compensation failed', { item: id, attempt, error });
        await batchTransitions
          .note(r.db, ctx.operationId, ctx.claimId, 'COMPENSATION_FAILED', message, { item: id, attempt })
          .then((applied) => applied && publish(r, applied));
        if (attempt >= attempts) {
          failures.push(message);
          break;
        }
        await sleep(retryDelayMs(type.policy, attempt));
      }
    }
    if (row.status === 'COMPLETED' && !failures.some((failure) => failure.startsWith(`${id}:`))) {
      const applied = await batchTransitions.rolledBack(r.db, row.id);
      if (applied) publish(r, applied);
    }
  }
  return failures;
}
