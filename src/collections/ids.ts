import { decodeGlobalID, encodeGlobalID } from '@pothos/plugin-relay';
import { z } from 'zod';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The global ID clients see for a collection. */
export const collectionGlobalId = (uuid: string) => encodeGlobalID('Collection', uuid);

/** The database id in a collection reference: a global Collection ID or the bare UUID. */
export function collectionUuid(reference: string): string | undefined {
  if (UUID.test(reference)) return reference.toLowerCase();
  try {
    const { typename, id } = decodeGlobalID(reference);
    return typename === 'Collection' && UUID.test(id) ? id.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

/** An input field naming a collection; parses to its database id. */
export const collectionIdInput = z
  .string()
  .describe('The collection: its global ID (as the API returns it) or its UUID')
  .transform((value, ctx) => {
    const uuid = collectionUuid(value);
    if (!uuid) {
      ctx.addIssue({ code: 'custom', message: 'is not a valid Collection ID' });
      return z.NEVER;
    }
    return uuid;
  });
