import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { KubeApiServer, node, pod } from '../support/kube-apiserver.js';
import { waitFor } from '../support/wait.js';

/**
 * `use: kubernetes` through the real @kubernetes/client-node (lists and chunked watch streams over
 * loopback) against a server that follows the API's list/watch protocol (test/support/kube-apiserver.ts).
 */
const SERVER = ['5b1f4a7e-0c1d-4e55-9d6f-2b7f0c1e9a01', '5b1f4a7e-0c1d-4e55-9d6f-2b7f0c1e9a02', '5b1f4a7e-0c1d-4e55-9d6f-2b7f0c1e9a03'];

// Each test has a cluster of its own (beforeEach): its API server, its synchronizer, its events.
let api: KubeApiServer;
let sync: Synchronizer;
let dir: string | undefined;
let events: EntityEvent[] = [];

const seen = (): string => `health: ${JSON.stringify(sync.health().k8s)}; events: ${events.map((e) => `${e.action} ${e.entity.type}:${e.entity.name} ${e.entity.state}`).join(", ")}`;
const lists = (collection: 'nodes' | 'pods'): number => api.requests.filter((r) => r.collection === collection && !r.watch && r.query.continue === undefined).length;
const podUid = (name: string): string => sync.snapshot(['kubernetes.pod']).find((e) => e.name === `shop/${name}`)!.id;

/** The events after `from`, as `action name state` lines. */
const since = (from: number): string[] => events.slice(from).map((e) => `${e.action} ${e.entity.name} ${e.entity.state}`);

/**
 * Waits until a marker change (a pod created only for this) has come through: every change the
 * server made before it has then come through too, so the events so far are complete.
 */
let markers = 0;
async function settle(): Promise<void> {
  const name = `marker-${++markers}`;
  api.put('pods', pod('marker', name, undefined, 'Pending'));
  await waitFor(`marker ${name}`, () => events.some((e) => e.entity.name === `marker/${name}`), { context: seen });
}
const withoutMarkers = (lines: string[]): string[] => lines.filter((l) => !l.includes(' marker/'));

/** The cluster every test starts from: 3 nodes, pods web-1…web-5 running, listed and watched. */
beforeEach(async () => {
  events = [];
  api = new KubeApiServer();
  await api.start();
  dir = await mkdtemp(join(tmpdir(), 'sync-k8s-'));
  await writeFile(join(dir, 'kubeconfig'), api.kubeconfig());
  api.put('nodes', node('worker-1', SERVER[0]!));
  api.put('nodes', node('worker-2', SERVER[1]!));
  api.put('nodes', node('worker-3', SERVER[2]!.toUpperCase()));
  for (let i = 1; i <= 5; i++) api.put('pods', pod('shop', `web-${i}`, `worker-${(i % 3) + 1}`));
  const source = await createSource(
    // Pages of 2 items (continue tokens); watches the server ends every 2 s (resumed from the last version).
    { name: 'k8s', use: 'kubernetes', kubeconfig: 'kubeconfig', pageSize: 2, watchTimeout: '2s', backoff: '50ms', maxBackoff: '200ms' },
    { configDir: dir },
  );
  sync = createSynchronizer({ sources: [source] });
  const seenBy = events;
  sync.entity$.subscribe((e) => seenBy.push(e));
  sync.start();
  await waitFor('3 nodes and 5 pods', () => sync.snapshot(['kubernetes.node']).length === 3 && sync.snapshot(['kubernetes.pod']).length === 5, { context: seen });
});

