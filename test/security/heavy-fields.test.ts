import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { startTestApp } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { startSleep } from '../support/operations.ts';

/**
 * Fields of up to a megabyte (an operation's input and result, a document's content) cost 100 each
 * in the query cost, so one request cannot ask for thousands of them.
 */

let db: TestDatabase;
let app: App & { url: string };
let alice: string;
const statements: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  app = await startTestApp(db.url, {}, { db: { onQuery: (sql) => statements.push(sql) } });
  alice = await tokenFor(db.url, 'alice');
  for (let i = 0; i < 3; i += 1) await startSleep(app.url, alice, { steps: 0, stepMs: 0 });
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

async function ask(query: string) {
  statements.length = 0;
  const response = await fetch(app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
    body: JSON.stringify({ query }),
  });
  return (await response.json()) as { data?: unknown; errors?: { extensions?: Record<string, unknown> }[] };
}

/** The statements of the last request that read the "Operation" table. */
const operationReads = () => statements.filter((sql) => /SELECT[\s\S]*FROM "public"\."Operation"/i.test(sql));

describe('heavy columns', () => {
  it('prices each input, result and content asked for at 100, refusing a request for too many', async () => {
    // 3 aliases × 100 operations × (input + result): 60,603 > 50,000.
    const alias = (name: string) => `${name}: operations(first: 100) { edges { node { input result } } }`;
    const refused = await ask(`{ ${['a', 'b', 'c'].map(alias).join(' ')} }`);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 50_000 });
    expect(refused.errors?.[0]?.extensions?.measured).toBeGreaterThan(60_000);
    expect(operationReads()).toEqual([]);
    // Two of them (40,402) are allowed.
    const allowed = await ask(`{ ${['a', 'b'].map(alias).join(' ')} }`);
    expect(allowed.errors).toBeUndefined();
  });
});
