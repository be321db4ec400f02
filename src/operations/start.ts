import { createHash, randomUUID } from 'node:crypto';
import { fromPrisma } from 'pg-boss';
import type { z } from 'zod';
import type { Viewer } from '../auth/viewer.ts';
import type { Db } from '../db/prisma.ts';
import { type Problem, ValidationError } from '../errors.ts';
import type { Operation } from '../generated/prisma/client.ts';
import type { Resources } from '../resources.ts';
import { IdempotencyKeyConflictError, UnknownOperationTypeError } from './errors.ts';
import { type JobData, jobOptions } from './queues.ts';
import type { EventMessage } from './record.ts';
import { operationChannel, toOperation } from './record.ts';
import type { OperationType } from './registry.ts';

export interface StartRequest {
  type: string;
  input?: unknown;
  idempotencyKey?: string | null;
}

export interface Started {
  operation: Operation;
  /** True when an earlier request with the same idempotency key created the operation. */
  replayed: boolean;
}

type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/**
 * Validates and creates an operation: its row, its CREATED event and its pg-boss job in one
 * transaction, then publishes the event. With an idempotency key, a repeat returns the original.
 */
export async function startOperation(r: Resources, viewer: Viewer, request: StartRequest): Promise<Started> {
  const { type, input } = validate(r, request);
  const key = request.idempotencyKey ?? null;
  const inputHash = hashRequest(type.name, input);
  if (key !== null) {
    const earlier = await findByKey(r.db, viewer.id, key);
    if (earlier) return replay(earlier, key, inputHash);
  }
  const created = await r.db.$transaction((tx) =>
    insertOperation(tx, r, { type, input, ownerId: viewer.id, idempotencyKey: key, inputHash }),
  );
  if (!created) {
    // A concurrent request with the same key won the insert.
    const earlier = await findByKey(r.db, viewer.id, key as string);
    if (!earlier) throw new Error('idempotency key conflict without a stored operation');
    return replay(earlier, key as string, inputHash);
  }
  r.bus.publish(operationChannel(created.operation.id), created);
  return { operation: toOperation(created.operation), replayed: false };
}

interface NewOperation {
  type: OperationType;
  input: unknown;
  ownerId: string;
  idempotencyKey: string | null;
  inputHash: string;
}

/**
 * Writes the operation row, its first event and its job inside the caller's transaction. Returns
 * null, writing nothing, when the owner already used the idempotency key.
 */
export async function insertOperation(
  tx: Tx,
  r: Pick<Resources, 'boss'>,
  spec: NewOperation,
): Promise<EventMessage | null> {
  const id = randomUUID();
  const jobId = randomUUID();
  const rows = await tx.$queryRawUnsafe<EventMessage[]>(
    `WITH op AS (
       INSERT INTO "Operation" (id, type, input, "ownerId", "idempotencyKey", "inputHash", "jobId", sequence)
       VALUES ($1::uuid, $2, $3::jsonb, $4::uuid, $5, $6, $7::uuid, 1)
       ON CONFLICT ("ownerId", "idempotencyKey") DO NOTHING
       RETURNING *
     ), ev AS (
       INSERT INTO "OperationEvent" ("operationId", sequence, kind, status, "progressCurrent")
       SELECT id, 1, 'CREATED', status, 0 FROM op
       RETURNING *
     )
     SELECT row_to_json(op) AS operation, row_to_json(ev) AS event FROM op, ev`,
    id,
    spec.type.name,
    JSON.stringify(spec.input),
    spec.ownerId,
    spec.idempotencyKey,
    spec.inputHash,
    jobId,
  );
  const created = rows[0];
  if (!created) return null;
  const data: JobData = { operationId: id };
  await r.boss.send(spec.type.name, data, { id: jobId, ...jobOptions(spec.type.policy), db: fromPrisma(tx) });
  return created;
}

function validate(r: Resources, request: StartRequest): { type: OperationType; input: unknown } {
  const type = r.registry.get(request.type);
  if (!type) {
    throw new UnknownOperationTypeError(
      request.type,
      r.registry.list().map((t) => t.name),
    );
  }
  const key = request.idempotencyKey;
  if (key !== undefined && key !== null && (key.length < 1 || key.length > 255)) {
    throw new ValidationError([{ path: ['idempotencyKey'], message: 'must be 1 to 255 characters' }]);
  }
  if (key?.includes('\u0000')) {
    throw new ValidationError([{ path: ['idempotencyKey'], message: 'must not contain NUL characters' }]);
  }
  const parsed = type.input.safeParse(request.input);
  if (!parsed.success) throw new ValidationError(parsed.error.issues.flatMap(toProblems));
  const nuls = nulPaths(parsed.data, ['input']);
  if (nuls.length) {
    throw new ValidationError(nuls.map((path) => ({ path, message: 'must not contain NUL characters' })));
  }
  return { type, input: parsed.data };
}

function toProblems(issue: z.core.$ZodIssue): Problem[] {
  const path = ['input', ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => ({ path: [...path, k], message: `unknown field "${k}"` }));
  }
  return [{ path, message: issue.message }];
}

/** Paths of strings (values or keys) holding U+0000, which PostgreSQL text and jsonb refuse. */
function nulPaths(value: unknown, path: (string | number)[]): (string | number)[][] {
  if (typeof value === 'string') return value.includes('\u0000') ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((item, i) => nulPaths(item, [...path, i]));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) =>
      k.includes('\u0000') ? [[...path, k]] : nulPaths(v, [...path, k]),
    );
  }
  return [];
}

const findByKey = (db: Db, ownerId: string, key: string) =>
  db.operation.findUnique({ where: { ownerId_idempotencyKey: { ownerId, idempotencyKey: key } } });

function replay(earlier: Operation, key: string, inputHash: string): Started {
  if (earlier.inputHash !== inputHash) throw new IdempotencyKeyConflictError(key, earlier.id);
  return { operation: earlier, replayed: true };
}

/** A stable hash of type + input: object keys sorted, so key order does not matter. */
function hashRequest(type: string, input: unknown): string {
  return createHash('sha256').update(type).update('\0').update(canonicalJson(input)).digest('hex');
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
