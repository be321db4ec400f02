// The one place the dashboard gets its client and hooks from: @opsgraph/client (CLIENT-CONTRACT.md).
export {
  type BatchOperation,
  createClient,
  type Operation,
  type OperationEvent,
  type OperationFilter,
  type OperationStatus,
  OpsgraphAuthError,
  type OpsgraphClient,
} from '@opsgraph/client';
export {
  OpsgraphProvider,
  useBatch,
  useCancelOperation,
  useOperation,
  useOperations,
  useOpsgraphClient,
  useStartOperation,
} from '@opsgraph/client/react';

import type { OperationStatus } from '@opsgraph/client';

export type BatchItem = NonNullable<
  import('@opsgraph/client').BatchOperation['batchOutcome']
>['items'][number];

/** Progress as every operation and event carries it. */
export interface Progress {
  current: number;
  total: number | null;
  fraction: number | null;
  message: string | null;
}

export const TERMINAL: ReadonlySet<OperationStatus> = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
