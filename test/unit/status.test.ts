/**
 * The status page's API and the listener's route table, over a real loopback HTTP server and a
 * hub fed one snapshot: search, an entity with its parents and children, the topology around an
 * instance (host, zone, port → network, volume, alarms), and routes added by another part.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Subject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EntityDraft, Observation } from '../../src/model.js';
import { Routes } from '../../src/routes.js';
import type { SourceSignal } from '../../src/source.js';
import { addStatusRoutes } from '../../src/status.js';
import { type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { waitFor } from '../support/wait.js';

const ref = (type: string, id: string) => ({ type, id });
const topology: EntityDraft[] = [
  { type: 'nova.zone', id: 'nova', state: 'available' },
  { type: 'nova.host', id: 'compute-1', state: 'up', parents: [ref('nova.zone', 'nova')] },
  { type: 'nova.instance', id: 'vm-1', name: 'web-1', state: 'active', parents: [ref('nova.host', 'compute-1')] },
  { type: 'nova.instance', id: 'vm-2', name: 'db-1', state: 'active', parents: [ref('nova.host', 'compute-1')] },
  { type: 'neutron.network', id: 'net-1', name: 'private', state: 'active' },
  { type: 'neutron.port', id: 'port-1', state: 'active', parents: [ref('nova.instance', 'vm-1'), ref('neutron.network', 'net-1')] },
  { type: 'cinder.volume', id: 'vol-1', name: 'data', state: 'in-use', parents: [ref('nova.instance', 'vm-1')] },
  { type: 'nagios.service', id: 'compute-1/load', state: 'critical', parents: [ref('nova.host', 'compute-1')] },
  { type: 'alertmanager.alert', id: 'abc', state: 'firing', parents: [ref('nova.instance', 'vm-1')] },
];

let sync: Synchronizer;
let server: Server;
let base: string;
const signal$ = new Subject<SourceSignal<EntityDraft>>();
const routes = new Routes();

beforeAll(async () => {
  sync = createSynchronizer({ sources: [{ name: 'topology', types: [...new Set(topology.map((e) => e.type))], signal$, map: (r: unknown) => r as EntityDraft }] });
  addStatusRoutes(routes, sync, { ready: (h) => h.status === 'up' });
  // What a webhook source would do: its own path and method on the same listener.
  routes.add('/hooks/alertmanager', (_req, res) => void res.writeHead(202).end(), ['POST']);
  sync.start();
  const snapshot: Observation<EntityDraft> = { kind: 'snapshot', source: 'topology', types: [...new Set(topology.map((e) => e.type))], at: new Date().toISOString(), records: topology };
  signal$.next({ kind: 'health', status: 'up' });
  signal$.next(snapshot);
  server = createServer((req, res) => void routes.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  sync.stop();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const json = async <T>(path: string): Promise<T> => (await fetch(`${base}${path}`)).json() as Promise<T>;

describe('status API', () => {
  it('counts entities by type and tells which sources are ready', async () => {
    const status = await json<{ counts: Record<string, number>; sources: Array<{ source: string; status: string; ready: boolean }> }>('/api/status');
    expect(status.counts).toMatchObject({ 'nova.instance': 2, 'nova.host': 1, 'nagios.service': 1 });
    expect(status.sources).toEqual([expect.objectContaining({ source: 'topology', status: 'up', ready: true })]);
  });

  it('finds entities by key or name, case-insensitively', async () => {
    const byName = await json<{ total: number; entities: Array<{ key: string }> }>('/api/entities?q=WEB');
    expect(byName.entities.map((e) => e.key)).toEqual(['nova.instance:vm-1']);
    const byKey = await json<{ total: number; entities: Array<{ key: string }> }>('/api/entities?q=nova.instance:&limit=1');
    expect(byKey).toMatchObject({ total: 2, entities: [expect.anything()] });
  });

  it('shows an entity with its parents and its children (both ways of the relation)', async () => {
    const host = await json<{ entity: { key: string }; parents: Array<{ key: string; known: boolean }>; children: Array<{ key: string }> }>('/api/entity?key=nova.host:compute-1');
    expect(host.parents).toEqual([expect.objectContaining({ key: 'nova.zone:nova', known: true })]);
    expect(host.children.map((c) => c.key)).toEqual(['nagios.service:compute-1/load', 'nova.instance:vm-1', 'nova.instance:vm-2']);
    const missing = await fetch(`${base}/api/entity?key=nova.instance:nope`);
    expect(missing.status).toBe(404);
  });

  it('draws the topology around an instance: host and zone above, port, network, volume and alarms around it, not its siblings', async () => {
    const graph = await json<{ nodes: Array<{ key: string; role: string }>; edges: Array<{ from: string; to: string }> }>('/api/topology?key=nova.instance:vm-1');
    expect(Object.fromEntries(graph.nodes.map((n) => [n.key, n.role]))).toEqual({
      'nova.instance:vm-1': 'self',
      'nova.host:compute-1': 'ancestor',
      'nova.zone:nova': 'ancestor',
      'neutron.port:port-1': 'descendant',
      'cinder.volume:vol-1': 'descendant',
      'alertmanager.alert:abc': 'alarm',
      'neutron.network:net-1': 'related',
      'nagios.service:compute-1/load': 'alarm',
    });
    expect(graph.edges).toEqual(
      expect.arrayContaining([
        { from: 'nova.instance:vm-1', to: 'nova.host:compute-1' },
        { from: 'nova.host:compute-1', to: 'nova.zone:nova' },
        { from: 'neutron.port:port-1', to: 'neutron.network:net-1' },
        { from: 'nagios.service:compute-1/load', to: 'nova.host:compute-1' },
      ]),
    );
  });

  it('streams the latest events, then new ones as they happen', async () => {
    const controller = new AbortController();
    const res = await fetch(`${base}/api/events`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    let text = '';
    const reader = res.body!.getReader();
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    })().catch(() => undefined);
    await waitFor('the replayed events', () => text.includes('"key":"alertmanager.alert:abc"'));
    signal$.next({ kind: 'change', source: 'topology', action: 'upsert', at: new Date().toISOString(), record: { type: 'nova.instance', id: 'vm-2', name: 'db-1', state: 'error', parents: [ref('nova.host', 'compute-1')] } });
    await waitFor('the new event', () => /event: entity\ndata: \{"action":"update","origin":"notification","key":"nova\.instance:vm-2".*"state":"ERROR"/.test(text));
    controller.abort();
    await reading;
  });
});

describe('Routes', () => {
  it('serves a route another part added, with its own methods; refuses a path twice', async () => {
    expect((await fetch(`${base}/hooks/alertmanager`, { method: 'POST', body: '[]' })).status).toBe(202);
    const get = await fetch(`${base}/hooks/alertmanager`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(() => routes.add('/api/status', () => undefined)).toThrow('route /api/status is already served');
    expect(() => routes.add('metrics', () => undefined)).toThrow('a path starts with /');
  });

  it('answers 500 naming the path when a handler throws', async () => {
    routes.add('/broken', () => {
      throw new Error('boom');
    });
    const res = await fetch(`${base}/broken`);
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('/broken failed: boom\n');
  });
});
