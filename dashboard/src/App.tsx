import { type FormEvent, type ReactElement, useEffect, useMemo, useState } from 'react';
import { createClient, OpsgraphProvider } from './ops.ts';
import { BatchPage } from './pages/BatchPage.tsx';
import { CollectionsPage } from './pages/CollectionsPage.tsx';
import { OperationPage } from './pages/OperationPage.tsx';
import { OperationsPage } from './pages/OperationsPage.tsx';
import { Link, useRoute } from './router.tsx';

const TOKEN_KEY = 'opsgraph.token';
const GRAPHQL_URL = new URL('/graphql', location.href).href;

interface Viewer {
  name: string;
}

export function App() {
  const [token, setToken] = useState(() => localStorage.getItem(TOKEN_KEY));
  const [viewer, setViewer] = useState<Viewer | null>(null);
  const client = useMemo(() => (token ? createClient({ url: GRAPHQL_URL, token }) : null), [token]);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => () => client?.close(), [client]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: signOut only sets state
  useEffect(() => {
    if (!client) return;
    client.request<{ viewer: Viewer | null }>('{ viewer { name } }').then(
      ({ viewer: found }) => {
        if (found) setViewer(found);
        else signOut('That token does not identify a user.');
      },
      (error: Error) => signOut(error.message),
    );
  }, [client]);

  function signIn(value: string) {
    localStorage.setItem(TOKEN_KEY, value);
    setProblem(null);
    setToken(value);
  }
  function signOut(message: string | null = null) {
    localStorage.removeItem(TOKEN_KEY);
    setViewer(null);
    setToken(null);
    setProblem(message);
  }

  if (!client || !viewer) return <SignIn onToken={signIn} problem={problem} checking={Boolean(client)} />;
  return (
    <OpsgraphProvider client={client}>
      <Shell viewer={viewer} onSignOut={() => signOut()} />
    </OpsgraphProvider>
  );
}

function SignIn({
  onToken,
  problem,
  checking,
}: {
  onToken(token: string): void;
  problem: string | null;
  checking: boolean;
}) {
  const [value, setValue] = useState('');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const token = value.trim().replace(/^Bearer\s+/i, '');
    if (token) onToken(token);
  };
  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={submit}>
        <div className="brand brand-large">
          <Logo /> opsgraph
        </div>
        <p className="muted">
          Paste a token to sign in. <code>npm run token -- &lt;your name&gt;</code> prints one.
        </p>
        <label htmlFor="token">Token</label>
        <textarea
          id="token"
          name="token"
          rows={4}
          value={value}
          onChange={(event) => setValue(event.target.value)}
          placeholder="eyJhbGciOi…"
          spellCheck={false}
          autoComplete="off"
        />
        {problem && <p className="error-text">{problem}</p>}
        <button type="submit" className="primary" disabled={checking}>
          {checking ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function Logo() {
  return (
    <svg width="22" height="22" viewBox="0 0 24 24" aria-hidden="true">
      <circle cx="5" cy="12" r="3" fill="currentColor" />
      <circle cx="19" cy="5" r="3" fill="currentColor" opacity=".7" />
      <circle cx="19" cy="19" r="3" fill="currentColor" opacity=".7" />
      <path d="M7.5 10.5 16.5 6M7.5 13.5l9 4.5" stroke="currentColor" strokeWidth="1.8" fill="none" />
    </svg>
  );
}

function Shell({ viewer, onSignOut }: { viewer: Viewer; onSignOut(): void }) {
  const route = useRoute();
  const [, section, id] = route.split('/');
  let page: ReactElement;
  if (section === 'operations' && id) page = <OperationPage key={id} id={decodeURIComponent(id)} />;
  else if (section === 'batches' && id) page = <BatchPage key={id} id={decodeURIComponent(id)} />;
  else if (section === 'collections') page = <CollectionsPage />;
  else page = <OperationsPage />;
  const active = section === 'collections' ? 'collections' : 'operations';
  return (
    <div className="shell">
      <header className="topbar">
        <Link to="/" className="brand">
          <Logo /> opsgraph
        </Link>
        <nav>
          <Link to="/" className={active === 'operations' ? 'active' : ''}>
            Operations
          </Link>
          <Link to="/collections" className={active === 'collections' ? 'active' : ''}>
            Collections
          </Link>
          <a href="/graphql" target="_blank" rel="noreferrer">
            GraphiQL
          </a>
        </nav>
        <div className="user">
          <span className="user-name">{viewer.name}</span>
          <button type="button" className="ghost" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main className="content">{page}</main>
    </div>
  );
}
