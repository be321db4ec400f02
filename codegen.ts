import type { CodegenConfig } from '@graphql-codegen/cli';

const preset = (scalars: Record<string, string>, importExtension = '.ts') =>
  ({
    preset: 'client',
    config: {
      scalars: { DateTime: 'string', JSON: 'unknown', ...scalars },
      enumsAsTypes: true,
      useTypeImports: true,
      importExtension,
    },
    presetConfig: { fragmentMasking: false },
  }) as const;

// Typed documents, checked against schema/schema.graphql: operations written with graphql(`…`)
// in test/ (for the tests) and in client/src/documents.ts (the @opsgraph/client package).
const config: CodegenConfig = {
  schema: 'schema/schema.graphql',
  ignoreNoDocuments: true,
  generates: {
    'test/gql/': { ...preset({}), documents: ['test/**/*.ts', '!test/gql/**'] },
    'client/src/gql/': {
      // The package is compiled by tsc as it is: imports end in .js, as in the rest of client/src.
      ...preset({ SafeInt: 'number' }, '.js'),
      documents: ['client/src/documents.ts'],
    },
  },
};

export default config;
