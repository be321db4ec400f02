import { type FormEvent, useEffect, useMemo, useState } from 'react';
import { RETRY_OPERATION } from '../documents.ts';
import {
  type Operation,
  type OperationFilter,
  type OperationStatus,
  TERMINAL,
  useCancelOperation,
  useOperations,
  useOpsgraphClient,
  useStartOperation,
} from '../ops.ts';
import { Link, navigate } from '../router.tsx';
import { ago, ProgressBar, StatusBadge, shortId } from '../ui.tsx';

const STATUSES: OperationStatus[] = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'];
const WINDOWS: Record<string, number | null> = { any: null, '15m': 15, '1h': 60, '24h': 1440, '7d': 10080 };
const EXAMPLES: Record<string, unknown> = {
  'diagnostics.sleep': { steps: 20, stepMs: 250 },
  'diagnostics.flaky': { steps: 10, stepMs: 200, failAtStep: 5, failAttempts: 1 },
  'diagnostics.echo': { value: 'hello', sleepMs: 1000 },
};

interface Choices {
  types: { name: string; description: string }[];
  collections: { id: string; name: string }[];
}

function useChoices(): Choices {
  const client = useOpsgraphClient();
  const [choices, setChoices] = useState<Choices>({ types: [], collections: [] });
  useEffect(() => {
    client
      .request<{
        operationTypes: Choices['types'];
        collections: { edges: { node: Choices['collections'][number] }[] };
      }>('{ operationTypes { name description } collections(first: 100) { edges { node { id name } } } }')
      .then(
        (data) =>
          setChoices({ types: data.operationTypes, collections: data.collections.edges.map((e) => e.node) }),
        () => undefined,
      );
  }, [client]);
  return choices;
}

export function OperationsPage() {
  const choices = useChoices();
  const [statuses, setStatuses] = useState<OperationStatus[]>([]);
  const [type, setType] = useState('');
  const [collectionId, setCollectionId] = useState('');
  const [batchId, setBatchId] = useState('');
  const [window, setWindow] = useState('any');
  const createdAfter = useMemo(() => {
    const minutes = WINDOWS[window];
    return minutes ? new Date(Date.now() - minutes * 60_000).toISOString() : undefined;
  }, [window]);
  const filter: OperationFilter = {
    ...(statuses.length ? { status: statuses } : {}),
    ...(type ? { type } : {}),
    ...(collectionId ? { collectionId } : {}),
    ...(batchId.trim() ? { batchId: batchId.trim() } : {}),
    ...(createdAfter ? { createdAfter } : {}),
  };
  const { operations, error, loading, connected } = useOperations(filter, { first: 50 });
  const toggle = (status: OperationStatus) =>
    setStatuses((old) => (old.includes(status) ? old.filter((s) => s !== status) : [...old, status]));

  return (
    <>
      <div className="page-head">
        <h1>Operations</h1>
        <span className={`live ${connected ? 'on' : ''}`} title={connected ? 'Live' : 'Connecting'}>
          {connected ? 'Live' : 'Connecting…'}
        </span>
      </div>
      <StartForm types={choices.types} />
      <section className="card filters" aria-label="Filters">
        <fieldset className="chips" aria-label="Status">
          {STATUSES.map((status) => (
            <button
              type="button"
              key={status}
              className={`chip chip-${status.toLowerCase()} ${statuses.includes(status) ? 'on' : ''}`}
              aria-pressed={statuses.includes(status)}
              onClick={() => toggle(status)}
            >
              {status.toLowerCase()}
            </button>
          ))}
        </fieldset>
        <div className="filter-fields">
          <label>
            Type
            <select name="type" value={type} onChange={(e) => setType(e.target.value)}>
              <option value="">All types</option>
              {[...choices.types.map((t) => t.name), 'batch'].map((name) => (
                <option key={name}>{name}</option>
              ))}
            </select>
          </label>
          <label>
            Collection
            <select name="collection" value={collectionId} onChange={(e) => setCollectionId(e.target.value)}>
              <option value="">All collections</option>
              {choices.collections.map((c) => (
                <option key={c.id} value={c.id}>
                  {c.name}
                </option>
              ))}
            </select>
          </label>
          <label>
            Batch
            <input
              name="batch"
              value={batchId}
              onChange={(e) => setBatchId(e.target.value)}
              placeholder="Batch id"
            />
          </label>
          <label>
            Created
            <select name="window" value={window} onChange={(e) => setWindow(e.target.value)}>
              <option value="any">Any time</option>
              <option value="15m">Last 15 minutes</option>
              <option value="1h">Last hour</option>
              <option value="24h">Last 24 hours</option>
              <option value="7d">Last 7 days</option>
            </select>
          </label>
        </div>
      </section>
      {error && <p className="error-text">{error.message}</p>}
      <OperationsTable operations={operations} loading={loading} />
    </>
  );
}