afterEach(async () => {
  sync?.stop();
  await api?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('kubernetes source: list then watch through @kubernetes/client-node', () => {
  it('lists every page: nodes attached to their Nova servers, pods to their nodes', async () => {
    expect(events.every((e) => e.action === 'create' && e.origin === 'snapshot')).toBe(true);
    const worker1 = sync.snapshot(['kubernetes.node']).find((e) => e.id === 'worker-1')!;
    expect(worker1).toMatchObject({ key: 'kubernetes.node:worker-1', state: 'READY', source: 'k8s', parents: [{ type: 'nova.instance', id: SERVER[0] }] });
    expect(worker1.attributes).toMatchObject({ providerID: `openstack:///${SERVER[0]}`, internalIP: '10.0.0.5', kubeletVersion: 'v1.31.2', unschedulable: false });
    // The provider's upper-case uuid is Nova's lower-case id.
    expect(sync.snapshot(['kubernetes.node']).find((e) => e.id === 'worker-3')!.parents).toEqual([{ type: 'nova.instance', id: SERVER[2] }]);
    const web1 = sync.snapshot(['kubernetes.pod']).find((e) => e.name === 'shop/web-1')!;
    expect(web1).toMatchObject({ state: 'RUNNING', parents: [{ type: 'kubernetes.node', id: 'worker-2' }], attributes: { namespace: 'shop', ready: true, restarts: 0 } });
    // 5 pods in pages of 2: three requests, the last two with a continue token.
    const podLists = api.requests.filter((r) => r.collection === 'pods' && !r.watch);
    expect(podLists.map((r) => [r.query.limit, r.query.continue !== undefined])).toEqual([
      ['2', false],
      ['2', true],
      ['2', true],
    ]);
    expect(sync.health().k8s?.status).toBe('up');
  });

  it('watches from the list version with bookmarks: a change is one event, a heartbeat none', async () => {
    await waitFor('node and pod watches', () => api.openWatches('nodes') === 1 && api.openWatches('pods') === 1);
    const watch = api.requests.find((r) => r.collection === 'pods' && r.watch)!;
    expect(watch.query).toMatchObject({ allowWatchBookmarks: 'true', timeoutSeconds: '2' });
    expect(Number(watch.query.resourceVersion)).toBeGreaterThan(0);
    const from = events.length;
    api.put('pods', pod('shop', 'web-1', 'worker-2', 'Running', 1)); // a restart
    api.put('nodes', node('worker-2', SERVER[1]!)); // only heartbeat times move
    api.put('pods', pod('shop', 'web-6', 'worker-1', 'Pending'));
    api.remove('pods', 'web-5', 'shop');
    api.put('nodes', node('worker-1', SERVER[0]!, 'False'));
    await settle();
    expect(withoutMarkers(since(from))).toEqual(['update shop/web-1 RUNNING', 'create shop/web-6 PENDING', 'delete shop/web-5 RUNNING', 'update worker-1 NOT_READY']);
    expect(events.slice(from).every((e) => e.origin === 'notification')).toBe(true);
    expect(events.find((e) => e.entity.name === 'shop/web-1' && e.action === 'update')!.changed).toEqual(['attributes.restarts']);
  });

  it('resumes a watch that breaks mid-event from the last version: nothing lost, nothing twice', async () => {
    await waitFor('watches', () => api.openWatches('pods') === 1);
    const from = events.length;
    const podListsBefore = lists('pods');
    const lastSeen = api.resourceVersion; // settle() saw the marker: the watch has everything up to here
    const requestsBefore = api.requests.length;
    api.cutWatches('pods');
    api.put('pods', pod('shop', 'web-2', 'worker-3', 'Failed')); // half written, then the connection dies
    api.put('pods', pod('shop', 'web-3', 'worker-1', 'Running', 2)); // while the watch is down
    api.remove('pods', 'web-4', 'shop');
    await settle();
    expect(withoutMarkers(since(from))).toEqual(['update shop/web-2 FAILED', 'update shop/web-3 RUNNING', 'delete shop/web-4 RUNNING']);
    // Resumed, not relisted.
    expect(lists('pods')).toBe(podListsBefore);
    // From the last whole event: the half-written one is asked for again, nothing older.
    const resumed = api.requests.slice(requestsBefore).find((r) => r.collection === 'pods' && r.watch)!;
    expect(resumed.query.resourceVersion).toBe(String(lastSeen));
  });

  it('relists after 410 Gone as one complete snapshot: only what changed while blind, no spurious events', async () => {
    await waitFor('watches', () => api.openWatches('pods') === 1);
    api.put('pods', pod('shop', 'web-6', 'worker-1', 'Pending'));
    await settle();
    const from = events.length;
    const podListsBefore = lists('pods');
    const web6 = podUid('web-6');
    api.cutWatches('pods');
    api.put('pods', pod('shop', 'web-6', 'worker-1', 'Running')); // half written
    api.put('pods', pod('shop', 'web-7', 'worker-2', 'Running'));
    api.remove('pods', 'web-1', 'shop');
    api.compact(); // the watch's version is gone: 410 on resume
    await waitFor('relist', () => lists('pods') === podListsBefore + 1, { context: seen });
    await settle();
    const changes = withoutMarkers(since(from));
    expect(changes.sort()).toEqual(['create shop/web-7 RUNNING', 'delete shop/web-1 RUNNING', 'update shop/web-6 RUNNING'].sort());
    expect(events.slice(from).filter((e) => !e.entity.name!.startsWith('marker/')).every((e) => e.origin === 'snapshot')).toBe(true);
    expect(podUid('web-6')).toBe(web6);
    // The unchanged pods and every node: untouched.
    expect(sync.snapshot(['kubernetes.pod']).map((e) => e.name).filter((n) => !n!.startsWith('marker/')).sort()).toEqual(['shop/web-2', 'shop/web-3', 'shop/web-4', 'shop/web-5', 'shop/web-6', 'shop/web-7']);
  });

  it('a quiet collection resumes from its last BOOKMARK after compaction, without a relist', async () => {
    await waitFor('watches', () => api.openWatches('nodes') === 1 && api.openWatches('pods') === 1);
    api.put('nodes', node('worker-1', SERVER[0]!, 'False'));
    await waitFor('worker-1 NOT_READY', () => sync.snapshot(['kubernetes.node']).find((e) => e.id === 'worker-1')?.state === 'NOT_READY', { context: seen });
    const nodeListsBefore = lists('nodes');
    const from = events.length;
    // Pods churn; the node watch sees nothing of it but the bookmark that moves its version on.
    for (let i = 0; i < 5; i++) api.put('pods', pod('batch', `job-${i}`, 'worker-3', 'Succeeded'));
    api.bookmark();
    api.compact();
    api.cutWatches('nodes');
    api.put('nodes', node('worker-1', SERVER[0]!, 'True')); // half written on the node watch, after the bookmark
    await settle();
    await waitFor('worker-1 READY', () => events.slice(from).some((e) => e.entity.name === 'worker-1'), { context: seen });
    await settle();
    expect(lists('nodes')).toBe(nodeListsBefore);
    expect(events.slice(from).filter((e) => e.entity.name === 'worker-1').map((e) => `${e.action} ${e.entity.state} ${e.origin}`)).toEqual(['update READY notification']);
    expect(sync.snapshot(['kubernetes.pod']).filter((e) => e.name!.startsWith('batch/')).map((e) => e.state)).toEqual(Array(5).fill('SUCCEEDED'));
  });

  it('reopens the watch the server ends (timeoutSeconds) from the last version', async () => {
    await waitFor('a node watch', () => api.openWatches('nodes') === 1);
    const before = api.requests.filter((r) => r.collection === 'nodes' && r.watch).length;
    const from = events.length;
    await waitFor('a node watch reopened after the server ended it', () => api.requests.filter((r) => r.collection === 'nodes' && r.watch).length > before, 10_000);
    const last = api.requests.filter((r) => r.collection === 'nodes' && r.watch).at(-1)!;
    expect(Number(last.query.resourceVersion)).toBeGreaterThan(0);
    await settle();
    expect(withoutMarkers(since(from))).toEqual([]);
  });
});
