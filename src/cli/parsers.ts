import { InvalidArgumentError } from 'commander';
import { OPERATION_STATUSES, type OperationStatus } from './documents.ts';

/** A whole number argument; anything else is a usage error. */
export function integer(value: string): number {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`"${value}" is not a whole number`);
  return Number(value);
}

/** A comma-separated list of statuses, any case (`failed,cancelled`). */
export function statusList(value: string): OperationStatus[] {
  const statuses = value
    .split(',')
    .map((status) => status.trim().toUpperCase())
    .filter(Boolean);
  const unknown = statuses.filter((status) => !(OPERATION_STATUSES as readonly string[]).includes(status));
  if (unknown.length || !statuses.length) {
    throw new InvalidArgumentError(`statuses are ${OPERATION_STATUSES.join(', ')} (comma-separated)`);
  }
  return statuses as OperationStatus[];
}
