import { type ExecutionResult, parse } from 'graphql';
import { createSchema, createYoga } from 'graphql-yoga';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  shareAcrossSubscribers,
  useSharedSubscriptionExecution,
} from '../../src/graphql/shared-execution.ts';

/**
 * A tiny schema through Yoga's envelop: `Tick.n` depends on the payload only (declared shareable),
 * `Tick.viewer` on the subscriber. Every subscriber's source yields the same payload objects: two
 * marked shared, one not.
 */
let executions = 0;
const shared = [shareAcrossSubscribers({ n: 1 }), shareAcrossSubscribers({ n: 2 })];
const unmarked = { n: 3 };
const schema = createSchema<{ viewer: string }>({
  typeDefs: /* GraphQL */ `
    type Query { unused: Int }
    type Subscription { tick: Tick! }
    type Tick { n: Int! viewer: String! }
  `,
  resolvers: {
    Subscription: {
      tick: {
        subscribe: async function* () {
          yield* [...shared, unmarked];
        },
        resolve: (payload: unknown) => payload,
      },
    },
    Tick: {
      n: (tick: { n: number }) => {
        executions += 1;
        return tick.n;
      },
      viewer: (_: unknown, __: unknown, context: { viewer: string }) => context.viewer,
    },
  },
});
const yoga = createYoga({
  schema,
  plugins: [useSharedSubscriptionExecution({ fields: { Subscription: ['tick'], Tick: ['n'] } })],
});

async function run(
  query: ReturnType<typeof parse>,
  viewer: string,
  variableValues?: Record<string, unknown>,
) {
  const { subscribe, schema: enveloped } = yoga.getEnveloped({});
  const stream = (await subscribe({
    schema: enveloped,
    document: query,
    variableValues,
    contextValue: { viewer },
  })) as AsyncIterable<ExecutionResult> | ExecutionResult;
  if (!(Symbol.asyncIterator in stream)) return [stream];
  const results: ExecutionResult[] = [];
  for await (const result of stream) results.push(result);
  return results;
}

beforeEach(() => {
  executions = 0;
});

describe('shared subscription execution', () => {
  it('executes a shared payload once for subscribers of the same document, and an unmarked one per subscriber', async () => {
    const document = parse('subscription { tick { n __typename } }');
    const alice = await run(document, 'alice');
    const bob = await run(document, 'bob');
    expect(alice.map((r) => r.data)).toEqual([1, 2, 3].map((n) => ({ tick: { n, __typename: 'Tick' } })));
    expect(bob).toEqual(alice);
    // 2 shared payloads once each, the unmarked one twice.
    expect(executions).toBe(4);
  });

  it('executes per subscriber a document that selects a field not declared shareable', async () => {
    const document = parse('subscription { tick { n viewer } }');
    const alice = await run(document, 'alice');
    const bob = await run(document, 'bob');
    expect(alice.map((r) => r.data)).toEqual([1, 2, 3].map((n) => ({ tick: { n, viewer: 'alice' } })));
    expect(bob.map((r) => r.data)).toEqual([1, 2, 3].map((n) => ({ tick: { n, viewer: 'bob' } })));
    expect(executions).toBe(6);
  });

  it('keeps results of different variables apart', async () => {
    const document = parse('subscription ($all: Boolean!) { tick { n @include(if: $all) __typename } }');
    const some = await run(document, 'alice', { all: false });
    const all = await run(document, 'bob', { all: true });
    expect(some.map((r) => r.data)).toEqual([1, 2, 3].map(() => ({ tick: { __typename: 'Tick' } })));
    expect(all.map((r) => r.data)).toEqual([1, 2, 3].map((n) => ({ tick: { n, __typename: 'Tick' } })));
  });

  it('answers variables that cannot be coerced with BAD_USER_INPUT', async () => {
    const document = parse('subscription ($all: Boolean!) { tick { n @include(if: $all) } }');
    const [result] = await run(document, 'alice', {});
    expect(result!.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
  });
});

describe("the schema's shareable fields", () => {
  it('all exist, so a renamed field cannot silently stop sharing', async () => {
    const { schema: real } = await import('../../src/graphql/schema.ts');
    const { SHARED_UPDATE_FIELDS } = await import('../../src/operations/updates.ts');
    for (const [type, fields] of Object.entries(SHARED_UPDATE_FIELDS)) {
      const named = real.getType(type) as { getFields?: () => Record<string, unknown> } | undefined;
      expect(named?.getFields, type).toBeTypeOf('function');
      for (const field of fields) expect(named!.getFields!(), `${type}.${field}`).toHaveProperty(field);
    }
  });
});