function StartForm({ types }: { types: Choices['types'] }) {
  const { start, loading } = useStartOperation();
  const [type, setType] = useState('diagnostics.sleep');
  const [input, setInput] = useState(JSON.stringify(EXAMPLES['diagnostics.sleep']));
  const [message, setMessage] = useState<string | null>(null);
  const choose = (name: string) => {
    setType(name);
    if (EXAMPLES[name]) setInput(JSON.stringify(EXAMPLES[name]));
  };
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    let parsed: unknown;
    try {
      parsed = JSON.parse(input);
    } catch {
      return setMessage('The input is not valid JSON.');
    }
    try {
      const result = await start({ type, input: parsed });
      setMessage(
        result.__typename === 'StartOperationSuccess' ? null : (result.message ?? result.__typename),
      );
    } catch (failure) {
      setMessage((failure as Error).message);
    }
  };
  return (
    <form className="card start" onSubmit={submit} aria-label="Start an operation">
      <label>
        Type
        <select name="start-type" value={type} onChange={(e) => choose(e.target.value)}>
          {(types.length ? types.map((t) => t.name) : [type]).map((name) => (
            <option key={name}>{name}</option>
          ))}
        </select>
      </label>
      <label className="grow">
        Input (JSON)
        <input
          name="start-input"
          value={input}
          onChange={(e) => setInput(e.target.value)}
          spellCheck={false}
          className="mono"
        />
      </label>
      <button type="submit" className="primary" disabled={loading}>
        {loading ? 'Starting…' : 'Start'}
      </button>
      {message && <p className="error-text full">{message}</p>}
    </form>
  );
}

function OperationsTable({ operations, loading }: { operations: Operation[]; loading: boolean }) {
  if (!operations.length) {
    return <div className="card empty">{loading ? 'Loading…' : 'No operations match these filters.'}</div>;
  }
  return (
    <div className="card table-card">
      <table className="ops">
        <thead>
          <tr>
            <th>Status</th>
            <th>Type</th>
            <th>Id</th>
            <th className="progress-col">Progress</th>
            <th>Created</th>
            <th aria-label="Actions" />
          </tr>
        </thead>
        <tbody>
          {operations.map((op) => (
            <Row key={op.id} op={op} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Row({ op }: { op: Operation }) {
  const { cancel, loading: cancelling } = useCancelOperation();
  const client = useOpsgraphClient();
  const [retrying, setRetrying] = useState(false);
  const href =
    op.type === 'batch'
      ? `/batches/${encodeURIComponent(op.id)}`
      : `/operations/${encodeURIComponent(op.id)}`;
  const retry = async () => {
    setRetrying(true);
    try {
      const data = await client.request<{ retryOperation: { __typename: string; operation?: Operation } }>(
        RETRY_OPERATION,
        { id: op.id },
      );
      const next = data.retryOperation.operation;
      if (next) navigate(`/operations/${encodeURIComponent(next.id)}`);
    } finally {
      setRetrying(false);
    }
  };
  return (
    <tr data-id={op.id} data-status={op.status}>
      <td data-label="Status">
        <StatusBadge status={op.status} />
      </td>
      <td data-label="Type" className="type-cell">
        <Link to={href}>{op.type}</Link>
        {op.batchItemId && <span className="sub">item {op.batchItemId}</span>}
      </td>
      <td data-label="Id" className="mono muted">
        {shortId(op.id)}
      </td>
      <td data-label="Progress" className="progress-col">
        <ProgressBar progress={op.progress} status={op.status} />
      </td>
      <td data-label="Created" className="muted nowrap">
        {ago(op.createdAt)}
      </td>
      <td className="actions">
        {!TERMINAL.has(op.status) && (
          <button type="button" className="danger small" disabled={cancelling} onClick={() => cancel(op.id)}>
            Cancel
          </button>
        )}
        {(op.status === 'FAILED' || op.status === 'CANCELLED') && (
          <button type="button" className="small" disabled={retrying} onClick={retry}>
            Retry
          </button>
        )}
      </td>
    </tr>
  );
}
