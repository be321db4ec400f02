import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PREPARED_LISTS, preparedList } from '../../src/operations/list.ts';
import { startTestApp } from '../support/app.ts';
import { tokenFor } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

// The statements the list and the cancel send (issue 13.4 and 13.6): a page of rows without
// relations is one prepared statement, and a cancel writes its audit row in its own statement.

let db: TestDatabase;
let app: Awaited<ReturnType<typeof startTestApp>>;
const statements: string[] = [];
let alice: string;

beforeAll(async () => {
  db = await createTestDatabase();
  app = await startTestApp(db.url, { role: 'api' }, { db: { onQuery: (sql) => statements.push(sql) } });
  alice = await tokenFor(db.url, 'alice');
  await db.query(
    `INSERT INTO "Operation" (type, input, "ownerId", status, sequence, "createdAt", "updatedAt", "completedAt")
     SELECT 'bulk.work', jsonb_build_object('n', i), u.id,
            (CASE WHEN i % 2 = 0 THEN 'COMPLETED' ELSE 'PENDING' END)::"OperationStatus", 1,
            now() - i * interval '1 minute', now(), CASE WHEN i % 2 = 0 THEN now() END
       FROM generate_series(1, 12) i, "User" u WHERE u.name = 'alice'`,
  );
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

async function ask(query: string, variables: Record<string, unknown> = {}) {
  statements.length = 0;
  const response = await fetch(app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
    body: JSON.stringify({ query, variables }),
  });
  // biome-ignore lint/suspicious/noExplicitAny: a test reads what it asked for
  return (await response.json()) as { data?: any; errors?: unknown[] };
}

const operationStatements = () => statements.filter((sql) => /"Operation"/.test(sql));

describe('operations list statements', () => {
  it('reads a page without relations in one prepared statement, rows and all', async () => {
    const page = await ask(
      '{ operations(first: 5) { edges { node { id type status input createdAt } } pageInfo { hasNextPage } } }',
    );
    expect(page.errors).toBeUndefined();
    expect(page.data.operations.edges).toHaveLength(5);
    expect(page.data.operations.edges[0].node.input).toEqual({ n: 1 });
    expect(page.data.operations.pageInfo.hasNextPage).toBe(true);
    const reads = operationStatements();
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatch(/^\/\* prepared list_[0-9a-f]{20} \*\//);
  });

  it('reads the ids, then the rows with their relations, when the page selects a relation', async () => {
    const page = await ask('{ operations(first: 5) { edges { node { id owner { name } } } } }');
    expect(page.errors).toBeUndefined();
    expect(
      page.data.operations.edges.map((edge: { node: { owner: { name: string } } }) => edge.node.owner.name),
    ).toEqual(Array(5).fill('alice'));
    expect(operationStatements()[0]).toMatch(/^\/\* prepared list_/);
  });

  it('names at most MAX_PREPARED_LISTS statement texts; others are planned each time', () => {
    const texts = Array.from({ length: MAX_PREPARED_LISTS + 5 }, (_, i) => `SELECT ${i} AS probe`);
    const marked = texts.map(preparedList);
    const named = marked.filter((sql) => sql.startsWith('/* prepared list_'));
    expect(named.length).toBeLessThanOrEqual(MAX_PREPARED_LISTS);
    expect(marked.at(-1)).toBe(texts.at(-1));
    // The same text keeps its name.
    expect(preparedList(texts[0]!)).toBe(marked[0]);
  });
});

describe('cancelOperation statements', () => {
  const cancel = `mutation Cancel($id: ID!) { cancelOperation(input: { id: $id }) { __typename } }`;
  const globalId = (uuid: string) => Buffer.from(`Operation:${uuid}`).toString('base64');
  const audits = async (uuid: string) =>
    (
      await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "AuditEvent" WHERE "operationId" = $1 AND action = 'OPERATION_CANCELLED'`,
        [uuid],
      )
    )[0]!.n;

  it('cancels with one read and one write, the audit row in the write', async () => {
    const [pending] = await db.query<{ id: string }>(
      `SELECT id FROM "Operation" WHERE status = 'PENDING' ORDER BY "createdAt" DESC LIMIT 1`,
    );
    const response = await ask(cancel, { id: globalId(pending!.id) });
    expect(response.data?.cancelOperation.__typename).toBe('CancelOperationSuccess');
    const beforeResponse = statements.filter((sql) => !/^SELECT "public"/.test(sql));
    expect(beforeResponse[0]).toMatch(/^\/\* prepared cancel_target \*\//);
    expect(beforeResponse[1]).toMatch(/INSERT INTO "AuditEvent"/);
    expect(statements.some((sql) => /^BEGIN|^COMMIT/.test(sql))).toBe(false);
    expect(await audits(pending!.id)).toBe(1);
  });

  it('writes no audit row when the cancel does not apply', async () => {
    const [done] = await db.query<{ id: string }>(
      `SELECT id FROM "Operation" WHERE status = 'COMPLETED' ORDER BY "createdAt" DESC LIMIT 1`,
    );
    const response = await ask(cancel, { id: globalId(done!.id) });
    expect(response.data?.cancelOperation.__typename).toBe('IllegalTransitionError');
    expect(await audits(done!.id)).toBe(0);
  });
});
