import { useEffect, useState } from 'react';
import { TERMINAL, useCancelOperation, useOperation, useOpsgraphClient } from '../ops.ts';
import { Link } from '../router.tsx';
import { Json, ProgressBar, StatusBadge, shortId, time } from '../ui.tsx';

interface Links {
  batch: { id: string } | null;
  collection: { id: string; name: string } | null;
}

/** What the operation belongs to (not part of the live stream's fields; it never changes). */
function useLinks(id: string): Links | null {
  const client = useOpsgraphClient();
  const [links, setLinks] = useState<Links | null>(null);
  useEffect(() => {
    client
      .request<{ operation: Links | null }>(
        'query Links($id: ID!) { operation(id: $id) { batch { id } collection { id name } } }',
        { id },
      )
      .then(
        (data) => setLinks(data.operation),
        () => setLinks(null),
      );
  }, [client, id]);
  return links;
}

export function OperationPage({ id }: { id: string }) {
  const { operation: op, events, error, connected } = useOperation(id);
  const links = useLinks(id);
  const { cancel, loading } = useCancelOperation();
  if (error && !op) return <div className="card empty error-text">{error.message}</div>;
  if (!op) return <div className="card empty">Loading…</div>;
  return (
    <>
      <div className="crumbs">
        <Link to="/">Operations</Link> / <span className="mono">{shortId(op.id)}</span>
      </div>
      <div className="page-head">
        <h1>{op.type}</h1>
        <StatusBadge status={op.status} />
        <span className={`live ${connected && !TERMINAL.has(op.status) ? 'on' : ''}`}>
          {TERMINAL.has(op.status) ? 'Finished' : connected ? 'Live' : 'Connecting…'}
        </span>
        <div className="spacer" />
        {!TERMINAL.has(op.status) && (
          <button type="button" className="danger" disabled={loading} onClick={() => cancel(op.id)}>
            Cancel
          </button>
        )}
      </div>
      <section className="card detail">
        <ProgressBar progress={op.progress} status={op.status} />
        {op.progress.message && <p className="muted">{op.progress.message}</p>}
        <dl className="facts">
          <div>
            <dt>Created</dt>
            <dd>{time(op.createdAt)}</dd>
          </div>
          <div>
            <dt>Started</dt>
            <dd>{time(op.startedAt)}</dd>
          </div>
          <div>
            <dt>Finished</dt>
            <dd>{time(op.completedAt)}</dd>
          </div>
          <div>
            <dt>Attempt</dt>
            <dd>{op.attempt}</dd>
          </div>
          {links?.batch && (
            <div>
              <dt>Batch</dt>
              <dd>
                <Link to={`/batches/${encodeURIComponent(links.batch.id)}`}>
                  {op.batchItemId ?? shortId(links.batch.id)}
                </Link>
              </dd>
            </div>
          )}
          {links?.collection && (
            <div>
              <dt>Collection</dt>
              <dd>{links.collection.name}</dd>
            </div>
          )}
        </dl>
      </section>
      <div className="two-col">
        <section className="card">
          <h2>Timeline</h2>
          <ol className="timeline">
            {events.map((event) => (
              <li key={event.sequence} className={`ev ev-${event.status.toLowerCase()}`}>
                <span className="ev-time mono">{time(event.createdAt)}</span>
                <span className="ev-kind">{event.kind.toLowerCase().replace('_', ' ')}</span>
                <span className="ev-message muted">{event.message ?? ''}</span>
              </li>
            ))}
          </ol>
        </section>
        <section className="card">
          {op.error ? (
            <>
              <h2>Error</h2>
              <p className="error-box">
                <strong>{op.error.code}</strong> {op.error.message}
              </p>
            </>
          ) : (
            <>
              <h2>Result</h2>
              {op.status === 'COMPLETED' ? (
                <Json value={op.result} />
              ) : (
                <p className="muted">Not finished yet.</p>
              )}
            </>
          )}
          <h2>Input</h2>
          <Json value={op.input} />
        </section>
      </div>
    </>
  );
}
