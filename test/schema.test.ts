import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { schema } from '../src/graphql/schema.ts';

// The graphql instance Pothos built the schema with. Under vitest a plain `import 'graphql'` here
// resolves to graphql's ESM build (index.mjs, via its "module" field) while Pothos, loaded by Node,
// gets the CommonJS build (index.js); graphql refuses to mix the two ("from another module or
// realm"). scripts/print-schema.ts runs under plain Node, where both are index.js.
const { extendSchema, parse, printSchema } = createRequire(import.meta.url)(
  'graphql',
) as typeof import('graphql');

const SCHEMA_FILE = new URL('../schema/schema.graphql', import.meta.url);

/** What scripts/print-schema.ts writes: the printed SDL and a final newline. */
const printed = (s: typeof schema) => `${printSchema(s)}\n`;

describe('committed schema', () => {
  it('the committed schema/schema.graphql equals the printed schema', () => {
    const committed = readFileSync(SCHEMA_FILE, 'utf8');
    expect(committed).toContain('type Query');
    expect(printed(schema)).toBe(committed);
  });

  it('a schema with one extra field no longer matches the committed file', () => {
    const committed = readFileSync(SCHEMA_FILE, 'utf8');
    const changed = printed(extendSchema(schema, parse('extend type Query { extra: Int }')));
    expect(changed).toContain('extra: Int');
    expect(committed).not.toContain('extra: Int');
    expect(changed).not.toBe(committed);
  });
});
