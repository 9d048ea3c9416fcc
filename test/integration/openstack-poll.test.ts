import { type Observable, concatMap, from, reduce } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSources, parseConfig } from '../../src/config.js';
import { errorMessage } from '../../src/log.js';
import type { EntityEvent } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { type OpenStackServer, serverId, startOpenStackServer } from '../support/openstack-server.js';
import { waitFor } from '../support/wait.js';

let os: OpenStackServer;
let sync: Synchronizer;
let events: EntityEvent[];

async function startSync(extra: Record<string, unknown> = {}, uses = ['openstack.nova', 'openstack.neutron', 'openstack.cinder', 'openstack.heat']): Promise<void> {
  const config = await parseConfig(
    {
      sources: uses.map((use) => ({ name: use.split('.')[1], use, interval: '300ms', timeout: '10s', requestTimeout: '2s', region: 'RegionOne', auth: os.auth, ...extra })),
      sinks: [],
    },
    process.cwd(),
  );
  sync = createSynchronizer({ sources: createSources(config.sources) });
  events = [];
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
}

const ofKey = (key: string) => events.filter((e) => e.entity.key === key);

beforeEach(async () => {
  os = await startOpenStackServer({ servers: 2500, pageSize: 1000 });
});
afterEach(async () => {
  sync?.stop();
  await os.close();
});

