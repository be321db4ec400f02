import { z } from 'zod';
import type { Db } from '../db/prisma.ts';
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
  /** 1 for the first attempt. */
  attempt: number;
  /** Aborts when the operation is cancelled, times out, or the process shuts down. */
  signal: AbortSignal;
  /** Reports progress; persisted and published at most every `progressIntervalMs`. */
  progress(progress: Progress): void;
  logger: Logger;
  db: Db;
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
  policy: OperationPolicy;
  run(input: I, ctx: RunContext): Promise<O>;
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
  definition: Omit<OperationType<I, O>, 'policy'> & { policy?: Partial<OperationPolicy> },
): OperationType {
  const policy = { ...DEFAULT_POLICY, ...definition.policy };
  if (policy.heartbeatSeconds < 10)
    throw new Error(`${definition.name}: heartbeatSeconds must be at least 10`);
  if (policy.softTimeoutSeconds > policy.hardTimeoutSeconds) {
    throw new Error(`${definition.name}: softTimeoutSeconds must not exceed hardTimeoutSeconds`);
  }
  return {
    ...definition,
    policy,
    // The runner parses the input with `definition.input` before calling run.
    run: (input, ctx) => definition.run(input as I, ctx),
  };
}

/** The catalog of operation types, consulted by the API (to validate) and the workers (to run). */
export interface Registry {
  get(name: string): OperationType | undefined;
  list(): OperationType[];
  /** The input schema of a type as JSON Schema, for clients. */
  jsonSchema(name: string): unknown;
}

export function createRegistry(types: OperationType[]): Registry {
  const byName = new Map(types.map((type) => [type.name, type]));
  if (byName.size !== types.length) throw new Error('operation type names must be unique');
  const schemas = new Map(types.map((type) => [type.name, z.toJSONSchema(type.input, { io: 'input' })]));
  return {
    get: (name) => byName.get(name),
    list: () => [...byName.values()].sort((a, b) => a.name.localeCompare(b.name)),
    jsonSchema: (name) => schemas.get(name),
  };
}
