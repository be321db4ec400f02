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

/** Retry and timeout policy of a type, applied to its pg-boss queue. */
export interface OperationPolicy {
  /** Retries after the first attempt. Default 0. */
  retryLimit: number;
  /** Seconds before a running attempt is expired by pg-boss. Default 7200 (2 h). */
  expireInSeconds: number;
  /** Seconds without a heartbeat before pg-boss considers a worker lost (min 10). Default 10. */
  heartbeatSeconds: number;
}

/** One kind of operation: its name, input contract, policy and handler. */
export interface OperationType<I = unknown, O = unknown> {
  name: string;
  description: string;
  input: z.ZodType<I>;
  policy: OperationPolicy;
  run(input: I, ctx: RunContext): Promise<O>;
}

const DEFAULT_POLICY: OperationPolicy = { retryLimit: 0, expireInSeconds: 7200, heartbeatSeconds: 10 };

/** Declares an operation type; policy fields not given take their defaults. */
export function defineOperationType<I, O>(
  definition: Omit<OperationType<I, O>, 'policy'> & { policy?: Partial<OperationPolicy> },
): OperationType {
  return {
    ...definition,
    policy: { ...DEFAULT_POLICY, ...definition.policy },
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
