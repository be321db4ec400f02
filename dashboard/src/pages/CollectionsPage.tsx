import { type FormEvent, useEffect, useState } from 'react';
import { COLLECTIONS, SEARCH } from '../documents.ts';
import { useOpsgraphClient } from '../ops.ts';
import { ago, StatusBadge } from '../ui.tsx';

interface Collection {
  id: string;
  name: string;
  status: string;
  documentCount: number;
  chunkCount: number;
  language: string;
  isPublic: boolean;
  updatedAt: string;
  owner: { name: string };
}

interface Hit {
  score: number;
  snippet: string;
  document: { id: string; title: string; source: string };
}

/** Search snippets mark matches with <mark>…</mark>; everything else is shown as text. */
function Snippet({ html }: { html: string }) {
  const parts = html.split(/<mark>|<\/mark>/);
  return (
    <p className="snippet">
      {parts.map((part, index) =>
        // biome-ignore lint/suspicious/noArrayIndexKey: the parts never move
        index % 2 ? <mark key={index}>{part}</mark> : <span key={index}>{part}</span>,
      )}
    </p>
  );
}

export function CollectionsPage() {
  const client = useOpsgraphClient();
  const [collections, setCollections] = useState<Collection[] | null>(null);
  const [selected, setSelected] = useState('');
  const [query, setQuery] = useState('');
  const [hits, setHits] = useState<Hit[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [searching, setSearching] = useState(false);

  useEffect(() => {
    const load = () =>
      client.request<{ collections: { edges: { node: Collection }[] } }>(COLLECTIONS, { first: 100 }).then(
        (data) => setCollections(data.collections.edges.map((e) => e.node)),
        (error: Error) => setProblem(error.message),
      );
    load();
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
  }, [client]);
  useEffect(() => {
    if (!selected && collections?.[0]) setSelected(collections[0].id);
  }, [collections, selected]);

  const search = async (event: FormEvent) => {
    event.preventDefault();
    if (!selected || !query.trim()) return;
    setSearching(true);
    setProblem(null);
    try {
      const data = await client.request<{ search: { __typename: string; message?: string; hits?: Hit[] } }>(
        SEARCH,
        {
          collectionId: selected,
          query,
          first: 20,
        },
      );
      if (data.search.hits) setHits(data.search.hits);
      else {
        setHits(null);
        setProblem(data.search.message ?? data.search.__typename);
      }
    } catch (error) {
      setProblem((error as Error).message);
    } finally {
      setSearching(false);
    }
  };

  return (
    <>
      <div className="page-head">
        <h1>Collections</h1>
      </div>
      <form className="card search" onSubmit={search}>
        <label>
          Collection
          <select name="collection" value={selected} onChange={(e) => setSelected(e.target.value)}>
            {(collections ?? []).map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
        <label className="grow">
          Search
          <input
            name="q"
            type="search"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            placeholder='words, "a phrase", or, -excluded'
          />
        </label>
        <button type="submit" className="primary" disabled={searching || !selected}>
          {searching ? 'Searching…' : 'Search'}
        </button>
      </form>
      {problem && <p className="error-text">{problem}</p>}
      {hits && (
        <section className="card hits" aria-label="Search results">
          <h2>
            {hits.length} {hits.length === 1 ? 'hit' : 'hits'}
          </h2>
          {hits.length === 0 && <p className="muted">Nothing matches.</p>}
          <ol>
            {hits.map((hit) => (
              <li key={hit.document.id} className="hit">
                <div className="hit-title">
                  <strong>{hit.document.title || hit.document.source}</strong>
                  <span className="muted mono">{hit.score.toFixed(3)}</span>
                </div>
                <div className="muted sub">{hit.document.source}</div>
                <Snippet html={hit.snippet} />
              </li>
            ))}
          </ol>
        </section>
      )}
      <div className="card table-card">
        {collections === null ? (
          <div className="empty">Loading…</div>
        ) : collections.length === 0 ? (
          <div className="empty">No collections yet. Start a collection.create operation.</div>
        ) : (
          <table className="ops collections">
            <thead>
              <tr>
                <th>Name</th>
                <th>Status</th>
                <th className="num">Documents</th>
                <th className="num">Chunks</th>
                <th>Owner</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {collections.map((c) => (
                <tr key={c.id} data-collection={c.name}>
                  <td data-label="Name">
                    <button type="button" className="linklike" onClick={() => setSelected(c.id)}>
                      {c.name}
                    </button>
                    {c.isPublic && <span className="tag">public</span>}
                  </td>
                  <td data-label="Status">
                    <StatusBadge status={c.status} />
                  </td>
                  <td data-label="Documents" className="num documents">
                    {c.documentCount.toLocaleString()}
                  </td>
                  <td data-label="Chunks" className="num">
                    {c.chunkCount.toLocaleString()}
                  </td>
                  <td data-label="Owner">{c.owner.name}</td>
                  <td data-label="Updated" className="muted nowrap">
                    {ago(c.updatedAt)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </>
  );
}
