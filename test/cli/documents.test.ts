import { readFileSync } from 'node:fs';
import { buildSchema, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import * as documents from '../../src/cli/documents.ts';

// The CLI's documents are plain strings (no codegen): this keeps them in step with the schema.
describe('CLI documents', () => {
  const schema = buildSchema(readFileSync('schema/schema.graphql', 'utf8'));
  const entries = Object.entries(documents as Record<string, unknown>).filter(
    (entry): entry is [string, string] => typeof entry[1] === 'string',
  );

  it('has the documents the commands send', () => {
    expect(entries.map(([name]) => name).sort()).toEqual([
      'BATCH_UPDATED',
      'CANCEL_OPERATION',
      'GET_BATCH_OUTCOME',
      'GET_OPERATION',
      'LIST_OPERATIONS',
      'OPERATION_UPDATED',
      'START_BATCH',
      'START_OPERATION',
    ]);
  });

  it.each(entries)('%s is valid against schema/schema.graphql', (_, text) => {
    expect(validate(schema, parse(text)).map((error) => error.message)).toEqual([]);
  });
});
