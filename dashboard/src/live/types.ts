export type OperationStatus = 'PENDING' | 'PROCESSING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';
export type BatchItemStatus =
  | 'PENDING'
  | 'RUNNING'
  | 'COMPLETED'
  | 'FAILED'
  | 'SKIPPED'
  | 'CANCELLED'
  | 'ROLLED_BACK';

export interface Progress {
  current: number;
  total: number | null;
  fraction: number | null;
  message: string | null;
}

export interface OperationEvent {
  sequence: number;
  kind: string;
  status: OperationStatus;
  message: string | null;
  createdAt: string;
  progress: Progress;
}

export interface BatchItem {
  id: string;
  status: BatchItemStatus;
  operationId: string | null;
  reason: string | null;
  rootCause: string | null;
  error: { message: string } | null;
}

export interface BatchOutcome {
  status: string;
  counts: Record<
    'pending' | 'running' | 'completed' | 'failed' | 'skipped' | 'cancelled' | 'rolledBack',
    number
  >;
  items: BatchItem[];
}

export interface Operation {
  id: string;
  type: string;
  status: OperationStatus;
  attempt: number;
  sequence: number;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  batchItemId: string | null;
  batch: { id: string } | null;
  collection: { id: string; name: string } | null;
  progress: Progress;
  error: { code: string; message: string } | null;
  result?: unknown;
  input?: unknown;
  batchOutcome?: BatchOutcome | null;
}

export interface OperationFilter {
  status?: OperationStatus[];
  type?: string;
  collectionId?: string;
  batchId?: string;
  createdAfter?: string;
  createdBefore?: string;
}

export const TERMINAL: ReadonlySet<OperationStatus> = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
