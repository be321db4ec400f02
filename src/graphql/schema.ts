import { builder } from './builder.ts';
import './errors.ts';
import '../auth/schema.ts';
import '../operations/schema.ts';
import '../operations/schema-api.ts';
import '../collections/schema.ts';
import '../batches/schema.ts';

/** The whole GraphQL schema, built from every domain's schema module. */
export const schema = builder.toSchema({ sortSchema: true });
