import { describe, expect, it } from 'vitest';
import { useServer } from '../support/fixtures.ts';

/**
 * Variables holding large lists are coerced in slices ahead of the executor (src/graphql/coerce.ts,
 * issue 9 point 5): what a resolver receives and what a client is told about a bad value are the
 * same as with graphql-js's one-piece coercion (the messages below are main's, checked with the
 * plugin off).
 */

const server = useServer();

const PLAN = `mutation SlicedPlan($input: StartBatchInput!) {
  startBatch(input: $input) {
    __typename
    ... on StartBatchSuccess { plan { itemCount levels { level items } } }
    ... on ValidationError { problems { path message } }
  }
}`;

async function post(variables: unknown, query = PLAN) {
  const response = await fetch(server.app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${server.tokens.alice}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as {
    data?: {
      startBatch?: {
        __typename: string;
        plan?: { itemCount: number; levels: { level: number; items: string[] }[] };
      };
    };
    errors?: { message: string; extensions?: { code?: string } }[];
  };
}

/** A chain of `n` items (each on the one before), above the 64 values coerced in one piece. */
const chain = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    id: `c${i}`,
    type: 'diagnostics.echo',
    input: { value: { n: i, tags: ['a', 'b'] } },
    ...(i > 0 ? { dependsOn: [`c${i - 1}`] } : {}),
  }));

describe('coercion of large variables in slices', () => {
  it('gives resolvers the values graphql-js would: a 300-item chain plans in 300 levels', async () => {
    const answer = await post({ input: { items: chain(300), validateOnly: true } });
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.startBatch?.__typename).toBe('StartBatchSuccess');
    expect(answer.data?.startBatch?.plan?.itemCount).toBe(300);
    expect(answer.data?.startBatch?.plan?.levels).toHaveLength(300);
    expect(answer.data?.startBatch?.plan?.levels[299]).toEqual({ level: 299, items: ['c299'] });
  });

  it("refuses a bad value deep in a large list with graphql-js's own error", async () => {
    const items: Record<string, unknown>[] = chain(200);
    items[150] = { ...items[150], colour: 'red' };
    const answer = await post({ input: { items, validateOnly: true } });
    expect(answer.data).toBeUndefined();
    expect(answer.errors).toHaveLength(1);
    expect(answer.errors?.[0]?.message).toBe('Field "colour" is not defined by type "BatchItemInput".');

    const wrongType = chain(200).map((item, i) => (i === 199 ? { ...item, dependsOn: [7] } : item));
    const second = await post({ input: { items: wrongType, validateOnly: true } });
    expect(second.errors?.[0]?.message).toBe('String cannot represent a non string value: 7');
  });

  it('checks the rest of the input as sent: a missing required field beside a large list', async () => {
    const answer = await post({ input: { items: chain(100), validateOnly: 'yes' } });
    expect(answer.errors?.[0]?.message).toBe('Boolean cannot represent a non boolean value: "yes"');
    const missing = await post({ input: { items: chain(100).map(({ type: _type, ...rest }) => rest) } });
    expect(missing.errors?.[0]?.message).toBe('Field "type" of required type "String!" was not provided.');
  });
});
