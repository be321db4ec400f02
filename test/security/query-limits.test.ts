import { request } from 'node:http';
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer, uniquePrefix } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { useServer } from '../support/fixtures.ts';
import { REDIS_URL } from '../support/services.ts';
import { post, postOnce, rssOf, runWs, wsClient } from './limits-client.ts';

const server = useServer();
const url = () => server.app.url;

/** Operations stored so far: a refused request must not add one. */
const stored = async () =>
  Number((await server.db.query<{ n: string }>('SELECT count(*) AS n FROM "Operation"'))[0]!.n);

const START = `startOperation(input: { type: "diagnostics.echo", input: { value: 1 } }) { __typename }`;
const deepDocuments = (levels: number, leaf = 'title') => {
  let selection = leaf;
  for (let level = 0; level < levels; level++) {
    selection = `documents(first: 100) { edges { node { ${level === 0 ? selection : `collection { ${selection} }`} } } }`;
  }
  return selection;
};

/** Over-limit mutations that would store an operation if anything ran, by the code they must get. */
const OVER: Record<string, { query: string; limit: number; status: number }> = {
  QUERY_TOO_LARGE: {
    query: `mutation { ${START} } # ${'x'.repeat(3 * 1024 * 1024)}`,
    limit: 65_536,
    status: 413,
  },
  TOO_MANY_TOKENS: {
    query: `mutation { ${START} ${Array.from({ length: 1200 }, () => '__typename').join(' ')} }`,
    limit: 1000,
    status: 400,
  },
  QUERY_TOO_DEEP: {
    query: `mutation { startOperation(input: { type: "diagnostics.echo", input: {} }) { ... on StartOperationSuccess { operation { collection { ${deepDocuments(4)} } } } } }`,
    limit: 15,
    status: 400,
  },
  TOO_MANY_ALIASES: {
    query: `mutation { ${Array.from({ length: 51 }, (_, i) => `a${i}: startOperation(input: { type: "diagnostics.echo", input: 1 }) { __typename }`).join(' ')} }`,
    limit: 50,
    status: 400,
  },
  TOO_MANY_DIRECTIVES: {
    query: `mutation { ${START.replace('__typename', Array.from({ length: 51 }, (_, i) => `t${i}: __typename @include(if: true)`).join(' '))} }`,
    limit: 50,
    status: 400,
  },
  TOO_MANY_DUPLICATE_FIELDS: {
    // One field repeated: graphql-js's overlap check is quadratic in the copies, so it never runs.
    query: `mutation { ${Array.from({ length: 11 }, () => 'startOperation(input: { type: "diagnostics.echo", input: 1 }) { __typename }').join(' ')} }`,
    limit: 10,
    status: 400,
  },
  QUERY_TOO_COMPLEX: {
    // Two nested documents(first: 100) under the depth limit: 100 × 100 documents × 6 fields.
    query: `mutation { startOperation(input: { type: "diagnostics.echo", input: {} }) { ... on StartOperationSuccess { operation { collection { ${deepDocuments(2, 'id title content source externalId metadata')} } } } } }`,
    limit: 50_000,
    status: 400,
  },
};

