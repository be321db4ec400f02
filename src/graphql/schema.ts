import { builder } from './builder.ts';
import { guardArguments } from './hygiene.ts';
import './errors.ts';
import './connections.ts';
import '../auth/schema.ts';
import '../operations/schema.ts';
import '../operations/schema-api.ts';
import '../operations/schema-bulk-cancel.ts';
import '../operations/schema-live.ts';
import '../collections/schema.ts';
import '../batches/schema.ts';
import '../runs/schema.ts';
import '../runs/schedule-schema.ts';
import '../credits/schema.ts';
import '../audit/schema.ts';

/** The whole GraphQL schema, built from every domain's schema module; every argument is checked. */
export const schema = guardArguments(builder.toSchema({ sortSchema: true }));
