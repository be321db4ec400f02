import { decodeGlobalID } from '@pothos/plugin-relay';
import { ValidationError } from '../errors.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Decodes a global ID of the given type to its database id, or throws a ValidationError at `path`. */
export function parseGlobalId(globalId: string, typename: string, path: string[] = ['id']): string {
  let decoded: { typename: string; id: string } | undefined;
  try {
    decoded = decodeGlobalID(globalId);
  } catch {
    decoded = undefined;
  }
  if (!decoded || decoded.typename !== typename || !UUID.test(decoded.id)) {
    throw new ValidationError([{ path, message: `is not a valid ${typename} ID` }]);
  }
  return decoded.id.toLowerCase();
}

/** The cursor of a row in a connection ordered by a BIGINT id (credit ledger, audit log). */
export const rowCursor = (id: string): string => Buffer.from(`ROW:${id}`).toString('base64');

/** rowCursor's id back (arguments.ts has checked the cursor's form). */
export const rowOfCursor = (cursor: string | null | undefined): string | null =>
  cursor ? Buffer.from(cursor, 'base64').toString('utf8').slice(4) : null;
