import { type BatchItem, TERMINAL, useBatch, useOpsgraphClient } from '../ops.ts';
import { Link, navigate } from '../router.tsx';
import { ProgressBar, StatusBadge, shortId } from '../ui.tsx';

interface Spec {
  items?: { id: string; type: string; dependsOn?: string[] }[];
}

const NODE_W = 150;
const NODE_H = 52;
const GAP_X = 70;
const GAP_Y = 18;

/** Levels by longest path from a root: an item sits one column right of its deepest dependency. */
function layout(spec: Spec) {
  const items = spec.items ?? [];
  const byId = new Map(items.map((item) => [item.id, item]));
  const level = new Map<string, number>();
  const depth = (id: string, seen: Set<string>): number => {
    const known = level.get(id);
    if (known !== undefined) return known;
    if (seen.has(id)) return 0;
    seen.add(id);
    const deps = byId.get(id)?.dependsOn ?? [];
    const value = deps.length ? 1 + Math.max(...deps.map((d) => depth(d, seen))) : 0;
    level.set(id, value);
    return value;
  };
  const columns: string[][] = [];
  for (const item of items) {
    const l = depth(item.id, new Set());
    const column = columns[l] ?? [];
    column.push(item.id);
    columns[l] = column;
  }
  const position = new Map<string, { x: number; y: number }>();
  for (const [x, column] of columns.entries()) {
    for (const [y, id] of (column ?? []).entries()) {
      position.set(id, { x: 16 + x * (NODE_W + GAP_X), y: 16 + y * (NODE_H + GAP_Y) });
    }
  }
  const width = 32 + columns.length * NODE_W + Math.max(0, columns.length - 1) * GAP_X;
  const height = 32 + Math.max(1, ...columns.map((c) => c.length)) * (NODE_H + GAP_Y) - GAP_Y;
  return { items, position, width, height };
}

export function BatchPage({ id }: { id: string }) {
  const { operation: batch, error, connected } = useBatch(id);
  const client = useOpsgraphClient();
  if (error && !batch) return <div className="card empty error-text">{error.message}</div>;
  if (!batch) return <div className="card empty">Loading…</div>;
  const spec = (batch.input ?? {}) as Spec;
  const { items, position, width, height } = layout(spec);
  const outcome = batch.batchOutcome;
  const state = new Map<string, BatchItem>((outcome?.items ?? []).map((item) => [item.id, item]));
  const finished = TERMINAL.has(batch.status) || (outcome != null && outcome.status !== 'RUNNING');
  const cancel = () =>
    client.request('mutation CancelBatch($id: ID!) { cancelBatch(input: { id: $id }) { __typename } }', {
      id: batch.id,
    });

  return (
    <>
      <div className="crumbs">
        <Link to="/">Operations</Link> / batch <span className="mono">{shortId(batch.id)}</span>
      </div>
      <div className="page-head">
        <h1>Batch</h1>
        <StatusBadge status={outcome?.status ?? batch.status} />
        <span className={`live ${connected && !finished ? 'on' : ''}`}>
          {finished ? 'Finished' : connected ? 'Live' : 'Connecting…'}
        </span>
        <div className="spacer" />
        {!finished && (
          <button type="button" className="danger" onClick={cancel}>
            Cancel batch
          </button>
        )}
      </div>
      <section className="card detail">
        <ProgressBar progress={batch.progress} status={batch.status} />
        {outcome && (
          <ul className="counts">
            {Object.entries(outcome.counts)
              .filter(([, n]) => n > 0)
              .map(([name, n]) => (
                <li key={name} className={`count count-${name.toLowerCase()}`}>
                  <strong>{n}</strong> {name.replace('rolledBack', 'rolled back')}
                </li>
              ))}
          </ul>
        )}
      </section>
      <section className="card dag-card">
        <h2>Items</h2>
        <div className="dag-scroll">
          <svg className="dag" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img">
            <title>Batch items and their dependencies</title>
            {items.flatMap((item) =>
              (item.dependsOn ?? []).map((dep) => {
                const from = position.get(dep);
                const to = position.get(item.id);
                if (!from || !to) return null;
                const x1 = from.x + NODE_W;
                const y1 = from.y + NODE_H / 2;
                const x2 = to.x;
                const y2 = to.y + NODE_H / 2;
                const mid = (x1 + x2) / 2;
                return (
                  <path
                    key={`${dep}-${item.id}`}
                    className="edge"
                    d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 4},${y2}`}
                    markerEnd="url(#arrow)"
                  />
                );
              }),
            )}
            <defs>
              <marker
                id="arrow"
                viewBox="0 0 8 8"
                refX="7"
                refY="4"
                markerWidth="7"
                markerHeight="7"
                orient="auto"
              >
                <path d="M0,0 L8,4 L0,8 z" className="arrow" />
              </marker>
            </defs>
            {items.map((item) => {
              const at = position.get(item.id);
              const s = state.get(item.id);
              const status = (s?.status ?? 'PENDING').toLowerCase();
              if (!at) return null;
              const open = () =>
                s?.operationId && navigate(`/operations/${encodeURIComponent(s.operationId)}`);
              return (
                // biome-ignore lint/a11y/useSemanticElements: an SVG group cannot be a <button>
                <g
                  key={item.id}
                  className={`node node-${status}`}
                  data-item={item.id}
                  data-status={s?.status ?? 'PENDING'}
                  transform={`translate(${at.x},${at.y})`}
                  onClick={open}
                  onKeyDown={(e) => e.key === 'Enter' && open()}
                  role="button"
                  tabIndex={0}
                >
                  <title>
                    {`${item.id} (${item.type}): ${s?.status ?? 'PENDING'}${s?.rootCause ? ` — skipped because ${s.rootCause} failed` : ''}${s?.error ? ` — ${s.error.message}` : ''}`}
                  </title>
                  <rect width={NODE_W} height={NODE_H} rx={10} />
                  <text x={12} y={21} className="node-id">
                    {item.id.length > 18 ? `${item.id.slice(0, 17)}…` : item.id}
                  </text>
                  <text x={12} y={39} className="node-sub">
                    {s?.rootCause ? `root cause: ${s.rootCause}` : status.replace('_', ' ')}
                  </text>
                </g>
              );
            })}
          </svg>
        </div>
        <ul className="legend">
          {['pending', 'running', 'completed', 'failed', 'skipped', 'cancelled', 'rolled_back'].map((s) => (
            <li key={s}>
              <span className={`swatch node-${s}`} /> {s.replace('_', ' ')}
            </li>
          ))}
        </ul>
      </section>
    </>
  );
}
