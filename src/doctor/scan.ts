/**
 * Walks a table in keyset pages of `pageSize` rows (each page one indexed statement), collecting
 * what `page` finds, until the table ends or `limit` findings were collected.
 */
export async function scanPages<K, T>(
  page: (after: K | null, size: number) => Promise<{ end: K | null; found: T[] }>,
  options: { limit: number; pageSize: number },
): Promise<T[]> {
  const found: T[] = [];
  let after: K | null = null;
  for (;;) {
    const next = await page(after, options.pageSize);
    found.push(...next.found);
    if (next.end === null || found.length >= options.limit) return found.slice(0, options.limit);
    after = next.end;
  }
}
