import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { DocumentNode, FieldDefinitionNode, InputValueDefinitionNode, StringValueNode } from 'graphql';
import { describe, expect, it } from 'vitest';

// The CommonJS graphql, as in schema.test.ts (one realm for every graphql import of the tests).
const { Kind, parse } = createRequire(import.meta.url)('graphql') as typeof import('graphql');

const SCHEMA_FILE = new URL('../schema/schema.graphql', import.meta.url);

const blank = (description: StringValueNode | undefined) => !description?.value.trim();

/**
 * Every public type, field, argument, enum value and input field of an SDL document that has no
 * description, by its coordinate (`Type`, `Type.field`, `Type.field(arg:)`, `Enum.VALUE`,
 * `Input.field`). Built-in scalars and introspection types are never printed, so never listed.
 */
function undescribed(document: DocumentNode): string[] {
  const missing: string[] = [];
  const args = (owner: string, values: readonly InputValueDefinitionNode[] | undefined) => {
    for (const arg of values ?? []) if (blank(arg.description)) missing.push(`${owner}(${arg.name.value}:)`);
  };
  const fields = (type: string, list: readonly FieldDefinitionNode[] | undefined) => {
    for (const field of list ?? []) {
      const at = `${type}.${field.name.value}`;
      if (blank(field.description)) missing.push(at);
      args(at, field.arguments);
    }
  };
  for (const definition of document.definitions) {
    switch (definition.kind) {
      case Kind.OBJECT_TYPE_DEFINITION:
      case Kind.INTERFACE_TYPE_DEFINITION:
        if (blank(definition.description)) missing.push(definition.name.value);
        fields(definition.name.value, definition.fields);
        break;
      case Kind.UNION_TYPE_DEFINITION:
      case Kind.SCALAR_TYPE_DEFINITION:
        if (blank(definition.description)) missing.push(definition.name.value);
        break;
      case Kind.ENUM_TYPE_DEFINITION:
        if (blank(definition.description)) missing.push(definition.name.value);
        for (const value of definition.values ?? [])
          if (blank(value.description)) missing.push(`${definition.name.value}.${value.name.value}`);
        break;
      case Kind.INPUT_OBJECT_TYPE_DEFINITION:
        if (blank(definition.description)) missing.push(definition.name.value);
        for (const field of definition.fields ?? [])
          if (blank(field.description)) missing.push(`${definition.name.value}.${field.name.value}`);
        break;
      case Kind.DIRECTIVE_DEFINITION:
        if (blank(definition.description)) missing.push(`@${definition.name.value}`);
        args(`@${definition.name.value}`, definition.arguments);
        break;
      default:
        break;
    }
  }
  return missing;
}

describe('schema descriptions', () => {
  it('schema/schema.graphql has a description on every public type, field, argument, enum value and input field', () => {
    const document = parse(readFileSync(SCHEMA_FILE, 'utf8'));
    expect(undescribed(document)).toEqual([]);
  });

  it('lists each undescribed element of a schema by its coordinate', () => {
    const document = parse(`
      "Described." type Query { "Described." ok: Int, bare(limit: Int): Int }
      type Thing { "Described." name: String }
      "Described." enum Color { "Described." RED, BLUE }
      "Described." input Filter { "Described." a: Int, b: Int }
      union Any = Thing
      scalar When
    `);
    expect(undescribed(document)).toEqual([
      'Query.bare',
      'Query.bare(limit:)',
      'Thing',
      'Color.BLUE',
      'Filter.b',
      'Any',
      'When',
    ]);
  });
});
