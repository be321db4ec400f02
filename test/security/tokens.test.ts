import { decodeJwt, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { createViewerResolver, InvalidTokenError, issueToken } from '../../src/auth/viewer.ts';
import { createDb } from '../../src/db/prisma.ts';
import { runToExit, startTestApp, TEST_JWT_SECRET } from '../support/app.ts';
import { useServer } from '../support/fixtures.ts';
import { post, runWs, wsClient } from './limits-client.ts';

const server = useServer();
const VIEWER = { query: '{ viewer { name } }' };

const userId = async (name: string) =>
  (await server.db.query<{ id: string }>('SELECT id FROM "User" WHERE name = $1', [name]))[0]!.id;
const isAdmin = async (name: string) =>
  (await server.db.query<{ isAdmin: boolean }>('SELECT "isAdmin" FROM "User" WHERE name = $1', [name]))[0]
    ?.isAdmin;

describe('token expiry', () => {
  it('refuses a token without exp over HTTP (401) and WebSocket (4401)', async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(await userId('alice'))
      .setIssuedAt()
      .sign(new TextEncoder().encode(TEST_JWT_SECRET));
    const response = await post(server.app.url, VIEWER, token);
    expect(response.status).toBe(401);
    expect(response.json?.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    let code: number | undefined;
    const client = wsClient(server.app.url, token, (event) => {
      code = (event as CloseEvent).code;
    });
    await runWs(client, '{ viewer { name } }');
    expect(code).toBe(4401);
    await client.dispose();
  });

  it('stops a token the second its exp passes, although its viewer was cached', async () => {
    const db = createDb(server.db.url, { poolSize: 1 });
    const token = await issueToken(db, TEST_JWT_SECRET, 'alice', undefined, { expiresIn: '2s' });
    await db.$disconnect();
    const expiresAt = (decodeJwt(token).exp as number) * 1000;
    // Cached now (the cache keeps viewers 5 s, longer than this token lives).
    expect((await post(server.app.url, VIEWER, token)).json?.data).toEqual({ viewer: { name: 'alice' } });
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now())));
    const after = await post(server.app.url, VIEWER, token);
    expect(Date.now() - expiresAt).toBeLessThan(1000);
    expect(after.status).toBe(401);
    expect(after.json?.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('viewers known without a lookup', () => {
  it('are only the anonymous one and fresh remembered ones: never stale, never invalid tokens', async () => {
    const db = createDb(server.db.url, { poolSize: 1 });
    try {
      const viewers = createViewerResolver(db, TEST_JWT_SECRET, 300);
      const token = `Bearer ${await issueToken(db, TEST_JWT_SECRET, 'alice')}`;
      expect(viewers.known(null)).toBeNull();
      expect(viewers.known('')).toBeNull();
      // Not looked up yet: the caller must wait for the resolver.
      expect(viewers.known(token)).toBeUndefined();
      const viewer = await viewers(token);
      expect(viewer?.name).toBe('alice');
      expect(viewers.known(token)).toEqual(viewer);
      // Past the cache's time, the token is checked (and its user looked up) again.
      await new Promise((resolve) => setTimeout(resolve, 350));
      expect(viewers.known(token)).toBeUndefined();
      await expect(viewers('Bearer not-a-token')).rejects.toBeInstanceOf(InvalidTokenError);
      expect(viewers.known('Bearer not-a-token')).toBeUndefined();
    } finally {
      await db.$disconnect();
    }
  });
});

describe('npm run token', () => {
  const run = (...args: string[]) =>
    runToExit(process.execPath, ['--import', 'tsx', 'scripts/token.ts', ...args], {
      ...process.env,
      DATABASE_URL: server.db.url,
      JWT_SECRET: TEST_JWT_SECRET,
    });

  it('never silently changes an existing user’s admin flag', async () => {
    // Existing admin, no flag: stays admin; existing user, no flag: stays a user.
    expect((await run('root')).code).toBe(0);
    expect(await isAdmin('root')).toBe(true);
    const plain = await run('alice');
    expect(plain.code).toBe(0);
    expect(await isAdmin('alice')).toBe(false);
    // The printed token works and expires (30 days).
    const token = plain.stdout.trim();
    expect((await post(server.app.url, VIEWER, token)).json?.data).toEqual({ viewer: { name: 'alice' } });
    expect((decodeJwt(token).exp as number) * 1000 - Date.now()).toBeGreaterThan(29 * 86_400_000);
    // --admin on an existing non-admin is refused, with the flag that would do it.
    const refused = await run('alice', '--admin');
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('use --set-admin');
    expect(await isAdmin('alice')).toBe(false);
    // Explicit flags change it, and say so.
    const promoted = await run('alice', '--set-admin');
    expect(promoted.code).toBe(0);
    expect(promoted.stderr).toContain('now an admin');
    expect(await isAdmin('alice')).toBe(true);
    expect((await run('alice', '--revoke-admin')).code).toBe(0);
    expect(await isAdmin('alice')).toBe(false);
    // A new user with --admin is created an admin.
    expect((await run('carol', '--admin', '--expires-in', '1h')).code).toBe(0);
    expect(await isAdmin('carol')).toBe(true);
  }, 60_000);
});

describe('browsers', () => {
  const preflight = (url: string, origin: string) =>
    fetch(url, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization',
      },
    });

  it('allows CORS for its own origin and localhost in development, not for others', async () => {
    const own = new URL(server.app.url).origin;
    for (const origin of [own, 'http://localhost:5173']) {
      const response = await preflight(server.app.url, origin);
      expect(response.headers.get('access-control-allow-origin')).toBe(origin);
    }
    for (const origin of ['https://evil.example', 'http://localhost.evil.example:80']) {
      const response = await preflight(server.app.url, origin);
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
      const actual = await post(server.app.url, VIEWER, server.tokens.alice, { origin });
      expect(actual.headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  describe('with configured origins in production', () => {
    let app: App & { url: string };
    beforeAll(async () => {
      app = await startTestApp(server.db.url, {
        corsOrigins: ['https://ops.example.com'],
        corsAllowLocalhost: false,
      });
    });
    afterAll(async () => {
      await app?.close();
    });
    it('allows only those origins', async () => {
      expect(
        (await preflight(app.url, 'https://ops.example.com')).headers.get('access-control-allow-origin'),
      ).toBe('https://ops.example.com');
      expect(
        (await preflight(app.url, 'http://localhost:5173')).headers.get('access-control-allow-origin'),
      ).toBeNull();
    });
  });

  it('refuses requests a browser sends cross-site without preflight unless they carry the CSRF header', async () => {
    const get = `${server.app.url}?query=${encodeURIComponent('{ __typename }')}`;
    expect((await fetch(get, { headers: { accept: 'application/json' } })).status).toBe(403);
    const withHeader = await fetch(get, {
      headers: { accept: 'application/json', 'x-graphql-yoga-csrf': '1' },
    });
    expect(withHeader.status).toBe(200);
    // GraphiQL subscribes with GET + Accept: text/event-stream + its Headers tab's Authorization.
    const withToken = await fetch(get, {
      headers: { accept: 'application/json', authorization: `Bearer ${server.tokens.alice}` },
    });
    expect(withToken.status).toBe(200);
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      const response = await fetch(server.app.url, {
        method: 'POST',
        headers: { 'content-type': type },
        body: type === 'text/plain' ? JSON.stringify(VIEWER) : 'query=%7B__typename%7D',
      });
      expect({ type, status: response.status }).toEqual({ type, status: 403 });
    }
    // JSON POST (clients, GraphiQL), SSE with Accept: text/event-stream, and the GraphiQL page work.
    expect((await post(server.app.url, VIEWER, server.tokens.alice)).json?.data).toEqual({
      viewer: { name: 'alice' },
    });
    const sse = await fetch(server.app.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${server.tokens.alice}`,
      },
      body: JSON.stringify(VIEWER),
    });
    expect(sse.status).toBe(200);
    expect(await sse.text()).toContain('"viewer":{"name":"alice"}');
    const page = await fetch(server.app.url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
  });
});
