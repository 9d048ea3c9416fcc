/**
 * What an operator sees of a running service: the probes over a source that starts down and comes
 * up, and /metrics as read by promtool and scraped by a real Prometheus (loopback).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import type { EntityEvent } from '../../src/model.js';
import { type Service, startService } from '../../src/service.js';
import { type OpenStackServer, startOpenStackServer } from '../support/openstack-server.js';
import { prometheusMissing, promtoolCheck, startPrometheus } from '../support/prometheus-scraper.js';
import { waitFor } from '../support/wait.js';

let os: OpenStackServer;
let service: Service | undefined;
let events: EntityEvent[];
let logs: string;

async function start(uses = ['openstack.nova', 'openstack.neutron'], summaryIntervalMs = 0): Promise<Service> {
  const config = await parseConfig(
    {
      listen: '127.0.0.1:0',
      sources: uses.map((use) => ({ name: use.split('.')[1], use, interval: '200ms', timeout: '10s', requestTimeout: '2s', region: 'RegionOne', auth: os.auth })),
      sinks: [],
    },
    process.cwd(),
  );
  logs = '';
  service = await startService(config, createLogger('debug', (line) => (logs += line)), { summaryIntervalMs });
  events = [];
  // Polls answer over HTTP, so nothing can have been emitted yet.
  service.sync.entity$.subscribe((e) => events.push(e));
  return service;
}

const get = (path: string, init?: RequestInit): Promise<Response> => fetch(`http://${service!.address}${path}`, { ...init, signal: AbortSignal.timeout(5000) });

beforeEach(async () => {
  os = await startOpenStackServer();
});
afterEach(async () => {
  await service?.stop();
  service = undefined;
  await os.close();
});

describe('probes', () => {
  it('/readyz is 503 with the reason while a source is down, 200 once it delivered; /livez stays 200', async () => {
    // Keystone refuses every token at first: neither source can poll.
    os.inject({ when: (path) => path.endsWith('/auth/tokens'), status: 503 });
    const s = await start();
    expect(s.address).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
    await waitFor('both sources down', () => Object.values(s.sync.health()).every((h) => h.status === 'down'));

    const notReady = await get('/readyz');
    expect(notReady.status).toBe(503);
    const reasons = await notReady.text();
    expect(reasons).toMatch(/^nova: down \(.*503.*\)$/m);
    expect(reasons).toMatch(/^neutron: down/m);
    expect(reasons).not.toContain(os.password);
    expect((await get('/livez')).status).toBe(200);
    expect((await get('/health')).status).toBe(503);

    os.clearFaults();
    await waitFor('/readyz to answer 200', async () => (await get('/readyz')).status === 200);
    expect(await (await get('/readyz?verbose=1')).text()).toBe('ready\n');
    expect((await get('/livez')).status).toBe(200);
    expect((await get('/health')).status).toBe(200);
    // The OpenStack sources log what they read through the same mechanism as the REST ones (progress.test.ts).
    expect(logs).toMatch(/"msg":"first complete snapshot","source":"nova","entities":\{"nova\.instance":3,.*"records":\d+,"pages":[1-9]\d*,"bytes":[1-9]\d*,"readMs":\d+,"durationMs":\d+/);
    await waitFor('a later snapshot, at debug', () => /"level":"debug","msg":"snapshot","source":"nova","entities":\{.*"pages":[1-9]/.test(logs));
  });

  it('answers 404 to unknown paths, 405 to other methods, ignores query strings, and HEAD has no body', async () => {
    await start(['openstack.nova'], 50);
    expect((await get('/nope')).status).toBe(404);
    expect((await get('/livez/')).status).toBe(404);
    const post = await get('/metrics', { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await get('/livez', { method: 'DELETE' })).status).toBe(405);
    const head = await get('/livez?x=1', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await get('/metrics?name[]=x')).headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    // The one-line summary (the CLI logs it each minute).
    const summary = await waitFor('a summary line with the first snapshot in it', () => /^\{.*"msg":"summary".*"entities":[1-9].*$/m.exec(logs)?.[0]);
    expect(JSON.parse(summary)).toMatchObject({ level: 'info', events: { create: expect.any(Number), update: 0, delete: 0 }, sourcesDown: [], sinkBacklog: 0 });
  });
});

const missing = prometheusMissing();
if (missing) console.warn(`SKIPPED /metrics against promtool and Prometheus: missing ${missing}`);

describe.skipIf(missing !== undefined)('/metrics', () => {
  it('is accepted by promtool and by a real Prometheus scraping it, and its counters match the events seen', { timeout: 90_000 }, async () => {
    const s = await start();
    await waitFor('first snapshots', () => s.notReady().length === 0);
    const text = await (await get('/metrics')).text();

    // promtool parses the whole exposition; its only complaints may be about prom-client's own
    // default gauges named *_total (nodejs_active_handles_total…), none about ours.
    const { code, output } = await promtoolCheck(text);
    const complaints = output.split('\n').filter((l) => l.trim() !== '' && !/^nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(l));
    expect(complaints).toEqual([]);
    expect([0, 3]).toContain(code); // 3: lint warnings only (a parse error is 1)
    for (const name of ['process_cpu_seconds_total', 'nodejs_heap_size_used_bytes', 'synchronizer_events_total', 'synchronizer_entities', 'synchronizer_poll_duration_seconds_bucket', 'synchronizer_source_last_success_timestamp_seconds', 'synchronizer_sink_backlog_events']) {
      expect(text).toMatch(new RegExp(`^${name}[{ ]`, 'm'));
    }
    expect(text).not.toContain(os.password);

    const prometheus = await startPrometheus(s.address!);
    try {
      type Target = { health: string; lastError: string; scrapeUrl: string };
      const target = await waitFor(
        'Prometheus to scrape the service',
        async () => (await prometheus.api<{ activeTargets: Target[] }>('targets')).activeTargets.find((t) => t.health !== 'unknown'),
        30_000,
      );
      expect(target).toMatchObject({ health: 'up', lastError: '' });

      // Every family in the exposition is in Prometheus (histograms as _bucket/_sum/_count).
      const exposed = new Set([...text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)].map((m) => m[1]!));
      const stored = new Set(await prometheus.api<string[]>('label/__name__/values'));
      expect([...exposed].filter((n) => !stored.has(n))).toEqual([]);

      // A change in the cloud: Prometheus's count of events, by action and type, is what we saw.
      const first = events.length;
      const added = structuredClone(os.state.servers[0]!) as Record<string, unknown>;
      added.id = 'b0b0b0b0-0000-4000-8000-00000000beef';
      os.state.servers.push(added);
      await waitFor('the create event', () => events.length > first);
      const seen = events.length;
      type Sample = { metric: Record<string, string>; value: [number, string] };
      const byTypeAction = (list: EntityEvent[]): Record<string, number> =>
        list.reduce<Record<string, number>>((acc, e) => ({ ...acc, [`${e.entity.type} ${e.action}`]: (acc[`${e.entity.type} ${e.action}`] ?? 0) + 1 }), {});
      const scraped = await waitFor(
        'Prometheus to hold every event seen',
        async () => {
          const result = (await prometheus.api<{ result: Sample[] }>('query?query=synchronizer_events_total')).result;
          const total = result.reduce((n, r) => n + Number(r.value[1]), 0);
          return total === seen ? result : undefined;
        },
        30_000,
      );
      expect(Object.fromEntries(scraped.map((r) => [`${r.metric.type} ${r.metric.action}`, Number(r.value[1])]))).toEqual(byTypeAction(events));
      const entities = (await prometheus.api<{ result: Sample[] }>('query?query=synchronizer_entities{type="nova.instance"}')).result;
      expect(entities.map((r) => Number(r.value[1]))).toEqual([os.state.servers.length]);
    } finally {
      await prometheus.stop();
    }
  });
});
