import type { CodegenConfig } from '@graphql-codegen/cli';

// Typed documents for the tests (and any TypeScript client): operations written with
// graphql(`…`) in test/ are checked against schema/schema.graphql and typed.
const config: CodegenConfig = {
  schema: 'schema/schema.graphql',
  documents: ['test/**/*.ts', '!test/gql/**'],
  ignoreNoDocuments: true,
  importExtension: '.ts',
  generates: {
    'test/gql/': {
      preset: 'client',
      config: {
        scalars: { DateTime: 'string', JSON: 'unknown' },
        enumsAsTypes: true,
        useTypeImports: true,
      },
      presetConfig: { fragmentMasking: false },
    },
  },
};

export default config;
