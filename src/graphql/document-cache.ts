/** The cache interface Yoga's parser cache uses (documents and parse errors by query text). */
export interface DocumentCache<T> {
  get(key: string): T | undefined;
  set(key: string, value: T): void;
}

export interface DocumentCacheOptions {
  /** Most entries kept. */
  maxEntries: number;
  /** Most source bytes (UTF-16 length of the keys) kept in total; a larger text is not cached. */
  maxBytes: number;
}

/**
 * A least-recently-used cache bounded by entry count and by the total length of the query texts it
 * holds, so distinct large documents cannot grow the heap: Yoga's default keeps 1,024 entries of
 * any size for an hour. A parsed document takes roughly 35× its text on the heap (2.6 MB for a
 * 75 KB document), so the default 1 MiB of text bounds the cache near 40 MB.
 */
export function createDocumentCache<T>({ maxEntries, maxBytes }: DocumentCacheOptions): DocumentCache<T> {
  const entries = new Map<string, T>();
  let bytes = 0;
  return {
    get(key) {
      const value = entries.get(key);
      if (value === undefined) return undefined;
      entries.delete(key);
      entries.set(key, value);
      return value;
    },
    set(key, value) {
      if (maxEntries === 0 || key.length > maxBytes) return;
      if (entries.delete(key)) bytes -= key.length;
      entries.set(key, value);
      bytes += key.length;
      for (const oldest of entries.keys()) {
        if (entries.size <= maxEntries && bytes <= maxBytes) break;
        entries.delete(oldest);
        bytes -= oldest.length;
      }
    },
  };
}
