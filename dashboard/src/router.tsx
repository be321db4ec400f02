import { type MouseEvent, type ReactNode, useEffect, useState } from 'react';

/** The app lives under /ui (Vite's base); routes are the rest of the path. */
const BASE = import.meta.env.BASE_URL.replace(/\/$/, '');

const current = () => location.pathname.slice(BASE.length) || '/';

export function navigate(to: string): void {
  history.pushState(null, '', BASE + to);
  dispatchEvent(new PopStateEvent('popstate'));
}

export function useRoute(): string {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    addEventListener('popstate', update);
    return () => removeEventListener('popstate', update);
  }, []);
  return route;
}

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  const onClick = (event: MouseEvent) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(to);
  };
  return (
    <a href={BASE + to} onClick={onClick} className={className}>
      {children}
    </a>
  );
}
