import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { RequestListener, ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

/** Where the dashboard is served; `/` redirects here. */
export const DASHBOARD_PATH = '/ui';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** The dashboard only talks to its own origin (HTTP, WebSocket, SSE); no frames, no plugins. */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; " +
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>opsgraph</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5">
<h1>opsgraph</h1><p>The dashboard is not built in this installation. Build it with
<code>npm install &amp;&amp; npm run build:dashboard</code> (it needs the development dependencies), then reload.</p>
<p>GraphiQL is at <a href="/graphql">/graphql</a>.</p></body></html>`;

/**
 * Serves the built dashboard (`dir`, Vite's output) under {@link DASHBOARD_PATH} and passes every
 * other request to `next`. `GET /` redirects to the dashboard. Paths are decoded and normalised and
 * must stay inside `dir` (no `..`, no NUL, no dot files); unknown paths without an extension get
 * `index.html` (client-side routes); Vite's hashed files under `assets/` are cached for a year,
 * `index.html` is revalidated on every load. When `dir` holds no `index.html`, a short page says how
 * to build it.
 */
export function withDashboard(dir: string, next: RequestListener): RequestListener {
  const root = normalize(dir);
  return (req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0] as string;
    if (path !== '/' && path !== DASHBOARD_PATH && !path.startsWith(`${DASHBOARD_PATH}/`))
      return next(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      return res.end('use GET');
    }
    if (path === '/' || path === DASHBOARD_PATH) {
      res.writeHead(302, { location: `${DASHBOARD_PATH}/`, 'cache-control': 'no-store' });
      return res.end();
    }
    serve(root, path.slice(DASHBOARD_PATH.length + 1), req.method === 'HEAD', res).catch(() => {
      if (!res.headersSent) plain(res, 500, 'could not read the file');
      else res.destroy();
    });
  };
}

async function serve(root: string, encoded: string, head: boolean, res: ServerResponse): Promise<void> {
  let relative: string;
  try {
    relative = decodeURIComponent(encoded);
  } catch {
    return plain(res, 400, 'bad path');
  }
  const parts = relative.split('/').filter((part) => part !== '');
  if (
    relative.includes('\0') ||
    relative.includes('\\') ||
    parts.some((part) => part === '..' || part.startsWith('.'))
  ) {
    return plain(res, 400, 'bad path');
  }
  const index = join(root, 'index.html');
  let file = parts.length === 0 ? index : normalize(join(root, ...parts));
  if (file !== root && !file.startsWith(root.endsWith(sep) ? root : root + sep))
    return plain(res, 400, 'bad path');
  let info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) {
    // A client-side route (no extension) gets the app; a missing asset is a 404.
    if (parts.length > 0 && extname(file) !== '') return plain(res, 404, 'not found');
    file = index;
    info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) return html(res, 200, NOT_BUILT);
  }
  const hashed = parts[0] === 'assets';
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
    'last-modified': info.mtime.toUTCString(),
  });
  if (head) return void res.end();
  await new Promise<void>((resolve, reject) => {
    createReadStream(file).on('error', reject).pipe(res).on('finish', resolve).on('error', reject);
  });
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

function html(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(text);
}
