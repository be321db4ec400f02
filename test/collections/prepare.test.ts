import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { arrayLiteral, binaryArray, binaryToLiteral } from '../../src/collections/prepare.ts';
import { ADMIN_DATABASE_URL } from '../support/services.ts';

const pool = new pg.Pool({ connectionString: ADMIN_DATABASE_URL, max: 1 });
afterAll(() => pool.end());

const TEXTS = [
  'plain',
  '',
  'quote " and backslash \\ and {braces}, commas',
  'NULL',
  'émoji 🦊 and ünïcode',
  'line\nbreak\ttab',
];

describe('binaryArray', () => {
  it('is read by PostgreSQL as the same text[] and int[] (nulls and the empty array included)', async () => {
    const texts = [...TEXTS, null];
    const ints = [0, 1, -7, 2_147_483_647, null];
    const { rows } = await pool.query<{ texts: (string | null)[]; ints: (number | null)[]; empty: string[] }>(
      'SELECT $1::text[] AS texts, $2::int[] AS ints, $3::text[] AS empty',
      [binaryArray('text', texts), binaryArray('int4', ints), binaryArray('text', [])],
    );
    expect(rows[0]).toEqual({ texts, ints, empty: [] });
  });

  it('turns back into the array literal of the same values', async () => {
    const texts = [...TEXTS, null];
    expect(binaryToLiteral(binaryArray('text', texts))).toBe(arrayLiteral(texts));
    expect(binaryToLiteral(binaryArray('int4', [3, null, -1]))).toBe('{3,NULL,-1}');
    expect(binaryToLiteral(binaryArray('text', []))).toBe('{}');
    const { rows } = await pool.query<{ texts: (string | null)[] }>('SELECT $1::text[] AS texts', [
      binaryToLiteral(binaryArray('text', texts)),
    ]);
    expect(rows[0]!.texts).toEqual(texts);
  });
});
