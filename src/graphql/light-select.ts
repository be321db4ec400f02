import { getDatamodel } from '../generated/pothos-types.ts';

/**
 * A Prisma `select` of every column of `model` except `heavy` ones, for a prismaObject in select
 * mode: lists and relations then load a heavy column (an operation's input or result, a document's
 * content: up to a megabyte each) only when a query asks for the field that exposes it, instead of
 * with every row. Columns added to the model later are selected too.
 */
export function selectAllBut<Row, Heavy extends keyof Row & string>(
  model: string,
  heavy: readonly Heavy[],
): { [K in Exclude<keyof Row, Heavy>]: true } {
  const fields = getDatamodel().datamodel.models[model]?.fields ?? [];
  return Object.fromEntries(
    fields
      .filter(
        (field) =>
          (field.kind === 'scalar' || field.kind === 'enum') &&
          !(heavy as readonly string[]).includes(field.name),
      )
      .map((field) => [field.name, true as const]),
  ) as { [K in Exclude<keyof Row, Heavy>]: true };
}
