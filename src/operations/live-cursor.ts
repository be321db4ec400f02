import { createHmac, timingSafeEqual } from 'node:crypto';
import { ValidationError } from '../errors.ts';

/**
 * The resume cursor of `operationsUpdated` and the PostgreSQL snapshots it is made of.
 *
 * Why snapshots: transactions commit out of order (event 104's transaction may commit after 105's
 * was delivered), so "everything after serial N" would skip 104 for good. Instead each event
 * records the id of its writing transaction (`OperationEvent.xid`), and a position is a snapshot
 * (`pg_current_snapshot()`: xmin, xmax and the ids in progress) plus what was delivered since:
 *
 * - **base**: every change whose transaction is visible in this snapshot was delivered (or, for a
 *   stream started without `after`, happened before the stream began);
 * - **delivered**: changes delivered live since, as (operation id, sequence) — a resume skips an
 *   operation whose current sequence is not above it (at most `DELIVERED_CAP` entries: the stream
 *   reconciles, moving `base` forward and emptying this, before it grows further);
 * - **levels**: only while a replay was under way: `[snapshot, k]` pairs, newest last, meaning
 *   "operations with id ≤ k were also delivered as of this later snapshot" (the replay delivers in
 *   operation id order). Ids decrease and snapshots grow along the list, so a change is still owed
 *   exactly when no level with `id ≤ k` sees it.
 *
 * The cursor is opaque to clients: base64url JSON with an HMAC (keyed by the server secret and
 * bound to the viewer), so a forged or altered cursor — one that could make a replay scan from the
 * beginning of time — is refused as BAD_USER_INPUT, and a cursor is only ever read back for the
 * user it was issued to. Replays apply the visibility rule anew, so a cursor never shows anything
 * its holder could not see anyway.
 */

/** A `pg_snapshot`: transactions below xmin are settled, those at or above xmax had not started. */
export interface Snapshot {
  xmin: bigint;
  xmax: bigint;
  /** Transactions in progress when it was taken (visible to nobody in it). */
  xip: bigint[];
  /** Its text form, as PostgreSQL prints and reads it. */
  text: string;
}

export interface Position {
  base: Snapshot;
  /** When `base` was taken (ms since the epoch). */
  takenAt: number;
  /** Operation id → the sequence delivered live since `base` (with the transaction, when known). */
  delivered: Map<string, { sequence: number; xid: bigint | null }>;
  /** See above; empty except while a replay is under way. */
  levels: { snapshot: Snapshot; lastId: string }[];
}

/**
 * Entries `delivered` may hold before the stream reconciles (the cursor stays under ~1 KB); up to
 * twice as many while live messages already received are delivered first.
 */
export const DELIVERED_CAP = 16;
/** Levels a cursor may carry: a replay interrupted this many times in a row asks for a re-list. */
export const MAX_LEVELS = 4;
/** Longest `after` accepted, in characters. */
export const CURSOR_MAX_CHARS = 16_384;

const SNAPSHOT = /^(\d{1,20}):(\d{1,20}):((?:\d{1,20}(?:,\d{1,20})*)?)$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function parseSnapshot(text: string): Snapshot | null {
  const match = SNAPSHOT.exec(text);
  if (!match) return null;
  const xmin = BigInt(match[1]!);
  const xmax = BigInt(match[2]!);
  const xip = match[3] ? match[3].split(',').map(BigInt) : [];
  if (xmin > xmax || xip.length > 100_000 || xip.some((x) => x < xmin || x >= xmax)) return null;
  return { xmin, xmax, xip, text };
}

/** `pg_visible_in_snapshot` for a committed transaction, in memory. */
export const visibleIn = (xid: bigint, snapshot: Snapshot): boolean =>
  xid < snapshot.xmin || (xid < snapshot.xmax && !snapshot.xip.includes(xid));

/**
 * Whether the position already covers a committed change (it was delivered, or replays will bring
 * the operation's later state): `xid` null (unknown) covers nothing beyond `delivered`.
 */
export function covers(
  position: Position,
  operationId: string,
  sequence: number,
  xid: bigint | null,
): boolean {
  const live = position.delivered.get(operationId);
  if (live && live.sequence >= sequence) return true;
  if (xid === null) return false;
  if (visibleIn(xid, position.base)) return true;
  return position.levels.some((level) => operationId <= level.lastId && visibleIn(xid, level.snapshot));
}

interface Wire {
  v: 1;
  /** base snapshot text */
  b: string;
  /** takenAt, seconds */
  t: number;
  /** delivered: [id without dashes, sequence] */
  d: [string, number][];
  /** levels: [snapshot text, last id] */
  l: [string, string][];
}

const keyOf = (secret: string) => `opsgraph operationsUpdated cursor\u0000${secret}`;
const mac = (secret: string, viewerId: string, body: string) =>
  createHmac('sha256', keyOf(secret)).update(`${viewerId}\u0000${body}`).digest().subarray(0, 18);

const compact = (uuid: string) => uuid.replaceAll('-', '');
const expand = (hex: string) =>
  `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;

export function encodeCursor(secret: string, viewerId: string, position: Position): string {
  const wire: Wire = {
    v: 1,
    b: position.base.text,
    t: Math.floor(position.takenAt / 1000),
    d: [...position.delivered].map(([id, { sequence }]) => [compact(id), sequence]),
    l: position.levels.map((level) => [level.snapshot.text, level.lastId]),
  };
  const body = Buffer.from(JSON.stringify(wire)).toString('base64url');
  return `${body}.${mac(secret, viewerId, body).toString('base64url')}`;
}

const malformed = () =>
  new ValidationError([
    {
      path: ['after'],
      message: 'is not a cursor this server issued to you (pass a message cursor unchanged)',
    },
  ]);

/** Reads a cursor back; ValidationError (BAD_USER_INPUT) for anything this server did not issue to this viewer. */
export function decodeCursor(secret: string, viewerId: string, cursor: string): Position {
  if (cursor.length > CURSOR_MAX_CHARS) throw malformed();
  const [body, signature, extra] = cursor.split('.');
  if (!body || !signature || extra !== undefined) throw malformed();
  const expected = mac(secret, viewerId, body);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw malformed();
  let wire: Wire;
  try {
    wire = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Wire;
  } catch {
    throw malformed();
  }
  const base = wire.v === 1 && typeof wire.b === 'string' ? parseSnapshot(wire.b) : null;
  if (!base || !Array.isArray(wire.d) || !Array.isArray(wire.l) || !Number.isInteger(wire.t))
    throw malformed();
  const delivered: Position['delivered'] = new Map();
  for (const entry of wire.d) {
    const [hex, sequence] = Array.isArray(entry) ? entry : [];
    if (typeof hex !== 'string' || !/^[0-9a-f]{32}$/.test(hex) || !Number.isInteger(sequence))
      throw malformed();
    delivered.set(expand(hex), { sequence: sequence as number, xid: null });
  }
  const levels: Position['levels'] = [];
  for (const entry of wire.l) {
    const [text, lastId] = Array.isArray(entry) ? entry : [];
    const snapshot = typeof text === 'string' ? parseSnapshot(text) : null;
    if (!snapshot || typeof lastId !== 'string' || !UUID.test(lastId)) throw malformed();
    levels.push({ snapshot, lastId });
  }
  return { base, takenAt: wire.t * 1000, delivered, levels };
}
