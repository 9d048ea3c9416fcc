import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSources, parseConfig } from '../../src/config.js';
import type { EntityEvent } from '../../src/model.js';
import { type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { type OpenStackServer, startOpenStackServer } from '../support/openstack-server.js';
import { waitFor } from '../support/wait.js';

let os: OpenStackServer;
let sync: Synchronizer;
let events: EntityEvent[];

const USES = ['openstack.aodh', 'openstack.octavia', 'openstack.ironic', 'openstack.trove'];

async function startSync(): Promise<void> {
  const config = await parseConfig(
    { sources: USES.map((use) => ({ name: use.split('.')[1], use, interval: '300ms', timeout: '10s', requestTimeout: '2s', region: 'RegionOne', auth: os.auth })), sinks: [] },
    process.cwd(),
  );
  sync = createSynchronizer({ sources: createSources(config.sources) });
  events = [];
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
}

const ofKey = (key: string) => events.filter((e) => e.entity.key === key);
const queries = (suffix: string) => os.requestsTo(suffix).map((r) => Object.fromEntries(new URLSearchParams(r.query)));

beforeEach(async () => {
  // Pages of one record: every collection takes several pages, in each service's own style.
  os = await startOpenStackServer({ pageSize: 1 });
});
afterEach(async () => {
  sync?.stop();
  await os.close();
});

describe('Aodh, Octavia, Ironic and Trove poll sources against a local OpenStack', () => {
  it('catalog → every page in each pagination style → entities with their parents; then one update, one delete', async () => {
    // A Nova port at member-1's address: the member points at it and its instance.
    const member = os.state.members[os.state.pools[0]!.id as string]![0]!;
    os.state.ports.push({ id: 'beef0000-0000-4000-8000-000000000001', device_owner: 'compute:nova', device_id: 'vm-behind-member-1', fixed_ips: [{ subnet_id: member.subnet_id, ip_address: member.address }] });
    await startSync();
    await waitFor('first snapshots', () => USES.every((u) => sync.health()[u.split('.')[1]!]?.status === 'up') && sync.snapshot(['trove.cluster']).length > 0);
    const count = (type: string) => sync.snapshot([type]).length;
    expect(Object.fromEntries(['aodh.alarm', 'ironic.node', 'octavia.loadbalancer', 'octavia.listener', 'octavia.pool', 'octavia.member', 'trove.instance', 'trove.cluster'].map((t) => [t, count(t)]))).toEqual({
      'aodh.alarm': 3,
      'ironic.node': 4,
      'octavia.loadbalancer': 3,
      'octavia.listener': 1,
      'octavia.pool': 1,
      'octavia.member': 2,
      'trove.instance': 2,
      'trove.cluster': 1,
    });
    expect(events.filter((e) => e.action !== 'create')).toEqual([]);

    // Aodh: every project, a bare array asked for by limit, one request (3 < 1000).
    expect(queries('/v2/alarms')[0]).toMatchObject({ 'q.field': 'all_projects', 'q.op': 'eq', 'q.value': 'true', limit: '1000' });
    // Ironic: 4 nodes at max_limit 1 → 4 full pages each with `next`, then an empty one.
    const nodeRequests = os.requestsTo('/v1/nodes/detail');
    expect(nodeRequests.slice(0, 5).map((r) => new URLSearchParams(r.query).get('marker'))).toEqual([null, ...os.state.nodes.map((n) => n.uuid)]);
    expect(nodeRequests[1]!.query).toContain('sort_key=id');
    expect(nodeRequests[0]!.headers['x-openstack-ironic-api-version']).toBe('1.65');
    // Octavia: 3 load balancers → 4 requests (`loadbalancers_links` while full, then []).
    expect(queries('/v2/lbaas/loadbalancers').slice(0, 4).map((q) => q.marker ?? null)).toEqual([null, ...os.state.loadbalancers.map((l) => l.id)]);

    const node0 = sync.snapshot(['ironic.node']).find((n) => n.name === 'node-0')!;
    expect(node0).toMatchObject({ state: 'AVAILABLE', attributes: { power_state: 'power on', maintenance: true, maintenance_reason: 'disk replacement' }, source: 'ironic' });
    expect(sync.snapshot(['ironic.node']).find((n) => n.children.length > 0)!.children).toEqual([{ type: 'nova.instance', id: '5344a3e2-978a-444e-990a-cbf47c62ef88' }]);
    const m1 = sync.snapshot(['octavia.member']).find((m) => m.name === 'member-1')!;
    expect(m1.parents).toEqual([
      { type: 'nova.instance', id: 'vm-behind-member-1' },
      { type: 'neutron.port', id: 'beef0000-0000-4000-8000-000000000001' },
      { type: 'octavia.pool', id: os.state.pools[0]!.id },
    ].sort((a, b) => `${a.type}:${a.id}`.localeCompare(`${b.type}:${b.id}`)));
    expect(sync.snapshot(['octavia.loadbalancer']).find((l) => l.name === 'lb-noop')).toMatchObject({ state: 'OFFLINE', attributes: { provisioning_status: 'PENDING_CREATE' } });
    expect(sync.snapshot(['trove.instance']).find((i) => i.state === 'ACTIVE')!.parents).toEqual([{ type: 'nova.instance', id: '710a84e5-6adf-4a4c-9167-8bade67a5a1c' }]);
    expect(sync.snapshot(['trove.cluster'])[0]!.children).toEqual([{ type: 'trove.instance', id: '7de1bed8-6983-4d46-9a52-0abfbb0d27a2' }]);
    expect(sync.snapshot(['aodh.alarm']).map((a) => `${a.name}:${a.state}`).sort()).toEqual(['demo-port-error:OK', 'instance-error:ALARM', 'volume-error:INSUFFICIENT DATA']);

    // An alarm fires → one update; a node is deleted → one delete.
    const alarm = os.state.alarms.find((a) => a.name === 'volume-error')!;
    alarm.state = 'alarm';
    alarm.state_reason = 'Transition to alarm due to 1 events';
    await waitFor('the alarm update', () => ofKey(`aodh.alarm:${String(alarm.alarm_id)}`).length === 2);
    expect(ofKey(`aodh.alarm:${String(alarm.alarm_id)}`)[1]).toMatchObject({ action: 'update', entity: { state: 'ALARM' }, });
    expect(ofKey(`aodh.alarm:${String(alarm.alarm_id)}`)[1]!.changed!.sort()).toEqual(['attributes.state_reason', 'state']);
    const gone = os.state.nodes.splice(1, 1)[0]!;
    await waitFor('the node delete', () => ofKey(`ironic.node:${String(gone.uuid)}`).length === 2);
    const polls = os.requestsTo('/v2/alarms').length;
    await waitFor('two more polls', () => os.requestsTo('/v2/alarms').length >= polls + 2);
    expect(events.filter((e) => e.action !== 'create').map((e) => [e.action, e.entity.key])).toEqual([
      ['update', `aodh.alarm:${String(alarm.alarm_id)}`],
      ['delete', `ironic.node:${String(gone.uuid)}`],
    ]);
  });

  it('a failing page loses the whole snapshot, never part of it: nothing is deleted, the source is down, then recovers', async () => {
    await startSync();
    await waitFor('first snapshots', () => sync.snapshot(['octavia.member']).length === 2 && sync.snapshot(['ironic.node']).length === 4);
    const clear = os.inject({ when: (path, url) => path.endsWith('/v1/nodes/detail') && url.searchParams.has('marker'), status: 500 });
    os.state.nodes.splice(0, 1);
    await waitFor('ironic down', () => sync.health().ironic?.status === 'down');
    expect(sync.health().ironic?.error).toMatch(/\/v1\/nodes\/detail\?.*marker=.* failed with 500/);
    expect(sync.snapshot(['ironic.node'])).toHaveLength(4);
    clear();
    await waitFor('ironic up and the delete', () => sync.health().ironic?.status === 'up' && sync.snapshot(['ironic.node']).length === 3);
    expect(events.filter((e) => e.action === 'delete')).toHaveLength(1);
  });

  it('lists the members of every pool, a batch of pools at a time (20 pools)', async () => {
    const [pool] = os.state.pools;
    const [member] = os.state.members[pool!.id as string]!;
    for (let n = 1; n < 20; n++) {
      const id = `9001${n.toString().padStart(4, '0')}-0000-4000-8000-000000000000`;
      os.state.pools.push({ ...structuredClone(pool!), id, name: `pool-${n}` });
      os.state.members[id] = [{ ...structuredClone(member!), id: `${id.slice(0, -4)}beef`, name: `member-of-${n}` }];
    }
    await startSync();
    await waitFor('every member', () => sync.snapshot(['octavia.member']).length === 21);
    expect(new Set(sync.snapshot(['octavia.member']).map((m) => m.parents.find((p) => p.type === 'octavia.pool')!.id)).size).toBe(20);
  });
});
