import { describe, expect, it } from 'vitest';
import { dig, findRefs, RefError, resolveRefs } from '../../src/batches/refs.ts';
import { itemsById, settleBatch, startBatchOk } from '../support/batches.ts';
import { useServer } from '../support/fixtures.ts';

/** `$ref:` references between batch items: the pure functions, then once end to end. */

const A_RESULT = {
  value: {
    n: 42,
    flag: true,
    off: false,
    zero: 0,
    s: 'text',
    obj: { x: 1, inner: { y: [1, 2] } },
    list: [{ id: 'first' }, { id: 'second' }],
    nothing: null,
  },
};
const results = new Map<string, unknown>([
  ['a', A_RESULT],
  ['b', { count: 3 }],
]);

/** Runs `action`, which must throw a RefError, and returns it. */
function refError(action: () => unknown): RefError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(RefError);
    const refError = error as RefError;
    expect(refError.code).toBe('BAD_REFERENCE');
    expect(refError.retryable).toBe(false);
    return refError;
  }
  throw new Error('expected a RefError');
}

describe('findRefs', () => {
  it('finds a whole-value reference with a nested path and array index, with its location', () => {
    expect(findRefs({ x: { y: [1, '$ref:load.items.0.id'] } })).toEqual([
      { at: ['x', 'y', 1], item: 'load', path: ['items', '0', 'id'], whole: true },
    ]);
  });

  it('prefixes locations with the given path', () => {
    expect(findRefs({ id: '$ref:a.value' }, ['items', 3, 'input'])).toEqual([
      { at: ['items', 3, 'input', 'id'], item: 'a', path: ['value'], whole: true },
    ]);
  });

  it('finds a reference to a whole result, and whole references to items with "_" or "-" in their id', () => {
    expect(findRefs('$ref:a')).toEqual([{ at: [], item: 'a', path: [], whole: true }]);
    expect(findRefs('$ref:my-item_2.value')).toEqual([
      { at: [], item: 'my-item_2', path: ['value'], whole: true },
    ]);
  });

  it('finds every reference interpolated in a string; letters and digits only, so "_" ends one', () => {
    expect(findRefs('backup_$ref:create.collectionId_v2 of $ref:b.list.0.id!')).toEqual([
      { at: [], item: 'create', path: ['collectionId'], whole: false },
      { at: [], item: 'b', path: ['list', '0', 'id'], whole: false },
    ]);
  });

  it('does not treat an escaped $$ref: as a reference', () => {
    expect(findRefs('$$ref:a.value.n')).toEqual([]);
    expect(findRefs({ s: 'literal $$ref:a.value and real $ref:b.count' })).toEqual([
      { at: ['s'], item: 'b', path: ['count'], whole: false },
    ]);
  });

  it('finds nothing in values without references', () => {
    expect(findRefs({ n: 1, b: true, z: null, s: 'ref: a.value', list: [1, 'x', {}], t: '$ref:' })).toEqual(
      [],
    );
  });
});

describe('resolveRefs', () => {
  it('keeps the JSON type of whole-value references (number, boolean, object, array, null)', () => {
    const resolved = resolveRefs(
      {
        n: '$ref:a.value.n',
        flag: '$ref:a.value.flag',
        off: '$ref:a.value.off',
        zero: '$ref:a.value.zero',
        obj: '$ref:a.value.obj',
        list: '$ref:a.value.list',
        nothing: '$ref:a.value.nothing',
        all: '$ref:b',
      },
      results,
    );
    expect(resolved).toStrictEqual({
      n: 42,
      flag: true,
      off: false,
      zero: 0,
      obj: { x: 1, inner: { y: [1, 2] } },
      list: [{ id: 'first' }, { id: 'second' }],
      nothing: null,
      all: { count: 3 },
    });
  });

  it('follows nested paths and array indexes', () => {
    expect(resolveRefs('$ref:a.value.list.1.id', results)).toBe('second');
    expect(resolveRefs('$ref:a.value.obj.inner.y.0', results)).toBe(1);
    expect(resolveRefs(['$ref:a.value.list.0', { deep: ['$ref:a.value.obj.inner'] }], results)).toEqual([
      { id: 'first' },
      { deep: [{ y: [1, 2] }] },
    ]);
  });

  it('interpolates several references into one string, as text', () => {
    expect(
      resolveRefs(
        'n=$ref:a.value.n;f=$ref:a.value.flag;s=$ref:a.value.s;el=$ref:a.value.list.0.id;z=$ref:a.value.nothing',
        results,
      ),
    ).toBe('n=42;f=true;s=text;el=first;z=null');
    expect(resolveRefs('backup_$ref:b.count_v2', results)).toBe('backup_3_v2');
  });

  it('leaves values without references unchanged and does not modify its argument', () => {
    const input = { n: 1, b: false, z: null, s: 'plain', list: [1, { x: '$ref:b.count' }] };
    const copy = structuredClone(input);
    expect(resolveRefs(input, results)).toEqual({ n: 1, b: false, z: null, s: 'plain', list: [1, { x: 3 }] });
    expect(input).toEqual(copy);
  });

  it('refuses to interpolate an object or an array into a string', () => {
    expect(refError(() => resolveRefs('obj: $ref:a.value.obj', results)).message).toBe(
      '$ref:a.value.obj: an object or array cannot be interpolated into a string',
    );
    expect(refError(() => resolveRefs({ s: 'list: $ref:a.value.list!' }, results)).message).toBe(
      '$ref:a.value.list: an object or array cannot be interpolated into a string',
    );
    refError(() => resolveRefs('all of b: $ref:b', results));
  });

  it('turns $$ref: into a literal $ref: and does not resolve it', () => {
    expect(resolveRefs('$$ref:a.value.n', results)).toBe('$ref:a.value.n');
    expect(resolveRefs('$$ref:ghost.value', new Map())).toBe('$ref:ghost.value');
    expect(resolveRefs({ s: 'say $$ref:a.value.n = $ref:a.value.n' }, results)).toEqual({
      s: 'say $ref:a.value.n = 42',
    });
  });

  it('throws a RefError for a path that is not in the result', () => {
    expect(refError(() => resolveRefs('$ref:a.value.nope', results)).message).toBe(
      '$ref:a.value.nope: no such value in the result of a',
    );
    refError(() => resolveRefs('$ref:a.value.list.2.id', results)); // index out of range
    refError(() => resolveRefs('$ref:a.value.n.more', results)); // through a number
    refError(() => resolveRefs('$ref:a.value.list.first', results)); // a name on an array
    refError(() => resolveRefs({ deep: ['x_$ref:a.value.nope_y'] }, results));
  });

  it('throws a RefError for an item without a result', () => {
    expect(refError(() => resolveRefs({ v: '$ref:ghost.value' }, results)).message).toBe(
      '$ref:ghost.value: ghost has no result',
    );
    refError(() => resolveRefs('id=$ref:ghost', results));
  });

  it('interpolates a string that starts with a reference and holds another one', () => {
    expect(findRefs('$ref:a.value.n;f=$ref:a.value.flag')).toEqual([
      { at: [], item: 'a', path: ['value', 'n'], whole: false },
      { at: [], item: 'a', path: ['value', 'flag'], whole: false },
    ]);
    expect(resolveRefs('$ref:a.value.n;f=$ref:a.value.flag', results)).toBe('42;f=true');
  });
});

