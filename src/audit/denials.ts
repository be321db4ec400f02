import type { Viewer } from '../auth/viewer.ts';
import { ForbiddenError, NotFoundError } from '../errors.ts';
import { QuotaExceededError } from '../operations/errors.ts';
import type { Resources } from '../resources.ts';
import { type AuditEntry, recordRefusal } from './record.ts';

type Target = Pick<AuditEntry, 'operationId' | 'collectionId' | 'targetUserId'> & { what: string };

/**
 * Runs a mutation or lookup and, when it answers NotFoundError / ForbiddenError (the viewer may not
 * see or change what they named) or QuotaExceededError, records the refusal (ACCESS_DENIED /
 * QUOTA_EXCEEDED, bounded per user and minute) after the work was rolled back, then rethrows. A
 * quota refusal is also counted in `opsgraph_refusals_total` by its quota.
 */
export async function auditingRefusals<T>(
  r: Pick<Resources, 'db' | 'config' | 'logger'> & Partial<Pick<Resources, 'metrics'>>,
  viewer: Viewer | null,
  target: Target,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof QuotaExceededError) r.metrics?.refusals.inc({ limit: error.quota });
    if (viewer) {
      const action =
        error instanceof NotFoundError || error instanceof ForbiddenError
          ? 'ACCESS_DENIED'
          : error instanceof QuotaExceededError
            ? 'QUOTA_EXCEEDED'
            : null;
      if (action) await refused(r, viewer, action, target, error as Error);
    }
    throw error;
  }
}

/** Records one refusal (see recordRefusal); a failure to record is logged, never thrown. */
export async function refused(
  r: Pick<Resources, 'db' | 'config' | 'logger'>,
  viewer: Viewer,
  action: 'ACCESS_DENIED' | 'QUOTA_EXCEEDED',
  target: Target,
  error: Error,
): Promise<void> {
  const { what, ...ids } = target;
  const failed = await recordRefusal(r.db, r.config.auditDenialsPerMinute, {
    actorId: viewer.id,
    action,
    ...ids,
    data: { what, answer: error.name },
  });
  if (failed) r.logger.warn('audit: a refusal could not be recorded', { error: failed.message });
}
