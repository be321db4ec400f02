import type { OperationStatus, Progress } from './ops.ts';

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${status.toLowerCase()}`}>{status.replace('_', ' ')}</span>;
}

export function fractionOf(progress: Progress | null | undefined, status?: OperationStatus): number | null {
  if (status === 'COMPLETED') return 1;
  if (!progress) return null;
  if (progress.fraction != null) return progress.fraction;
  if (progress.total) return Math.min(1, progress.current / progress.total);
  return null;
}

export function ProgressBar({ progress, status }: { progress: Progress | null; status: OperationStatus }) {
  const fraction = fractionOf(progress, status);
  const percent = fraction === null ? null : Math.round(fraction * 100);
  return (
    <div className="progress" data-status={status.toLowerCase()}>
      <div
        className="progress-track"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent ?? undefined}
      >
        <div className="progress-fill" style={{ width: `${percent ?? 0}%` }} />
      </div>
      <span className="progress-label">{percent === null ? '—' : `${percent} %`}</span>
    </div>
  );
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return '—';
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function time(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : '—';
}

export const shortId = (id: string) => {
  try {
    const decoded = atob(id);
    const raw = decoded.slice(decoded.indexOf(':') + 1);
    return raw.length > 8 ? raw.slice(0, 8) : raw;
  } catch {
    return id.slice(0, 8);
  }
};

export function Json({ value }: { value: unknown }) {
  return <pre className="json">{JSON.stringify(value, null, 2)}</pre>;
}
