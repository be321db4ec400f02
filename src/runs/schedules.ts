import type { Job, PgBoss } from 'pg-boss';
import { fromPrisma } from 'pg-boss';
import type { Viewer } from '../auth/viewer.ts';
import { NotFoundError, type Problem, ValidationError } from '../errors.ts';
import type { Schedule } from '../generated/prisma/client.ts';
import { authorize, startOperation, validate } from '../operations/start.ts';
import type { Resources } from '../resources.ts';
import { auditSpot } from './audit-spots.ts';

/** The pg-boss queue each schedule firing is a job of (`boss.schedule(SCHEDULE_QUEUE, cron, …, { key: id })`). */
export const SCHEDULE_QUEUE = 'opsgraph.schedule';

export interface ScheduleRequest {
  name: string;
  cron: string;
  timezone?: string | null;
  type: string;
  input?: unknown;
}

/** A user already has as many schedules as `config.schedulesPerUser` allows; nothing was created. */
export class ScheduleLimitError extends Error {
  override name = 'ScheduleLimitError';
  constructor(readonly limit: number) {
    super(`At most ${limit} schedules per user`);
  }
}

/** What a firing's job carries. */
interface FireData {
  scheduleId: string;
}

/** Cron: 5 fields (minute first) or 6 (seconds first); pg-boss's RRULEs are not offered. */
const CRON = /^\S+( \S+){4,5}$/;

/**
 * Checks a schedule's cron and time zone: a cron expression pg-boss can evaluate, in an IANA time
 * zone (default UTC), whose firings are at least `config.scheduleMinIntervalSeconds` apart
 * (pg-boss fires a schedule at most once a minute). Problems at `input.cron` / `input.timezone`.
 */
export function checkRecurrence(r: Resources, cron: string, timezone: string): Problem[] {
  const problems: Problem[] = [];
  if (!isTimeZone(timezone)) {
    problems.push({
      path: ['input', 'timezone'],
      message: 'must be an IANA time zone such as Europe/Paris or UTC',
    });
  }
  if (cron.length > 200 || !CRON.test(cron)) {
    problems.push({
      path: ['input', 'cron'],
      message: 'must be a cron expression of 5 or 6 fields (at most 200 characters)',
    });
    return problems;
  }
  let next: Date[];
  try {
    next = r.boss.previewSchedule(cron, { tz: problems.length ? 'UTC' : timezone, count: 20 });
  } catch {
    problems.push({ path: ['input', 'cron'], message: 'is not a valid cron expression' });
    return problems;
  }
  if (next.length === 0) problems.push({ path: ['input', 'cron'], message: 'never fires' });
  const minMs = r.config.scheduleMinIntervalSeconds * 1000;
  for (let i = 1; i < next.length; i += 1) {
    if ((next[i] as Date).getTime() - (next[i - 1] as Date).getTime() < minMs) {
      problems.push({
        path: ['input', 'cron'],
        message: `fires more often than every ${r.config.scheduleMinIntervalSeconds} seconds`,
      });
      break;
    }
  }
  return problems;
}

/** Runs a start's check, its problems moved under the `input` argument of createSchedule. */
function withinInput<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const problems = error.problems.map((p) => ({ ...p, path: ['input', ...p.path] }));
    throw new ValidationError(problems, error.omittedProblems);
  }
}