describe('query limits over HTTP', () => {
  for (const [code, { query, limit, status }] of Object.entries(OVER)) {
    it(`refuses ${code} with its limit and measured value, before anything runs`, async () => {
      const before = await stored();
      const response = await post(url(), { query }, server.tokens.alice);
      expect(response.status).toBe(status);
      const error = response.json?.errors?.[0];
      expect(error?.extensions).toMatchObject({ code, limit });
      expect(error?.extensions?.measured).toBeGreaterThan(limit);
      expect(response.json?.data ?? null).toBeNull();
      expect(await stored()).toBe(before);
    });
  }

  it('refuses the issue’s 3-deep documents(first: 100) query and 10,000 aliases', async () => {
    const nested = await post(
      url(),
      { query: `{ collections(first: 100) { edges { node { ${deepDocuments(3)} } } } }` },
      server.tokens.alice,
    );
    expect(nested.json?.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 50_000 });
    expect(nested.json?.errors?.[0]?.extensions?.measured).toBeGreaterThan(1_000_000);
    const aliases = await post(
      url(),
      { query: `{ ${Array.from({ length: 10_000 }, (_, i) => `a${i}: viewer { name }`).join(' ')} }` },
      server.tokens.alice,
    );
    // 10,000 aliases take ~190 KB of text: refused before parsing (and would be 40,000 tokens).
    expect(aliases.status).toBe(413);
    expect(aliases.json?.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_LARGE', limit: 65_536 });
  });

  it('answers GraphiQL’s introspection query and a dashboard-sized query', async () => {
    const introspection = await post(
      url(),
      {
        query: getIntrospectionQuery({
          descriptions: true,
          specifiedByUrl: true,
          directiveIsRepeatable: true,
          schemaDescription: true,
          inputValueDeprecation: true,
          oneOf: true,
        }),
      },
      server.tokens.alice,
    );
    expect(introspection.json?.errors).toBeUndefined();
    expect(
      (introspection.json?.data as { __schema: { types: unknown[] } } | undefined)?.__schema.types.length,
    ).toBeGreaterThan(20);
    const dashboard = await post(
      url(),
      {
        query: `{ viewer { name } operations(first: 100) { edges { node { id type status progress { fraction }
          events(first: 100) { edges { node { sequence kind status } } } collection { name } } } }
          collections(first: 20) { edges { node { name documents(first: 20) { edges { node { title } } } } } } }`,
      },
      server.tokens.alice,
    );
    expect(dashboard.json?.errors).toBeUndefined();
  });

  it('refuses a body above the request limit on its Content-Length and when streamed without one', async () => {
    const body = JSON.stringify({
      query: '{ viewer { name } }',
      variables: { pad: 'x'.repeat(5 * 1024 * 1024) },
    });
    const declared = await post(url(), body, server.tokens.alice);
    expect(declared.status).toBe(413);
    expect(declared.json?.errors?.[0]?.extensions).toMatchObject({
      code: 'REQUEST_TOO_LARGE',
      limit: 4 * 1024 * 1024,
    });
    expect(declared.json?.errors?.[0]?.extensions?.measured).toBe(Buffer.byteLength(body));
    // Chunked: no Content-Length, so the bytes are counted as they arrive.
    const streamed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        url(),
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${server.tokens.alice}` },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk) => {
            text += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      for (let offset = 0; offset < body.length; offset += 64 * 1024)
        req.write(body.slice(offset, offset + 64 * 1024));
      req.end();
    });
    expect(streamed.status).toBe(413);
    expect(JSON.parse(streamed.body).errors[0].extensions).toMatchObject({ code: 'REQUEST_TOO_LARGE' });
    expect((await post(url(), { query: '{ viewer { name } }' }, server.tokens.alice)).json?.data).toEqual({
      viewer: { name: 'alice' },
    });
  });
});

describe('query limits over SSE', () => {
  for (const [code, { query, limit, status }] of Object.entries(OVER)) {
    it(`refuses ${code} on an event-stream request with its status and error`, async () => {
      const before = await stored();
      const response = await fetch(url(), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          authorization: `Bearer ${server.tokens.alice}`,
        },
        body: JSON.stringify({ query }),
      });
      expect(response.status).toBe(status);
      const body = await response.text();
      const payload = /data: (.*)/.exec(body)?.[1] ?? body;
      expect(JSON.parse(payload).errors[0].extensions).toMatchObject({ code, limit });
      expect(await stored()).toBe(before);
    });
  }
});

describe('query limits over WebSocket', () => {
  for (const [code, { query, limit }] of Object.entries(OVER)) {
    it(`refuses ${code} as an error of that operation; the socket stays usable`, async () => {
      const before = await stored();
      const client = wsClient(url(), server.tokens.alice);
      try {
        const { error } = await runWs(client, query);
        const errors = error as { extensions?: Record<string, unknown> }[];
        expect(errors[0]?.extensions).toMatchObject({ code, limit });
        expect(errors[0]?.extensions?.measured).toBeGreaterThan(limit);
        expect(errors[0]?.extensions?.http).toBeUndefined();
        expect(await runWs(client, '{ viewer { name } }')).toEqual({
          results: [{ data: { viewer: { name: 'alice' } } }],
        });
        expect(await stored()).toBe(before);
      } finally {
        await client.dispose();
      }
    });
  }

  it('closes a socket whose message exceeds the request limit (1009), like HTTP’s 413', async () => {
    let closed: { code?: number } = {};
    const client = wsClient(url(), server.tokens.alice, (event) => {
      closed = event as { code: number };
    });
    const { error } = await runWs(client, '{ viewer { name } }', { pad: 'x'.repeat(5 * 1024 * 1024) });
    expect((error as { code: number }).code).toBe(1009);
    expect(closed.code).toBe(1009);
    await client.dispose();
  });
});

describe('memory while refusing', () => {
  let proc: ServerProcess;
  let token: string;
  beforeAll(async () => {
    proc = await spawnServer({
      DATABASE_URL: server.db.url,
      REDIS_URL,
      OPSGRAPH_CHANNEL_PREFIX: uniquePrefix(),
      OPSGRAPH_ROLE: 'api',
    });
    token = await tokenFor(server.db.url, 'alice');
  });
  afterAll(async () => {
    if (process.env.TEST_VERBOSE) console.log(proc?.logs.join('\n'));
    await proc?.stop();
  });

  it('stays within +200 MB RSS while sending 60 multi-megabyte query documents, and answers after', async () => {
    const pid = proc.child.pid as number;
    await post(proc.url, { query: '{ viewer { name } }' }, token);
    const before = rssOf(pid);
    let peak = before;
    for (let round = 0; round < 6; round++) {
      const responses = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          postOnce(
            proc.url,
            JSON.stringify({ query: `{ viewer { name } } # ${round}-${i} ${'y'.repeat(3 * 1024 * 1024)}` }),
          ),
        ),
      );
      for (const response of responses) expect(response).toEqual({ status: 413, code: 'QUERY_TOO_LARGE' });
      peak = Math.max(peak, rssOf(pid));
    }
    const grown = peak - before;
    console.log(
      `server RSS ${Math.round(before / 1e6)} MB → peak ${Math.round(peak / 1e6)} MB (+${Math.round(grown / 1e6)} MB)`,
    );
    expect(grown).toBeLessThan(200 * 1024 * 1024);
    expect((await post(proc.url, { query: '{ viewer { name } }' }, token)).json?.data).toEqual({
      viewer: { name: 'alice' },
    });
  });
});