describe('dig', () => {
  it('finds values at object paths and array indexes, null included', () => {
    expect(dig(A_RESULT, ['value', 'list', '1', 'id'])).toEqual({ found: true, value: 'second' });
    expect(dig(A_RESULT, ['value', 'nothing'])).toEqual({ found: true, value: null });
    expect(dig(A_RESULT, ['value', 'off'])).toEqual({ found: true, value: false });
    expect(dig(A_RESULT, [])).toEqual({ found: true, value: A_RESULT });
    expect(dig({ '0': 'key' }, ['0'])).toEqual({ found: true, value: 'key' });
  });

  it('reports missing values as not found', () => {
    expect(dig(A_RESULT, ['value', 'nope'])).toEqual({ found: false });
    expect(dig(A_RESULT, ['value', 'list', '2'])).toEqual({ found: false });
    expect(dig(A_RESULT, ['value', 'list', 'length'])).toEqual({ found: false });
    expect(dig(A_RESULT, ['value', 's', 'length'])).toEqual({ found: false });
    expect(dig(A_RESULT, ['value', 'nothing', 'x'])).toEqual({ found: false });
    expect(dig(A_RESULT, ['value', 'n', '0'])).toEqual({ found: false });
  });

  it('does not follow inherited properties', () => {
    expect(dig(A_RESULT, ['toString'])).toEqual({ found: false });
    expect(dig(A_RESULT, ['constructor'])).toEqual({ found: false });
    expect(dig(A_RESULT, ['__proto__'])).toEqual({ found: false });
    expect(dig([], ['constructor'])).toEqual({ found: false });
  });
});

describe('references end to end (diagnostics.echo through GraphQL)', () => {
  const server = useServer();

  it("replaces references in b's input with a's result, keeping JSON types", async () => {
    const { id, plan } = await startBatchOk(server.app.url, server.tokens.alice, {
      items: [
        {
          id: 'a',
          type: 'diagnostics.echo',
          input: {
            value: {
              n: 42,
              flag: true,
              obj: { x: 1 },
              list: [{ id: 'first' }, { id: 'second' }],
              nothing: null,
            },
          },
        },
        {
          id: 'b',
          type: 'diagnostics.echo',
          dependsOn: ['a'],
          input: {
            value: {
              n: '$ref:a.value.n',
              flag: '$ref:a.value.flag',
              obj: '$ref:a.value.obj',
              el: '$ref:a.value.list.1.id',
              nothing: '$ref:a.value.nothing',
              s: 'n=$ref:a.value.n;f=$ref:a.value.flag',
              literal: '$$ref:a.value.n',
            },
          },
        },
      ],
    });
    expect(plan.levels).toEqual([
      { level: 0, items: ['a'] },
      { level: 1, items: ['b'] },
    ]);
    const batch = await settleBatch(server.app.url, server.tokens.alice, id);
    expect(batch.status).toBe('COMPLETED');
    const items = itemsById(batch);
    expect(items.a?.status).toBe('COMPLETED');
    expect(items.b?.status).toBe('COMPLETED');
    const value = (items.b?.data as { value: Record<string, unknown> } | undefined)?.value ?? {};
    expect(value).toStrictEqual({
      n: 42,
      flag: true,
      obj: { x: 1 },
      el: 'second',
      nothing: null,
      s: 'n=42;f=true',
      literal: '$ref:a.value.n',
    });
    expect(typeof value.n).toBe('number');
    expect(typeof value.flag).toBe('boolean');
    expect(value.nothing).toBeNull();
  });
});