function isTimeZone(timezone: string): boolean {
  if (timezone.length > 100) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates a schedule owned by the viewer: its type and input are checked as startOperation would
 * (type, input limits, access to the collection it acts on) and its recurrence by checkRecurrence;
 * the row and pg-boss's schedule are written in one transaction, under a lock on the owner so the
 * per-user bound (`config.schedulesPerUser`) is exact. A name already used by the owner is a
 * ValidationError at `input.name`.
 */
export async function createSchedule(
  r: Resources,
  viewer: Viewer,
  request: ScheduleRequest,
): Promise<Schedule> {
  const problems: Problem[] = [];
  const name = request.name;
  if (name.length < 1 || name.length > 100 || name.includes('\u0000')) {
    problems.push({ path: ['input', 'name'], message: 'must be 1 to 100 characters without NUL' });
  }
  const timezone = request.timezone || 'UTC';
  problems.push(...checkRecurrence(r, request.cron, timezone));
  if (problems.length) throw new ValidationError(problems);
  // UnknownOperationTypeError, or a ValidationError at input.input…, as a start would.
  const { type, input } = withinInput(() =>
    validate(r, viewer, { type: request.type, input: request.input }),
  );
  if (type.inline) {
    throw new ValidationError([{ path: ['input', 'type'], message: 'an inline type cannot be scheduled' }]);
  }
  await authorize(r, viewer, type, input);
  return r.db.$transaction(async (tx) => {
    await tx.$executeRawUnsafe('SELECT 1 FROM "User" WHERE id = $1::uuid FOR UPDATE', viewer.id);
    const count = await tx.schedule.count({ where: { ownerId: viewer.id } });
    if (count >= r.config.schedulesPerUser) throw new ScheduleLimitError(r.config.schedulesPerUser);
    if (await tx.schedule.findUnique({ where: { ownerId_name: { ownerId: viewer.id, name } } })) {
      throw new ValidationError([
        { path: ['input', 'name'], message: 'you already have a schedule with this name' },
      ]);
    }
    const schedule = await tx.schedule.create({
      data: {
        ownerId: viewer.id,
        name,
        cron: request.cron,
        timezone,
        type: type.name,
        input: input as object,
      },
    });
    const data: FireData = { scheduleId: schedule.id };
    await r.boss.schedule(SCHEDULE_QUEUE, request.cron, data, {
      tz: timezone,
      key: schedule.id,
      retryLimit: 3,
      db: fromPrisma(tx),
    });
    await auditSpot(tx, { action: 'schedule.created', actorId: viewer.id, scheduleId: schedule.id });
    return schedule;
  });
}

/**
 * Deletes a schedule its owner or an admin may see (NotFound otherwise: a schedule is visible to
 * nobody else), with pg-boss's schedule, in one transaction: it fires no more. The operations it
 * started stay (their `schedule` becomes null).
 */
export async function deleteSchedule(
  r: Resources,
  viewer: Viewer,
  id: string,
  displayId: string,
): Promise<void> {
  await r.db.$transaction(async (tx) => {
    const found = await tx.schedule.findUnique({ where: { id } });
    if (!found || !(viewer.isAdmin || found.ownerId === viewer.id))
      throw new NotFoundError('Schedule', displayId);
    await tx.schedule.delete({ where: { id } });
    await r.boss.unschedule(SCHEDULE_QUEUE, id, { db: fromPrisma(tx) });
    await auditSpot(tx, { action: 'schedule.deleted', actorId: viewer.id, scheduleId: id });
  });
}

/**
 * One firing: starts the schedule's operation as its owner through startOperation (input limits,
 * access, quotas — all as of now), linked to the schedule. pg-boss creates one job per tick however
 * many processes run its scheduler; the job's id is the start's idempotency key, so a job retried
 * after a crash never starts a second operation. A start refused now (a quota, lost access) is
 * logged and skipped: the next tick tries again.
 */
export async function fireSchedule(r: Resources, job: Job<FireData>): Promise<void> {
  const schedule = await r.db.schedule.findUnique({
    where: { id: job.data.scheduleId },
    include: { owner: true },
  });
  if (!schedule) {
    // Deleted after this tick was queued.
    await r.boss.unschedule(SCHEDULE_QUEUE, job.data.scheduleId);
    return;
  }
  const viewer: Viewer = {
    id: schedule.owner.id,
    name: schedule.owner.name,
    isAdmin: schedule.owner.isAdmin,
  };
  try {
    await startOperation(r, viewer, {
      type: schedule.type,
      input: schedule.input,
      scheduleId: schedule.id,
      idempotencyKey: `schedule:${schedule.id}:${job.id}`,
    });
  } catch (error) {
    r.logger.warn('a schedule firing started nothing', {
      scheduleId: schedule.id,
      error: (error as Error).name,
      message: (error as Error).message.slice(0, 200),
    });
  }
}

/** Creates the firing queue (idempotent). */
export async function ensureScheduleQueue(boss: PgBoss): Promise<void> {
  if (await boss.getQueue(SCHEDULE_QUEUE)) return;
  await boss.createQueue(SCHEDULE_QUEUE).catch(async (error: unknown) => {
    if (!(await boss.getQueue(SCHEDULE_QUEUE))) throw error;
  });
}
