import type { InputFieldBuilder } from '@pothos/core';
import type { builder } from '../graphql/builder.ts';
import { MAX_PRIORITY } from './timing.ts';

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

/** The `runAt` and `priority` fields of StartOperationInput and StartBatchInput (src/runs/timing.ts). */
export const timingFields = (t: InputFieldBuilder<Types, 'InputObject'>) => ({
  runAt: t.field({
    type: 'DateTime',
    required: false,
    description:
      'Start no earlier than this (PENDING until then, cancellable meanwhile; shown as scheduledFor). At most OPSGRAPH_RUN_AT_MAX_DAYS ahead; a time not in the future starts now.',
  }),
  priority: t.int({
    required: false,
    description: `0 (default) to ${MAX_PRIORITY}: among queued jobs of equal fair-share rank, higher runs first. It never overtakes fair share between users (README "Scheduling").`,
  }),
});
