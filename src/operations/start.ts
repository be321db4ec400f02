import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { Viewer } from '../auth/viewer.ts';
import { collectionGlobalId } from '../collections/ids.ts';
import type { Db } from '../db/prisma.ts';
import { ForbiddenError, NotFoundError, type Problem, ValidationError } from '../errors.ts';
import { slicer } from '../event-loop.ts';
import type { Operation } from '../generated/prisma/client.ts';
import { admit } from '../quotas/quotas.ts';
import type { Resources } from '../resources.ts';
import { checkTiming, jobPriority } from '../runs/timing.ts';
import { publish } from './attempt.ts';
import { registryFor } from './audience.ts';
import { createOperation } from './create.ts';
import { IdempotencyKeyConflictError, UnknownOperationTypeError } from './errors.ts';
import { runInline } from './inline.ts';
import { parseInput } from './input-limits.ts';
import { insertOperation, type NewOperation } from './insert.ts';
import { jobTable } from './job-row.ts';
import type { EventMessage } from './record.ts';
import { toOperation } from './record.ts';
import type { OperationType } from './registry.ts';

export interface StartRequest {
  type: string;
  input?: unknown;
  idempotencyKey?: string | null;
  /** Delayed start (src/runs/timing.ts). Default now. */
  runAt?: Date | null;
  /** 0–9 among jobs of equal fair-share rank (src/runs/timing.ts). Default 0. */
  priority?: number | null;
  /** The operation this start retries (src/runs/retry.ts). */
  retryOfId?: string | null;
  /** The schedule whose firing this start is (src/runs/schedules.ts). */
  scheduleId?: string | null;
  /** Runs in the transaction that creates the operation (src/runs/audit-spots.ts). */
  onInserted?: NewOperation['onInserted'];
}

export interface Started {
  operation: Operation;
  /** True when an earlier request with the same idempotency key created the operation. */
  replayed: boolean;
}

/**
 * Validates and creates an operation: its row, its CREATED event and its pg-boss job in one
 * transaction (one statement: create.ts), then publishes the event. With an idempotency key, a repeat returns the original.
 */
export async function startOperation(r: Resources, viewer: Viewer, request: StartRequest): Promise<Started> {
  // Measuring, hashing and storing a 1 MB input are each a few ms of CPU: one at a time.
  const slice = slicer();
  const { type, input } = validate(r, viewer, request);
  await slice();
  const timing = checkTiming(r.config, request);
  if (type.inline && timing.runAt) {
    throw new ValidationError([
      { path: ['runAt'], message: 'an inline type runs within the request: it cannot be delayed' },
    ]);
  }
  const key = request.idempotencyKey ?? null;
  // The canonical text is both hashed and stored: a 1 MB input is serialized once.
  const { inputJson, inputHash } = hashInput(type.name, input);
  if (key !== null) {
    const earlier = await findByKey(r.db, viewer.id, key);
    if (earlier) return replay(earlier, key, inputHash);
  }
  const collectionId = await authorize(r, viewer, type, input);
  const problems = (await type.check?.(input, { db: r.db, config: r.config, viewer })) ?? [];
  if (problems.length) throw new ValidationError(problems);
  const links = {
    retryOfId: request.retryOfId ?? null,
    scheduleId: request.scheduleId ?? null,
    onInserted: request.onInserted,
  };
  const spec = {
    type,
    input,
    inputJson,
    ownerId: viewer.id,
    idempotencyKey: key,
    inputHash,
    collectionId,
    ...links,
  };
  const messages = type.inline
    ? await runInline(r, type, spec)
    : await create(r, { ...spec, runAt: timing.runAt }, timing.priority);
  if (!messages) {
    // A concurrent request with the same key won the insert.
    const earlier = await findByKey(r.db, viewer.id, key as string);
    if (!earlier) throw new Error('idempotency key conflict without a stored operation');
    return replay(earlier, key as string, inputHash);
  }
  for (const message of messages) publish(r, message);
  return { operation: toOperation((messages.at(-1) as EventMessage).operation), replayed: false };
}

/**
 * Creates a job type's operation: in one statement (create.ts), or in a transaction of several when
 * the start writes more rows of its own (onInserted: a retry's audit rows). [row] or null: a replay.
 */
async function create(r: Resources, spec: NewOperation, priority: number): Promise<EventMessage[] | null> {
  if (!spec.onInserted) {
    const table = await jobTable(r.boss, r.config.bossSchema, spec.type.name);
    const created = await createOperation(r.db, r.config, table, { ...spec, priority });
    return created && [created];
  }
  return r.db.$transaction(
    async (tx) => {
      const created = await admit(tx, r.config, { ownerId: spec.ownerId, operations: 1 }, (rank) =>
        insertOperation(tx, r, { ...spec, priority: jobPriority(rank, priority) }),
      );
      return created && [created];
    },
    // Starts of one user queue on their quota lock: wait for it rather than fail.
    { maxWait: 10_000, timeout: 30_000 },
  );
}

