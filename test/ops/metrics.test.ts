import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp } from '../support/app.ts';
import { settleBatch, startBatchOk } from '../support/batches.ts';
import { gql, subscribeSse, subscribeWs } from '../support/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { CancelOperation, OperationUpdated, Viewer } from '../support/documents.ts';
import { useServer } from '../support/fixtures.ts';
import { startOperation, startSleep, waitForRow, waitForTerminal } from '../support/operations.ts';
import { freePort } from '../support/outages.ts';
import { fetchMetrics, histogramOf, labelValues, type Scrape, sampleOf, scrape } from './scrape.ts';

/**
 * /metrics (issue 12, point 2): Prometheus text format, read with a real parser; its counters move
 * as operations run; a token can be required; it can be turned off; no label carries an id.
 */
const server = useServer();
const url = () => server.app.url;
const SLEEP = 'diagnostics.sleep';

/** Scrapes until `check` passes: counters move in the process that committed, just after commit. */
async function scrapeUntil(check: (families: Scrape) => void, timeout = 10_000): Promise<Scrape> {
  let last: Scrape | undefined;
  await vi.waitFor(
    async () => {
      last = await scrape(url());
      check(last);
    },
    { timeout, interval: 50 },
  );
  return last as Scrape;
}

describe('/metrics', () => {
  it('parses as Prometheus text format, with every documented metric family and event-loop delay', async () => {
    const families = await scrape(url());
    const names = new Set(families.families.map((family) => family.name));
    for (const name of [
      'opsgraph_operations_started_total',
      'opsgraph_operations_finished_total',
      'opsgraph_operation_duration_seconds',
      'opsgraph_operation_wait_seconds',
      'opsgraph_operation_attempts_total',
      'opsgraph_operation_retries_total',
      'opsgraph_operations_running',
      'opsgraph_repairs_total',
      'opsgraph_queue_jobs',
      'opsgraph_queue_oldest_ready_age_seconds',
      'opsgraph_batch_size_items',
      'opsgraph_batch_duration_seconds',
      'opsgraph_batch_items_total',
      'opsgraph_batch_reference_failures_total',
      'opsgraph_subscriptions_active',
      'opsgraph_websocket_connections',
      'opsgraph_refusals_total',
      'opsgraph_graphql_request_duration_seconds',
      'opsgraph_http_request_duration_seconds',
      'opsgraph_metrics_faults_total',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(names, name).toContain(name);
    }
    // Every job type has its queue gauges, read from pg-boss.
    expect(
      sampleOf(families, 'opsgraph_queue_jobs', { type: SLEEP, state: 'queued' }),
    ).toBeGreaterThanOrEqual(0);
    const queueTypes = families.families
      .find((family) => family.name === 'opsgraph_queue_oldest_ready_age_seconds')
      ?.metrics.map((sample) => sample.labels?.type);
    expect(queueTypes).toContain(SLEEP);
    expect(queueTypes).toContain('batch');
  });

  it('counts operations started and finished by status, with their durations', async () => {
    const before = await scrape(url());
    const started = () => sampleOf(before, 'opsgraph_operations_started_total', { type: SLEEP });
    const finished = (families: Scrape, status: string) =>
      sampleOf(families, 'opsgraph_operations_finished_total', { type: SLEEP, status });
    const durations = (families: Scrape, status: string) =>
      histogramOf(families, 'opsgraph_operation_duration_seconds', { type: SLEEP, status });
    const attempts = sampleOf(before, 'opsgraph_operation_attempts_total', { type: SLEEP });

    const completed = await startOperation(url(), server.tokens.alice, SLEEP, { steps: 2, stepMs: 150 });
    const failed = await startOperation(url(), server.tokens.alice, SLEEP, {
      steps: 3,
      stepMs: 10,
      failAtStep: 2,
    });
    const cancelled = await startOperation(url(), server.tokens.alice, SLEEP, { steps: 100, stepMs: 100 });
    await waitForRow(server.db, cancelled.uuid, (row) => row.status === 'PROCESSING', 10_000);
    // While it runs: this process's running gauge counts it.
    await scrapeUntil((families) =>
      expect(sampleOf(families, 'opsgraph_operations_running', { type: SLEEP })).toBeGreaterThanOrEqual(1),
    );
    const cancel = await gql(url(), CancelOperation, { id: cancelled.id }, server.tokens.alice);
    expect(cancel.data?.cancelOperation.__typename).toBe('CancelOperationSuccess');
    for (const { uuid } of [completed, failed, cancelled]) await waitForTerminal(server.db, uuid, 15_000);

    const after = await scrapeUntil((families) => {
      for (const status of ['COMPLETED', 'FAILED', 'CANCELLED']) {
        expect(finished(families, status), status).toBe(finished(before, status) + 1);
      }
    });
    expect(sampleOf(after, 'opsgraph_operations_started_total', { type: SLEEP })).toBe(started() + 3);
    expect(sampleOf(after, 'opsgraph_operation_attempts_total', { type: SLEEP })).toBe(attempts + 3);
    for (const status of ['COMPLETED', 'FAILED', 'CANCELLED']) {
      expect(durations(after, status).count, status).toBe(durations(before, status).count + 1);
    }
    // The completed one took its 2 × 150 ms at least: its duration is in the sum, not in the 0.25 s bucket.
    const done = durations(after, 'COMPLETED');
    expect(done.sum - durations(before, 'COMPLETED').sum).toBeGreaterThanOrEqual(0.3);
    expect(done.buckets['0.25']).toBe(durations(before, 'COMPLETED').buckets['0.25'] ?? 0);
    expect(
      histogramOf(after, 'opsgraph_operation_wait_seconds', { type: SLEEP }).count,
    ).toBeGreaterThanOrEqual(3);
    expect(sampleOf(after, 'opsgraph_operations_running', { type: SLEEP })).toBe(0);

    // The requests themselves, by operation name and kind, and by route.
    expect(
      histogramOf(after, 'opsgraph_graphql_request_duration_seconds', {
        operation: 'StartOperation',
        kind: 'mutation',
      }).count,
    ).toBeGreaterThanOrEqual(3);
    expect(
      histogramOf(after, 'opsgraph_http_request_duration_seconds', {
        route: '/graphql',
        method: 'POST',
        status: '200',
      }).count,
    ).toBeGreaterThanOrEqual(4);
  });

  it('counts retries', async () => {
    const before = await scrape(url());
    const flaky = await startOperation(url(), server.tokens.alice, 'diagnostics.flaky', {
      steps: 1,
      stepMs: 1,
      failAtStep: 1,
      failAttempts: 1,
    });
    expect((await waitForTerminal(server.db, flaky.uuid, 15_000)).status).toBe('COMPLETED');
    await scrapeUntil((families) => {
      expect(sampleOf(families, 'opsgraph_operation_retries_total', { type: 'diagnostics.flaky' })).toBe(
        sampleOf(before, 'opsgraph_operation_retries_total', { type: 'diagnostics.flaky' }) + 1,
      );
      expect(sampleOf(families, 'opsgraph_operation_attempts_total', { type: 'diagnostics.flaky' })).toBe(
        sampleOf(before, 'opsgraph_operation_attempts_total', { type: 'diagnostics.flaky' }) + 2,
      );
    });
  });

  it('counts batches: size, duration, items by outcome and reference failures', async () => {
    const before = await scrape(url());
    const echo = (id: string, input: Record<string, unknown>, dependsOn: string[] = []) => ({
      id,
      type: 'diagnostics.echo',
      input,
      dependsOn,
    });
    const { id } = await startBatchOk(url(), server.tokens.alice, {
      atomic: false,
      items: [echo('a', { value: { n: 1 } }), echo('b', { value: '$ref:a.value.missing' }, ['a'])],
    });
    const batch = await settleBatch(url(), server.tokens.alice, id);
    expect(batch.status).toBe('COMPLETED');
    const outcome = (families: Scrape, name: string) =>
      sampleOf(families, 'opsgraph_batch_items_total', { outcome: name });
    const after = await scrapeUntil((families) => {
      expect(outcome(families, 'COMPLETED')).toBe(outcome(before, 'COMPLETED') + 1);
      expect(outcome(families, 'FAILED')).toBe(outcome(before, 'FAILED') + 1);
    });
    const size = histogramOf(after, 'opsgraph_batch_size_items');
    expect(size.count).toBe(histogramOf(before, 'opsgraph_batch_size_items').count + 1);
    expect(size.sum).toBe(histogramOf(before, 'opsgraph_batch_size_items').sum + 2);
    expect(histogramOf(after, 'opsgraph_batch_duration_seconds', { status: 'COMPLETED' }).count).toBe(
      histogramOf(before, 'opsgraph_batch_duration_seconds', { status: 'COMPLETED' }).count + 1,
    );
    expect(sampleOf(after, 'opsgraph_batch_reference_failures_total', { code: 'BAD_REFERENCE' })).toBe(
      sampleOf(before, 'opsgraph_batch_reference_failures_total', { code: 'BAD_REFERENCE' }) + 1,
    );
    // Batch items are started with their batch, counted by their own type.
    expect(sampleOf(after, 'opsgraph_operations_started_total', { type: 'diagnostics.echo' })).toBe(
      sampleOf(before, 'opsgraph_operations_started_total', { type: 'diagnostics.echo' }) + 2,
    );
  });

  it('counts WebSocket connections and subscriptions (WebSocket and SSE) while they are open', async () => {
    const running = await startSleep(url(), server.tokens.alice, { steps: 100, stepMs: 100 });
    const sub = subscribeWs(url(), OperationUpdated, { id: running.id }, server.tokens.alice);
    const sse = subscribeSse(url(), OperationUpdated, { id: running.id }, server.tokens.alice);
    await sub.waitFor(1);
    await sse.waitFor(1);
    await scrapeUntil((families) => {
      expect(sampleOf(families, 'opsgraph_subscriptions_active', { transport: 'ws' })).toBe(1);
      expect(sampleOf(families, 'opsgraph_subscriptions_active', { transport: 'sse' })).toBe(1);
      expect(sampleOf(families, 'opsgraph_websocket_connections')).toBe(1);
    });
    await gql(url(), CancelOperation, { id: running.id }, server.tokens.alice);
    await sub.done;
    await sse.done;
    sub.close();
    sse.close();
    await scrapeUntil((families) => {
      expect(sampleOf(families, 'opsgraph_subscriptions_active', { transport: 'ws' })).toBe(0);
      expect(sampleOf(families, 'opsgraph_subscriptions_active', { transport: 'sse' })).toBe(0);
      expect(sampleOf(families, 'opsgraph_websocket_connections')).toBe(0);
    });
  });

  it('counts refusals by limit', async () => {
    const before = sampleOf(await scrape(url()), 'opsgraph_refusals_total', { limit: 'TOO_MANY_ALIASES' });
    const aliases = Array.from({ length: 60 }, (_, i) => `a${i}: viewer { name }`).join(' ');
    const response = await fetch(url(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.tokens.alice}` },
      body: JSON.stringify({ query: `query ManyAliases { ${aliases} }` }),
    });
    expect(response.status).toBe(400);
    const after = await scrape(url());
    expect(sampleOf(after, 'opsgraph_refusals_total', { limit: 'TOO_MANY_ALIASES' })).toBe(before + 1);
  });

  it('keeps labels bounded: no label value is an id, types come from the registry, names are capped', async () => {
    // Client-chosen operation names: a valid one is kept, an overlong one is "other".
    await gql(url(), Viewer, {}, server.tokens.alice);
    const long = `Q${'x'.repeat(100)}`;
    await fetch(url(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.tokens.alice}` },
      body: JSON.stringify({ query: `query ${long} { viewer { name } }` }),
    });
    // A request without a token never adds a name: anonymous clients cannot fill the places.
    const stranger = await fetch(url(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'query StrangerNamesThis { viewer { name } }' }),
    });
    expect(stranger.status).toBe(200);
    const families = await scrape(url());
    const values = labelValues(families);
    const ids = await server.db.query<{ id: string }>(
      'SELECT id::text FROM "Operation" UNION SELECT id::text FROM "User"',
    );
    expect(ids.length).toBeGreaterThan(0);
    const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
    for (const { metric, label, value } of values) {
      expect(value, `${metric}{${label}}`).not.toMatch(uuid);
      for (const { id } of ids) {
        expect(value).not.toContain(id);
        expect(value).not.toContain(Buffer.from(`Operation:${id}`).toString('base64'));
      }
      expect(value.length, `${metric}{${label}}`).toBeLessThanOrEqual(64);
    }
    const types = new Set(server.app.resources.registry.list().map((type) => type.name));
    for (const { value } of values.filter((v) => v.label === 'type')) {
      expect([...types, 'unknown']).toContain(value);
    }
    const operations = new Set(values.filter((v) => v.label === 'operation').map((v) => v.value));
    expect(operations).toContain('Viewer');
    expect(operations).toContain('other');
    expect(operations).not.toContain(long);
    expect(operations).not.toContain('StrangerNamesThis');
    // The same name from a signed-in client is learned.
    await fetch(url(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.tokens.alice}` },
      body: JSON.stringify({ query: 'query StrangerNamesThis { viewer { name } }' }),
    });
    const learned = labelValues(await scrape(url())).filter((v) => v.label === 'operation');
    expect(learned.map((v) => v.value)).toContain('StrangerNamesThis');
  });
});

describe('/metrics configured', () => {
  let db: TestDatabase | undefined;
  const apps: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await db?.drop();
  });

  it('with a token: 401 without it or with another, 200 with it; its own registry', async () => {
    const token = 'metrics-token-0123456789abcdef';
    const app = await startTestApp(db!.url, { metricsToken: token });
    apps.push(app);
    const none = await fetchMetrics(app.url);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await none.text()).not.toContain('opsgraph_');
    expect((await fetchMetrics(app.url, 'metrics-token-0123456789abcdeX')).status).toBe(401);
    const families = await scrape(app.url, token);
    // A second app in this process has its own registry: the first app's operations are not here.
    expect(sampleOf(families, 'opsgraph_operations_started_total', { type: SLEEP })).toBe(0);
  });

  it('off: /metrics is 404', async () => {
    const app = await startTestApp(db!.url, { metrics: 'off' });
    apps.push(app);
    const response = await fetchMetrics(app.url);
    expect(response.status).toBe(404);
    // The operator routes still answer.
    expect((await fetch(new URL('/health', app.url))).status).toBe(200);
  });

  it('is served on the worker port of a worker-only process', async () => {
    const port = await freePort();
    const app = await startTestApp(db!.url, { role: 'worker', workerPort: port });
    apps.push(app);
    const families = await scrape(`http://127.0.0.1:${port}/`);
    expect(families.families.map((family) => family.name)).toContain('opsgraph_operations_finished_total');
  });
});
