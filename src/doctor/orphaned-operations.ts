import {
  findAbandonedCollections,
  findAbandonedItems,
  findOrphans,
  orphanProblem,
  reconcile,
} from '../operations/reconcile.ts';
import type { Check, Finding } from './finding.ts';

const kind = 'orphaned-operation';

/**
 * Unfinished operations whose job is missing, finished or whose worker stopped heartbeating; batch
 * items left waiting by a batch that ended; collections left BUSY by an operation that ended. The
 * finding is the reconciler's (src/operations/reconcile.ts) and so is the repair: `--fix` runs one
 * reconcile pass, every repair a conditional transition with its event.
 */
export const orphanedOperations: Check = {
  kind,
  description: 'unfinished operations whose job is gone or whose worker died (the reconciler repairs them)',
  async run(r, options) {
    if (options.fix) {
      const repairs = await reconcile(r, { minAgeSeconds: options.minAgeSeconds, limit: options.limit });
      return repairs.map((repair) => ({
        kind,
        subject: `Operation ${repair.operationId}`,
        problem: `${repair.type} ${repair.status}: ${repair.problem}`,
        action: repair.action,
        fixable: true,
        fixed: repair.fixed,
      }));
    }
    const findings: Finding[] = [];
    for (const c of await findOrphans(r, options.minAgeSeconds, options.limit)) {
      const known = r.registry.get(c.type) !== undefined;
      findings.push({
        kind,
        subject: `Operation ${c.id}`,
        problem: `${c.type} ${c.status}: ${orphanProblem(c)}`,
        action: !known
          ? 'FAILED (unknown type)'
          : c.status === 'PROCESSING' && c.claimId
            ? 'attempt lost: RETRY_SCHEDULED by its policy, else FAILED (WORKER_LOST)'
            : 'REQUEUED with a new job',
        fixable: true,
      });
    }
    for (const item of await findAbandonedItems(r, options.limit)) {
      findings.push({
        kind,
        subject: `Operation ${item.id}`,
        problem: `${item.type} PENDING: batch ended before the item started`,
        action: 'SKIPPED',
        fixable: true,
      });
    }
    for (const c of await findAbandonedCollections(r, options.minAgeSeconds, options.limit)) {
      findings.push({
        kind,
        subject: `Operation ${c.operationId}`,
        problem: `${c.type} ${c.status}: collection ${c.id} left BUSY by an operation that ended`,
        action: 'collection INCOMPLETE',
        fixable: true,
      });
    }
    return findings;
  },
};
