import { z } from 'zod';
import type { Config } from '../config.ts';
import type { Db } from '../db/prisma.ts';
import type { Problem } from '../errors.ts';
import type { Logger } from '../logger.ts';

/** What a handler reports as it goes. `total` and `message` are optional. */
export interface Progress {
  current: number;
  total?: number | null;
  message?: string | null;
}

/** What a running handler is given. */
export interface RunContext {
  /** The operation's id. */
  operationId: string;
  /** The user who started it. */
  ownerId: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** Aborts when the operation is cancelled, times out, or the process shuts down. */
  signal: AbortSignal;
  /** Reports progress; persisted and published at most every `progressIntervalMs`. */
  progress(progress: Progress): void;
  logger: Logger;
  /** The database; for an inline type, the transaction the operation runs in. */
  db: Db;
  config: Config;
  /**
   * Identifies this attempt. A write made with `stillHeld` in its transaction commits only while
   * the attempt still holds the operation (not cancelled, not presumed dead).
   */
  claimId: string;
}

/** What a compensation step is given: the completed operation it undoes. */
export interface Completed<I = unknown, O = unknown> {
  operationId: string;
  input: I;
  result: O;
}

/** What `check` may consult: the database, the configuration, and who is asking. */
export interface CheckContext {
  db: Db;
  config: Config;
  /** The user starting the operation (exports are checked against their owner). */
  viewer: { id: string; isAdmin: boolean };
}

/** Retry and timeout policy of a type. */
export interface OperationPolicy {
  /** Retries after the first attempt (pg-boss `retryLimit`). Default 0. */
  retryLimit: number;
  /** Seconds before the first retry (pg-boss `retryDelay`). Default 5. */
  retryDelaySeconds: number;
  /** Double the delay after each failed attempt (pg-boss `retryBackoff`). Default true. */
  retryBackoff: boolean;
  /** Cap on the delay between attempts, in seconds (pg-boss `retryDelayMax`). Default 300. */
  retryDelayMaxSeconds: number;
  /** Seconds after which the handler's signal is aborted with reason `timeout`. Default 3600 (1 h). */
  softTimeoutSeconds: number;
  /** Seconds after which the attempt fails with HARD_TIMEOUT whatever the handler does. Default 7200 (2 h). */
  hardTimeoutSeconds: number;
  /** Seconds without a worker heartbeat before its attempt counts as lost (min 10). Default 10. */
  heartbeatSeconds: number;
}

/** Thrown by a handler for a failure that retrying cannot fix (bad input, permanent refusal). */
export class NonRetryableError extends Error {
  override name = 'NonRetryableError';
  readonly retryable = false;
  constructor(
    message: string,
    readonly code = 'NON_RETRYABLE',
  ) {
    super(message);
  }
}

/** One kind of operation: its name, input contract, policy and handler. */
export interface OperationType<I = unknown, O = unknown> {
  name: string;
  description: string;
  input: z.ZodType<I>;
  /** The shape of the result, published as JSON Schema (batches check `$ref` paths against it). */
  output?: z.ZodType<O>;
  /** Credits the operation costs (charged once credits exist). Default 1. */
  cost: number;
  /**
   * Inline types run inside the database transaction of the request that starts them and are
   * finished when it returns; job types (default) run on a worker.
   */
  inline: boolean;
  /** Internal types (the batch coordinator) cannot be started by clients and are not listed. */
  internal?: boolean;
  policy: OperationPolicy;
  /**
   * Days a terminal operation of this type is kept before the retention job removes it (with its
   * events). Default: `config.retentionDays` (OPSGRAPH_RETENTION_DAYS, 30).
   */
  retentionDays?: number;
  /**
   * The collection the operation acts on, and whether it reads or writes it. Starting one on a
   * collection the viewer may not see is NotFound; writing one they do not own is Forbidden.
   */
  resource?(input: I): { collectionId: string; access: 'read' | 'write' } | undefined;
  /** Checks that need I/O (files, rows), run before anything is created. Returns the problems. */
  check?(input: I, ctx: CheckContext): Promise<Problem[]>;
  run(input: I, ctx: RunContext): Promise<O>;
  /** Undoes a completed operation of this type (used by atomic batches). */
  compensate?(completed: Completed<I, O>, ctx: RunContext): Promise<void>;
}

