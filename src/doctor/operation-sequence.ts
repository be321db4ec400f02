import type { Resources } from '../resources.ts';
import { type Check, fixEach } from './finding.ts';
import { scanPages } from './scan.ts';

interface SequenceDrift {
  id: string;
  type: string;
  status: string;
  sequence: number;
  /** The highest sequence among its events (0 without events). */
  last: number;
}

/**
 * One keyset page of operations (by id) and those among them, unchanged for `minAgeSeconds`, whose
 * `sequence` differs from their last event's (one index probe of OperationEvent per row).
 */
async function sequencePage(r: Resources, after: string | null, size: number, minAgeSeconds: number) {
  const [row] = await r.db.$queryRawUnsafe<{ end: string | null; found: SequenceDrift[] }[]>(
    `WITH page AS (
       SELECT id, type, status, sequence, "updatedAt" FROM "Operation"
        WHERE $1::uuid IS NULL OR id > $1::uuid ORDER BY id LIMIT $2
     )
     SELECT (SELECT max(id::text) FROM page) AS "end",
            COALESCE((SELECT json_agg(d) FROM (
              SELECT p.id, p.type, p.status::text AS status, p.sequence, COALESCE(e.last, 0) AS last
                FROM page p
                LEFT JOIN LATERAL (SELECT max(sequence) AS last FROM "OperationEvent" WHERE "operationId" = p.id) e ON true
               WHERE p.sequence <> COALESCE(e.last, 0) AND p."updatedAt" < now() - make_interval(secs => $3)
            ) d), '[]'::json) AS found`,
    after,
    size,
    minAgeSeconds,
  );
  return { end: row?.end ?? null, found: row?.found ?? [] };
}

/**
 * Moves an operation's sequence up to its last event, only if it has not changed since it was read
 * (the next event a worker writes then takes the next free number instead of colliding).
 */
async function raiseSequence(r: Resources, drift: SequenceDrift): Promise<string> {
  const rows = await r.db.$queryRawUnsafe<{ sequence: number }[]>(
    `UPDATE "Operation" o SET sequence = e.last
       FROM (SELECT max(sequence) AS last FROM "OperationEvent" WHERE "operationId" = $1::uuid) e
      WHERE o.id = $1::uuid AND o.sequence = $2 AND e.last > o.sequence
      RETURNING o.sequence`,
    drift.id,
    drift.sequence,
  );
  return rows[0] ? `sequence set to ${rows[0].sequence}` : 'changed meanwhile; left alone';
}

/**
 * Operations whose `sequence` disagrees with their last event. Behind (an event exists beyond it):
 * `--fix` raises it to the last event. Ahead (events are missing): not fixable — events cannot be
 * made up, and lowering it would renumber what clients may already have seen.
 */
export const operationSequence: Check = {
  kind: 'operation-sequence',
  description: 'operations whose sequence disagrees with their last event (--fix raises one that is behind)',
  async run(r, options) {
    const drifts = await scanPages<string, SequenceDrift>(
      (after, size) => sequencePage(r, after, size, options.minAgeSeconds),
      options,
    );
    const finding = (d: SequenceDrift) => {
      const behind = d.last > d.sequence;
      return {
        kind: 'operation-sequence',
        subject: `Operation ${d.id}`,
        problem: `${d.type} ${d.status}: sequence ${d.sequence}, last event ${d.last}`,
        action: behind
          ? `set sequence to ${d.last}`
          : `not fixable: events ${d.last + 1}–${d.sequence} are missing`,
        fixable: behind,
      };
    };
    if (!options.fix) return drifts.map(finding);
    return fixEach(drifts, finding, (d) => raiseSequence(r, d));
  },
};