/**
 * Applies the access rules of the collection an operation would act on: NotFound when the viewer
 * may not see it, Forbidden when they may see it but not write to it. Returns its id.
 */
export async function authorize(r: Resources, viewer: Viewer, type: OperationType, input: unknown) {
  const resource = type.resource?.(input);
  if (!resource) return null;
  const collection = await r.db.collection.findUnique({
    where: { id: resource.collectionId },
    select: { ownerId: true, isPublic: true },
  });
  const owns = viewer.isAdmin || collection?.ownerId === viewer.id;
  if (!collection || !(owns || collection.isPublic)) {
    throw new NotFoundError('Collection', collectionGlobalId(resource.collectionId));
  }
  if (resource.access === 'write' && !owns) throw new ForbiddenError(`${type.name} on this collection`);
  return resource.collectionId;
}

/** The type and parsed input of a start (UnknownOperationTypeError, ValidationError); also checks createSchedule. */
export function validate(
  r: Resources,
  viewer: Viewer,
  request: StartRequest,
): { type: OperationType; input: unknown } {
  const registry = registryFor(r.registry, r.config.diagnostics, viewer);
  const type = registry.startable(request.type);
  if (!type) {
    throw new UnknownOperationTypeError(
      request.type,
      registry.publicTypes().map((t) => t.name),
    );
  }
  checkIdempotencyKey(request.idempotencyKey);
  // Size, depth and NUL characters, each at its path (see input-limits.ts).
  const input = parseInput(r.config, type.input, request.input, toProblems);
  return { type, input };
}

/** An idempotency key is 1 to 255 characters without NUL; throws a ValidationError otherwise. */
export function checkIdempotencyKey(key: string | null | undefined): void {
  if (key !== undefined && key !== null && (key.length < 1 || key.length > 255)) {
    throw new ValidationError([{ path: ['idempotencyKey'], message: 'must be 1 to 255 characters' }]);
  }
  if (key?.includes('\u0000')) {
    throw new ValidationError([{ path: ['idempotencyKey'], message: 'must not contain NUL characters' }]);
  }
}

export function toProblems(issue: z.core.$ZodIssue): Problem[] {
  const path = ['input', ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => ({ path: [...path, k], message: `unknown field "${k}"` }));
  }
  return [{ path, message: issue.message }];
}

/** Paths of strings (values or keys) holding U+0000, which PostgreSQL text and jsonb refuse. */
export function nulPaths(value: unknown, path: (string | number)[]): (string | number)[][] {
  if (typeof value === 'string') return value.includes('\u0000') ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((item, i) => nulPaths(item, [...path, i]));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) =>
      k.includes('\u0000') ? [[...path, k]] : nulPaths(v, [...path, k]),
    );
  }
  return [];
}

export const findByKey = (db: Db, ownerId: string, key: string) =>
  db.operation.findUnique({ where: { ownerId_idempotencyKey: { ownerId, idempotencyKey: key } } });

export function replay(earlier: Operation, key: string, inputHash: string): Started {
  if (earlier.inputHash !== inputHash) throw new IdempotencyKeyConflictError(key, earlier.id);
  return { operation: earlier, replayed: true };
}

/** A stable hash of type + input: object keys sorted, so key order does not matter. */
export function hashRequest(type: string, input: unknown): string {
  return hashInput(type, input).inputHash;
}

/** The input as JSON text with object keys sorted, and hashRequest's hash of it. */
export function hashInput(type: string, input: unknown): { inputJson: string; inputHash: string } {
  const inputJson = sortedJson(input);
  const inputHash = createHash('sha256').update(type).update('\0').update(inputJson).digest('hex');
  return { inputJson, inputHash };
}

const INDEX_LIKE = /^(0|[1-9]\d*)$/;
const UNSORTABLE = new Error('an object with index-like keys');

/** JSON.stringify's replacer: objects with their keys in text order. */
function sortKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  if (keys.length < 2) return value;
  // Objects list index-like keys ("9", "10") first in numeric order: a copy cannot hold text order.
  if (INDEX_LIKE.test(keys[0] as string)) throw UNSORTABLE;
  let ordered = true;
  for (let i = 1; i < keys.length && ordered; i += 1) ordered = (keys[i - 1] as string) < (keys[i] as string);
  if (ordered) return value;
  const copy: Record<string, unknown> = {};
  for (const key of keys.sort()) copy[key] = (value as Record<string, unknown>)[key];
  return copy;
}

/**
 * canonicalJson's text for JSON values, through the native JSON.stringify: ~1.5× faster on a 1 MB
 * input of small objects (~65 → ~43 ms CPU), which is one synchronous step of startOperation.
 */
function sortedJson(value: unknown): string {
  try {
    return JSON.stringify(value, sortKeys);
  } catch (error) {
    if (error === UNSORTABLE) return canonicalJson(value);
    throw error;
  }
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
