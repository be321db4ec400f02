import { builder } from './builder.ts';

/**
 * Connections, one rule for all of them (issue 11, point 7): the connection of a node type `X` is
 * `XConnection`, its edge `XEdge`, shared by every field that pages through X; every connection
 * has `totalCount`.
 *
 * `totalCount` is an exact count bounded by {@link COUNT_CAP}: the count reads at most that many
 * rows (`SELECT count(*) FROM (… LIMIT cap)`), so it costs no more than a few pages however many
 * rows match, and it uses the same filter and visibility rule as the page — it never counts a row
 * the viewer may not see. A value equal to the cap means "that many or more".
 */

/** Most rows a `totalCount` counts; a count that reaches it is reported as the cap. */
export const COUNT_CAP = 10_000;

/** A connection's total: a number, or a function that counts when `totalCount` is selected. */
export type TotalCount = number | (() => number | Promise<number>);

builder.globalConnectionField('totalCount', (t) =>
  t.int({
    description: `How many nodes the connection holds across all pages (same filter and visibility as the page), counted exactly up to ${COUNT_CAP}; ${COUNT_CAP} means ${COUNT_CAP} or more.`,
    resolve: (connection) => {
      const { totalCount } = connection as { totalCount?: TotalCount };
      if (totalCount === undefined) throw new Error('connection resolved without a totalCount');
      return typeof totalCount === 'function' ? totalCount() : totalCount;
    },
  }),
);

/** `count` (of a query that reads at most {@link COUNT_CAP} rows), never above the cap. */
export const capped = async (count: number | Promise<number>): Promise<number> =>
  Math.min(await count, COUNT_CAP);

/**
 * The names and descriptions of the shared `<name>Connection` and `<name>Edge` types of one node
 * type, for `builder.connectionObject({ type, ...named.connection }, named.edge)`; `plural` names
 * the nodes in descriptions ("operations").
 */
export function connectionNames(name: string, plural: string) {
  return {
    connection: {
      name: `${name}Connection`,
      description: `A page of ${plural} (a Relay cursor connection), with the total count.`,
    },
    edge: { name: `${name}Edge`, description: `One of the ${plural} in a page, with its cursor.` },
  };
}
