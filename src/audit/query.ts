import type { Viewer } from '../auth/viewer.ts';
import type { Db } from '../db/prisma.ts';
import type { AuditAction } from './record.ts';

type Executor = Pick<Db, '$queryRawUnsafe'>;

/** An audit row as auditEvents returns it. */
export interface AuditRow {
  id: string;
  actorId: string;
  action: AuditAction;
  operationId: string | null;
  collectionId: string | null;
  targetUserId: string | null;
  data: Record<string, unknown> | null;
  count: number;
  createdAt: Date;
  lastAt: Date;
}

export interface AuditFilter {
  actorId?: string | null;
  action?: AuditAction | null;
  operationId?: string | null;
  collectionId?: string | null;
  from?: Date | null;
  to?: Date | null;
}

/** The audit rows a viewer may see, narrowed by the filter: SQL conditions and their values. */
function auditConditions(viewer: Viewer, filter: AuditFilter) {
  const where: string[] = [];
  const values: unknown[] = [];
  const add = (sql: (n: string) => string, value: unknown) => {
    values.push(value);
    where.push(sql(`$${values.length}`));
  };
  // Users: their own rows only, whatever the filter says (another actorId matches nothing).
  if (!viewer.isAdmin) add((n) => `"actorId" = ${n}::uuid`, viewer.id);
  if (filter.actorId) add((n) => `"actorId" = ${n}::uuid`, filter.actorId);
  if (filter.action) add((n) => `action = ${n}::"AuditAction"`, filter.action);
  if (filter.operationId) add((n) => `"operationId" = ${n}::uuid`, filter.operationId);
  if (filter.collectionId) add((n) => `"collectionId" = ${n}::uuid`, filter.collectionId);
  if (filter.from) add((n) => `"createdAt" >= ${n}::timestamptz`, filter.from.toISOString());
  if (filter.to) add((n) => `"createdAt" < ${n}::timestamptz`, filter.to.toISOString());
  return { where, values, add };
}

/**
 * A page of audit rows, newest first. A user sees only rows they are the actor of (the where
 * starts with "actorId" = viewer, served by "AuditEvent_actor_idx"); admins see all, narrowed by
 * the filter. `after` / `before` are row ids (exclusive).
 */
export async function auditPage(
  db: Executor,
  viewer: Viewer,
  filter: AuditFilter,
  page: { after: string | null; before: string | null; limit: number; inverted: boolean },
): Promise<AuditRow[]> {
  const { where, values, add } = auditConditions(viewer, filter);
  if (page.after) add((n) => `id < ${n}::bigint`, page.after);
  if (page.before) add((n) => `id > ${n}::bigint`, page.before);
  values.push(page.limit);
  return db.$queryRawUnsafe<AuditRow[]>(
    `SELECT id::text, "actorId", action::text AS action, "operationId", "collectionId", "targetUserId", data, count,
            "createdAt", "lastAt"
       FROM "AuditEvent"
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY id ${page.inverted ? 'ASC' : 'DESC'} LIMIT $${values.length}`,
    ...values,
  );
}

/** How many audit rows {@link auditPage} pages through (every page), counting at most `cap`. */
export async function auditCount(
  db: Executor,
  viewer: Viewer,
  filter: AuditFilter,
  cap: number,
): Promise<number> {
  const { where, values } = auditConditions(viewer, filter);
  values.push(cap);
  const [row] = await db.$queryRawUnsafe<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM "AuditEvent"
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''} LIMIT $${values.length}) AS capped`,
    ...values,
  );
  return row?.n ?? 0;
}