const DEFAULT_POLICY: OperationPolicy = {
  retryLimit: 0,
  retryDelaySeconds: 5,
  retryBackoff: true,
  retryDelayMaxSeconds: 300,
  softTimeoutSeconds: 3600,
  hardTimeoutSeconds: 7200,
  heartbeatSeconds: 10,
};

/** Delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed. */
export function retryDelayMs(policy: OperationPolicy, attempt: number): number {
  const base = policy.retryDelaySeconds * 1000;
  const delay = policy.retryBackoff ? base * 2 ** (attempt - 1) : base;
  return Math.min(delay, policy.retryDelayMaxSeconds * 1000);
}

/** Declares an operation type; policy fields not given take their defaults. */
export function defineOperationType<I, O>(
  definition: Omit<OperationType<I, O>, 'policy' | 'cost' | 'inline'> & {
    policy?: Partial<OperationPolicy>;
    cost?: number;
    inline?: boolean;
  },
): OperationType {
  const policy = { ...DEFAULT_POLICY, ...definition.policy };
  if (policy.heartbeatSeconds < 10)
    throw new Error(`${definition.name}: heartbeatSeconds must be at least 10`);
  if (policy.hardTimeoutSeconds > 86_400 - 60) {
    throw new Error(`${definition.name}: hardTimeoutSeconds must be under 24 h (pg-boss's longest expiry)`);
  }
  if (policy.softTimeoutSeconds > policy.hardTimeoutSeconds) {
    throw new Error(`${definition.name}: softTimeoutSeconds must not exceed hardTimeoutSeconds`);
  }
  const { resource, check, compensate } = definition;
  // Callers parse the input with `definition.input` first: the casts below are safe.
  return {
    ...definition,
    cost: definition.cost ?? 1,
    inline: definition.inline ?? false,
    policy,
    run: (input, ctx) => definition.run(input as I, ctx),
    resource: resource && ((input) => resource(input as I)),
    check: check && ((input, ctx) => check(input as I, ctx)),
    compensate: compensate && ((completed, ctx) => compensate(completed as Completed<I, O>, ctx)),
  } as OperationType;
}

/** The catalog of operation types, consulted by the API (to validate) and the workers (to run). */
export interface Registry {
  get(name: string): OperationType | undefined;
  /** A type clients may start (not internal). */
  startable(name: string): OperationType | undefined;
  /** Every type, internal ones included. */
  list(): OperationType[];
  /** The types clients may start. */
  publicTypes(): OperationType[];
  /** The types that run on workers (each has a pg-boss queue). */
  jobTypes(): OperationType[];
  /** The input schema of a type as JSON Schema, for clients. */
  jsonSchema(name: string): unknown;
  /** The declared result schema of a type as JSON Schema, or null. */
  outputJsonSchema(name: string): unknown;
}

export function createRegistry(types: OperationType[]): Registry {
  const byName = new Map(types.map((type) => [type.name, type]));
  if (byName.size !== types.length) throw new Error('operation type names must be unique');
  const schemas = new Map(types.map((type) => [type.name, z.toJSONSchema(type.input, { io: 'input' })]));
  const outputs = new Map(
    types.map((type) => [type.name, type.output ? z.toJSONSchema(type.output, { io: 'output' }) : null]),
  );
  const list = () => [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  return {
    get: (name) => byName.get(name),
    startable: (name) => {
      const type = byName.get(name);
      return type?.internal ? undefined : type;
    },
    list,
    publicTypes: () => list().filter((type) => !type.internal),
    jobTypes: () => list().filter((type) => !type.inline),
    jsonSchema: (name) => schemas.get(name),
    outputJsonSchema: (name) => outputs.get(name) ?? null,
  };
}