describe('OpenStack poll sources against a local OpenStack', () => {
  it('config → Keystone → catalog → every page → creates, then one update, one delete', async () => {
    await startSync();
    // A snapshot of more than 1000 records goes in a few slices after its source reports up.
    await waitFor(
      'first snapshots',
      () =>
        ['nova', 'neutron', 'cinder', 'heat'].every((s) => sync.health()[s]?.status === 'up') &&
        sync.snapshot(['heat.stack']).length > 0 &&
        sync.snapshot(['nova.instance']).length === 2500 &&
        sync.snapshot(['neutron.port']).length === 2502,
    );
    // Nova pages at 1000: 2500 servers take three pages, and all of them arrive.
    expect(sync.snapshot(['nova.instance'])).toHaveLength(2500);
    expect(os.requestsTo('/servers/detail').slice(0, 3).map((r) => new URLSearchParams(r.query).get('marker'))).toEqual([null, serverId(999), serverId(1999)]);
    expect(os.requestsTo('/servers/detail')[0]!.headers['openstack-api-version']).toBe('compute 2.53');
    // One token for the four sources (shared session).
    expect(os.tokensIssued).toBe(1);

    const vm = sync.snapshot(['nova.instance']).find((e) => e.id === serverId(0))!;
    expect(vm).toMatchObject({ name: 'vm-0', state: 'ACTIVE', project: 'c5859a3ceb7840c9b49519c58e01b4da', parents: [{ type: 'nova.host', id: 'fake-compute-0' }], source: 'nova' });
    expect(sync.snapshot(['nova.host'])).toMatchObject([{ id: 'fake-compute-0', name: 'fake-compute-0', state: 'UP', parents: [{ type: 'nova.zone', id: 'nova' }] }]);
    expect(sync.snapshot(['nova.zone']).map((z) => `${z.id}:${z.state}`).sort()).toEqual(['internal:AVAILABLE', 'nova:AVAILABLE']);
    expect(sync.snapshot(['neutron.port'])).toHaveLength(2502);
    const port = sync.snapshot(['neutron.port']).find((p) => p.attributes.device_id === serverId(7))!;
    expect(port.parents).toEqual([{ type: 'neutron.network', id: 'f2bcf0ff-839f-4a2d-8502-e36e3f34acad' }, { type: 'nova.instance', id: serverId(7) }]);
    expect(sync.snapshot(['cinder.volume']).find((v) => v.name === 'attached-vol')!.parents).toEqual([{ type: 'nova.instance', id: serverId(0) }]);
    // Nested stacks too (show_nested), without their nesting, which notifications cannot carry.
    expect(os.requestsTo('/stacks')[0]!.query).toContain('show_nested=true');
    expect(sync.snapshot(['heat.stack']).sort((a, b) => a.id.localeCompare(b.id))).toMatchObject([
      { id: '3095aefc-09fb-4bc7-b1f0-f21a304e864c', state: 'CREATE_COMPLETE', project: 'eb1c63a4f77141548385f113a28f0f52', parents: [] },
      { id: '5e7e5ed0-0000-4000-8000-000000000001', name: 'simple_stack-server_group-x7k2mq', state: 'CREATE_COMPLETE', parents: [] },
    ]);
    expect(events.filter((e) => e.action !== 'create')).toEqual([]);

    // A change on the server → one update.
    const s = os.state.servers[1500]!;
    s.status = 'SHUTOFF';
    s['OS-EXT-STS:vm_state'] = 'stopped';
    const key = `nova.instance:${serverId(1500)}`;
    await waitFor('the update', () => ofKey(key).length === 2);
    const polls = os.requestsTo('/servers/detail').length;
    await waitFor('two more polls', () => os.requestsTo('/servers/detail').length >= polls + 6);
    expect(ofKey(key).map((e) => e.action)).toEqual(['create', 'update']);
    expect(ofKey(key)[1]!.entity.state).toBe('SHUTOFF');
    expect(ofKey(key)[1]!.changed).toEqual(expect.arrayContaining(['state', 'attributes.vm_state']));

    // A record removed → one delete.
    os.state.servers.splice(2100, 1);
    const gone = `nova.instance:${serverId(2100)}`;
    await waitFor('the delete', () => ofKey(gone).length === 2);
    expect(ofKey(gone)[1]!.action).toBe('delete');
    expect(events.filter((e) => e.action === 'delete')).toHaveLength(1);
  });

  it('a failing page means no snapshot and no deletes, only a health change', async () => {
    await startSync({}, ['openstack.nova']);
    await waitFor('first snapshot', () => sync.snapshot(['nova.instance']).length === 2500);
    const remove = os.inject({ when: (path, url) => path.endsWith('/servers/detail') && url.searchParams.get('marker') === serverId(1999), status: 500 });
    await waitFor('health down', () => sync.health().nova?.status === 'down');
    expect(sync.health().nova?.error).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/compute\/v2\.1\/servers\/detail\?.*marker=.* failed with 500/);
    expect(events.filter((e) => e.action === 'delete')).toEqual([]);
    expect(sync.snapshot(['nova.instance'])).toHaveLength(2500);
    remove();
    await waitFor('health up again', () => sync.health().nova?.status === 'up', 20_000);
    expect(events.filter((e) => e.action !== 'create')).toEqual([]);
  }, 40_000);

  it('renews the token once after a 401 and goes on', async () => {
    await startSync({}, ['openstack.nova']);
    await waitFor('first snapshot', () => sync.snapshot(['nova.instance']).length === 2500);
    os.expireTokens();
    const polls = os.requestsTo('/servers/detail').length;
    await waitFor('polls after renewal', () => os.requestsTo('/servers/detail').filter((r) => r.token === 'gAAAAA-test-token-2').length >= 3);
    expect(os.tokensIssued).toBe(2);
    expect(os.requestsTo('/servers/detail').length).toBeGreaterThan(polls);
    expect(sync.health().nova?.status).toBe('up');
    expect(events.filter((e) => e.action !== 'create')).toEqual([]);
  });

  it('honours 429 Retry-After, survives a hung request and reports malformed JSON', async () => {
    await startSync({}, ['openstack.nova']);
    await waitFor('first snapshot', () => sync.snapshot(['nova.instance']).length === 2500);
    os.inject({ when: (path) => path.endsWith('/os-hypervisors/detail'), status: 429, retryAfter: 3, times: 1 });
    os.inject({ when: (path) => path.endsWith('/os-availability-zone/detail'), hang: true, times: 1 });
    const before = os.requestsTo('/os-hypervisors/detail').length;
    await waitFor('the retried requests', () => os.requestsTo('/os-hypervisors/detail').length >= before + 2 && os.requestsTo('/os-availability-zone/detail').length >= before + 2);
    const [limited, retried] = os.requestsTo('/os-hypervisors/detail').slice(before);
    expect(limited).toBeDefined();
    expect(retried).toBeDefined();
    // Retry-After: 3 — the retry waited the 3 s the server asked for (a lower bound only: later is
    // fine on a busy machine), not the client's own first backoff (1 s ± 20 %).
    expect(retried!.at - limited!.at).toBeGreaterThanOrEqual(2990);
    expect(sync.health().nova?.status).toBe('up');

    os.inject({ when: (path, url) => path.endsWith('/servers/detail') && url.searchParams.has('marker'), malformed: true });
    await waitFor('health down', () => sync.health().nova?.status === 'down');
    expect(sync.health().nova?.error).toMatch(/not valid JSON/);
    expect(events.filter((e) => e.action === 'delete')).toEqual([]);
  }, 40_000);

  it('Heat without the global_index policy (403 on global_tenant): falls back to the token project\'s stacks, once', async () => {
    os.inject({ when: (path, url) => path.endsWith('/stacks') && url.searchParams.has('global_tenant'), status: 403 });
    await startSync({}, ['openstack.heat']);
    await waitFor('stacks listed', () => sync.snapshot(['heat.stack']).length > 0);
    await waitFor('two more polls', () => os.requestsTo('/stacks').length >= 4);
    const queries = os.requestsTo('/stacks').map((r) => new URLSearchParams(r.query).has('global_tenant'));
    // The first poll asks with global_tenant, is refused and asks again without; later polls never ask for it.
    expect(queries.slice(0, 2)).toEqual([true, false]);
    expect(queries.slice(2).every((global) => !global)).toBe(true);
    expect(sync.health().heat?.status).toBe('up');
    expect(events.filter((e) => e.action === 'delete')).toEqual([]);
  });

  it('refuses bad credentials with a clear error, without the password', async () => {
    await startSync({ auth: { ...os.auth, password: 'wrong-secret' } }, ['openstack.nova']);
    await waitFor('health down', () => sync.health().nova?.status === 'down');
    const error = sync.health().nova?.error ?? '';
    expect(error).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/identity\/v3\/auth\/tokens failed with 401/);
    expect(error).not.toContain('wrong-secret');
  });

  it("the Nova source hands its servers over page by page, and a poll in pages makes the same events as the same poll whole", async () => {
    const nova = async (): Promise<Source<unknown>> =>
      createSources((await parseConfig({ sources: [{ name: 'nova', use: 'openstack.nova', interval: '300ms', timeout: '10s', requestTimeout: '2s', region: 'RegionOne', auth: os.auth }] }, process.cwd())).sources)[0]!;
    // As read: a snapshot with its records in pages, a page of servers at a time, then hypervisors and zones.
    const source = await nova();
    const pieces = await new Promise<number[]>((resolve, reject) => {
      const sizes: number[] = [];
      const subscription = source.signal$.subscribe((s) => {
        if (s.kind !== 'snapshot') return;
        sizes.push(s.records.length);
        s.pages?.subscribe({
          next: (piece) => sizes.push(piece.length),
          error: reject,
          complete: () => {
            subscription.unsubscribe();
            resolve(sizes);
          },
        });
      });
    });
    expect(pieces).toEqual([0, 1000, 1000, 500, os.state.hypervisors.length + os.state.zones.length]);

    // The same source with its pages gathered first (the records whole when the poll is done, as before).
    const whole = (s: Source<unknown>): Source<unknown> => ({ ...s, signal$: s.signal$.pipe(concatMap((signal) => gathered(signal))) });
    const run = (s: Source<unknown>): { sync: Synchronizer; events: EntityEvent[] } => {
      const one = createSynchronizer({ sources: [s] });
      const events: EntityEvent[] = [];
      one.entity$.subscribe((e) => events.push(e));
      one.start();
      return { sync: one, events };
    };
    const paged = run(await nova());
    const gatheredRun = run(whole(await nova()));
    try {
      const said = (events: EntityEvent[]): string[] => events.map((e) => `${e.action} ${e.entity.key} ${e.entity.state} ${JSON.stringify(e.entity.attributes)} ${e.hash}`);
      const total = 2500 + os.state.hypervisors.length + 2;
      await waitFor('both first snapshots', () => paged.events.length === total && gatheredRun.events.length === total);
      expect(said(paged.events)).toEqual(said(gatheredRun.events));
      os.state.servers[2200]!.status = 'SHUTOFF';
      os.state.servers.splice(5, 1);
      await waitFor('the update and the delete, both ways', () => paged.events.length === total + 2 && gatheredRun.events.length === total + 2);
      expect(said(paged.events.slice(total)).sort()).toEqual(said(gatheredRun.events.slice(total)).sort());
      expect(paged.events.slice(total).map((e) => `${e.action} ${e.entity.id}`).sort()).toEqual([`delete ${serverId(5)}`, `update ${serverId(2200)}`]);
    } finally {
      paged.sync.stop();
      gatheredRun.sync.stop();
    }
  });

  it('a page failing mid-poll errors the pages the Nova source had handed over: the snapshot never was, and the source reports down', async () => {
    const source = createSources((await parseConfig({ sources: [{ name: 'nova', use: 'openstack.nova', interval: '300ms', timeout: '10s', requestTimeout: '2s', region: 'RegionOne', auth: os.auth }] }, process.cwd())).sources)[0]!;
    os.inject({ when: (path, url) => path.endsWith('/servers/detail') && url.searchParams.get('marker') === serverId(1999), status: 500 });
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      const subscription = source.signal$.subscribe((s) => {
        if (s.kind === 'health') {
          seen.push(`health ${s.status}`);
          if (s.status === 'down') {
            subscription.unsubscribe();
            resolve();
          }
        } else if (s.kind === 'snapshot') {
          seen.push(`snapshot of ${s.records.length}${s.pages ? ' +pages' : ''}`);
          s.pages?.subscribe({ next: (piece) => seen.push(`piece of ${piece.length}`), error: (e: unknown) => seen.push(`pages failed: ${errorMessage(e).replace(/127\.0\.0\.1:\d+/, 'HOST').replace(/\?.*/, '?…')}`) });
        }
      });
    });
    await done;
    expect(seen).toEqual(['snapshot of 0 +pages', 'piece of 1000', 'piece of 1000', 'pages failed: nova: GET http://HOST/compute/v2.1/servers/detail?…', 'health down']);
  });
});

/** A signal with its snapshot's pages gathered into its records (the snapshot whole once its poll is done), or nothing if they fail. */
function gathered(signal: SourceSignal<unknown>): Observable<SourceSignal<unknown>> {
  if (signal.kind !== 'snapshot' || signal.pages === undefined) return from([signal]);
  const { pages, ...rest } = signal;
  return pages.pipe(
    reduce((records: unknown[], piece) => [...records, ...piece], [...signal.records]),
    concatMap((records) => from([{ ...rest, records, ...(signal.read ? { read: signal.read } : {}) }])),
  );
}
