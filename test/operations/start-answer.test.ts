import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

/**
 * What a start costs after its one statement (src/operations/create.ts): its answer is built from
 * the row the statement returned, and `owner { name }` loads the owner alone, never the operation
 * row again (issue 13, point 6).
 */

let db: TestDatabase;
let app: Awaited<ReturnType<typeof startTestApp>>;
let token: string;
/** Statements sent through Prisma (the start itself goes to the pool directly). */
const statements: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // API only: the operation stays PENDING, so nothing else writes while a start is counted.
  app = await startTestApp(db.url, { role: 'api' }, { db: { onQuery: (sql) => statements.push(sql) } });
  token = await tokenFor(db.url, 'alice');
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

const START = `mutation StartAnswer($input: StartOperationInput!) {
  startOperation(input: $input) {
    __typename
    ... on StartOperationSuccess { operation { id type status input owner { name } } }
  }
}`;

async function start() {
  const response = await fetch(app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: START,
      variables: { input: { type: 'diagnostics.sleep', input: { steps: 1, stepMs: 1 } } },
    }),
  });
  return (await response.json()) as {
    data?: { startOperation: { __typename: string; operation?: Record<string, unknown> } };
    errors?: unknown;
  };
}

describe("a start's answer", () => {
  it('loads the owner alone: no statement reads the operation row again', async () => {
    await start(); // the viewer is looked up once and cached
    statements.length = 0;
    const answer = await start();
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.startOperation).toMatchObject({
      __typename: 'StartOperationSuccess',
      operation: {
        type: 'diagnostics.sleep',
        status: 'PENDING',
        input: { steps: 1, stepMs: 1 },
        owner: { name: 'alice' },
      },
    });
    expect(statements.filter((sql) => /FROM\s+"public"\."Operation"/.test(sql))).toEqual([]);
    expect(statements.filter((sql) => /FROM\s+"public"\."User"/.test(sql))).toHaveLength(1);
  });
});
