import parsePrometheusTextFormat from 'parse-prometheus-text-format';

/** One scrape: the text as served and its families as the parser read them. */
export interface Scrape {
  text: string;
  families: ReturnType<typeof parsePrometheusTextFormat>;
}

/** GET /metrics of the process serving `url` (any URL on its port). */
export async function fetchMetrics(url: string, token?: string): Promise<Response> {
  return fetch(new URL('/metrics', url), token ? { headers: { authorization: `Bearer ${token}` } } : {});
}

/** Scrapes /metrics and parses it with a Prometheus text-format parser (fails on a bad answer). */
export async function scrape(url: string, token?: string): Promise<Scrape> {
  const response = await fetchMetrics(url, token);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  const contentType = response.headers.get('content-type') ?? '';
  if (!contentType.startsWith('text/plain; version=0.0.4'))
    throw new Error(`/metrics content type ${contentType}`);
  const text = await response.text();
  return { text, families: parsePrometheusTextFormat(text) };
}

const matches = (labels: Record<string, string> | undefined, wanted: Record<string, string>) =>
  Object.entries(wanted).every(([key, value]) => labels?.[key] === value);

/** The value of the counter or gauge sample with these labels (0 when absent). */
export function sampleOf({ families }: Scrape, name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  const sample = family?.metrics.find((m) => matches(m.labels, labels));
  return sample?.value === undefined ? 0 : Number(sample.value);
}

/**
 * The count, sum and buckets of the histogram series with these labels (zeros when absent).
 * parse-prometheus-text-format 1.1 merges the series of a labelled histogram into one, so the
 * series is picked first (each line's labels read by the parser) and parsed alone, its labels
 * other than `le` left out.
 */
export function histogramOf(
  { text }: Scrape,
  name: string,
  labels: Record<string, string> = {},
): { count: number; sum: number; buckets: Record<string, number> } {
  const lines = text.split('\n').flatMap((line) => {
    const [sample] = line.startsWith(`${name}_`) ? parsePrometheusTextFormat(`${line}\n`) : [];
    const point = sample?.metrics[0];
    if (!sample || !point || !matches(point.labels, labels)) return [];
    const le = point.labels?.le;
    return [`${sample.name}${le === undefined ? '' : `{le="${le}"}`} ${point.value}`];
  });
  const [series] = parsePrometheusTextFormat(`# TYPE ${name} histogram\n${lines.join('\n')}\n`);
  const point = series?.metrics[0];
  const buckets = Object.fromEntries(Object.entries(point?.buckets ?? {}).map(([le, n]) => [le, Number(n)]));
  return { count: Number(point?.count ?? 0), sum: Number(point?.sum ?? 0), buckets };
}

/** Every label value of every opsgraph_ sample (each line read by the parser), with its metric and label names. */
export function labelValues({ text }: Scrape): { metric: string; label: string; value: string }[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('opsgraph_'))
    .flatMap((line) =>
      parsePrometheusTextFormat(`${line}\n`).flatMap((family) =>
        family.metrics.flatMap((sample) =>
          Object.entries(sample.labels ?? {}).map(([label, value]) => ({
            metric: family.name,
            label,
            value,
          })),
        ),
      ),
    );
}
