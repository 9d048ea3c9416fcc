import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { of } from 'rxjs';
import { applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { normalizeEntity } from '../../operators/normalizeEntity.js';
import { createSource } from '../../src/config.js';
import type { EntityDraft, EntityEvent, Observation } from '../../src/model.js';
import { type ApiAlarm, alarmDraft, apiAlarmFacts, pickAlarm, ruleResource } from '../../sources/openstack/aodh.js';
import { type ApiNode, nodeDraft, pickNode } from '../../sources/openstack/ironic.js';
import { type OsloNotification, decodeNotification, notificationDraft, routeEvent } from '../../sources/openstack/notifications.js';
import { type ApiListener, type ApiLoadBalancer, type ApiMember, type ApiPool, octaviaDraft, portsByAddress } from '../../sources/openstack/octavia.js';
import { type ApiTroveInstance, troveDraft, troveEndpoint } from '../../sources/openstack/trove.js';
import { fixturePath } from '../support/fixtures.js';
import { fixture } from '../support/openstack-server.js';

const RECORDED = (service: string) => fixturePath('wire', 'real-openstack', service);

/** Every recorded notification of a service, decoded, in the order they were published. */
function recorded(service: string): (OsloNotification & { file: string })[] {
  return readdirSync(RECORDED(service))
    .filter((f) => /^\d{3}--.*\.body\.json$/.test(f))
    .sort()
    .map((file) => ({ ...decodeNotification(readFileSync(join(RECORDED(service), file))), file }));
}

/** The draft a routed notification maps to (what the notification source's mapping returns). */
function draftOf(n: OsloNotification) {
  const route = routeEvent(n.eventType);
  if (!route || route.action === 'ignore') return undefined;
  return notificationDraft({ family: route.family, action: route.action, notification: n });
}

describe('Aodh (real Aodh 15)', () => {
  const alarms = fixture<ApiAlarm[]>('wire', 'real-openstack', 'aodh', 'api', 'alarms-all-projects.json');

  it('maps an alarm field by field', () => {
    const volume = alarms.find((a) => a.name === 'volume-error')!;
    expect(alarmDraft(apiAlarmFacts(volume))).toEqual({
      type: 'aodh.alarm',
      id: 'ac585adb-ccf8-4506-927a-787a62bd10f6',
      name: 'volume-error',
      state: 'insufficient data',
      project: '7f89d7e57b0a41ebbf570c30c34401ef',
      parents: [],
      attributes: { description: 'a volume went to error', enabled: true, severity: 'moderate', state_reason: 'Not evaluated yet', type: 'event' },
    });
    for (const a of alarms) expect(alarmDraft(apiAlarmFacts(pickAlarm(a)))).toEqual(alarmDraft(apiAlarmFacts(a)));
  });

  it('alarm.creation gives the entity the API shows for an alarm unchanged since; state transitions and rule changes are patches; deletion deletes', () => {
    const notes = recorded('aodh');
    expect(notes.map((n) => [n.eventType, routeEvent(n.eventType)?.action])).toEqual([
      ['alarm.creation', 'upsert'],
      ['alarm.creation', 'upsert'],
      ['alarm.creation', 'upsert'],
      ['alarm.creation', 'upsert'],
      ['alarm.rule_change', 'patch'],
      ['alarm.state_transition', 'patch'],
      ['alarm.state_transition', 'patch'],
      ['alarm.deletion', 'delete'],
    ]);
    const volume = alarms.find((a) => a.name === 'volume-error')!;
    const created = notes.find((n) => (n.payload.detail as { name?: string }).name === 'volume-error')!;
    expect(draftOf(created)).toEqual(alarmDraft(apiAlarmFacts(volume)));
    // Only what changed: the rule change's description and severity (alarm_actions and
    // evaluate_timestamp make nothing), the transition's state and its reason.
    expect(draftOf(notes[4]!)).toEqual({ type: 'aodh.alarm', id: 'f94bfd9b-0bc6-462e-9f34-efbb0bcd8806', attributes: { description: 'an instance went to error (rule changed)', severity: 'moderate' } });
    expect(draftOf(notes[5]!)).toEqual({ type: 'aodh.alarm', id: 'f94bfd9b-0bc6-462e-9f34-efbb0bcd8806', state: 'alarm', attributes: { state_reason: 'Manually set via API' } });
    expect(draftOf(notes[7]!)).toMatchObject({ type: 'aodh.alarm', id: 'e573d9bf-162e-4ef0-a139-9d0aee0a21e8' });
  });

  it('the recorded notifications through the baseline end where the poll that followed them is: one event per change, none from the poll', () => {
    const events: EntityEvent[] = [];
    let state = emptyBaseline();
    const take = (o: Observation<unknown>, map: (r: never) => EntityDraft | EntityDraft[] | undefined): void => {
      const normalized: Observation[] = [];
      normalizeEntity(map as (r: unknown) => EntityDraft | undefined)(of(o)).subscribe((n) => normalized.push(n));
      for (const n of normalized) {
        const step = applyObservation(state, n);
        state = step.state;
        events.push(...step.events);
      }
    };
    for (const n of recorded('aodh')) {
      const route = routeEvent(n.eventType)!;
      const record = { family: route.family, action: route.action as 'upsert' | 'delete' | 'patch', notification: n };
      const o: Observation<unknown> = route.action === 'patch' ? { kind: 'patch', source: 'bus', at: n.timestamp, record } : { kind: 'change', source: 'bus', action: route.action as 'upsert' | 'delete', at: n.timestamp, record };
      take(o, notificationDraft as (r: never) => EntityDraft);
    }
    expect(events.map((e) => `${e.action}:${e.entity.name}:${e.entity.state}${e.changed ? ':' + e.changed.join('+') : ''}`)).toEqual([
      'create:instance-error:INSUFFICIENT DATA',
      'create:volume-error:INSUFFICIENT DATA',
      'create:demo-port-error:INSUFFICIENT DATA',
      'create:to-delete:INSUFFICIENT DATA',
      'update:instance-error:INSUFFICIENT DATA:attributes.description+attributes.severity',
      'update:instance-error:ALARM:state+attributes.state_reason',
      'update:demo-port-error:OK:state+attributes.state_reason',
      'delete:to-delete:INSUFFICIENT DATA',
    ]);
    const pushed = events.length;
    // The list read after every change: it agrees with every alarm the notifications made.
    take({ kind: 'snapshot', source: 'aodh', types: ['aodh.alarm'], at: '2026-11-30T03:00:00Z', records: alarms }, ((a: ApiAlarm) => alarmDraft(apiAlarmFacts(a))) as (r: never) => EntityDraft);
    expect(events.slice(pushed)).toEqual([]);
  });

  it('a patch of an alarm the baseline does not hold makes nothing: it waits for the poll', () => {
    const transition = recorded('aodh')[5]!;
    const o: Observation<unknown> = { kind: 'patch', source: 'bus', at: transition.timestamp, record: { family: 'aodh.alarm', action: 'patch', notification: transition } };
    const normalized: Observation[] = [];
    normalizeEntity(notificationDraft as (r: unknown) => EntityDraft)(of(o)).subscribe((n) => normalized.push(n));
    const step = applyObservation(emptyBaseline(), normalized[0]!);
    expect([step.events, step.state.entities.size, step.state.tombstones.size]).toEqual([[], 0, 0]);
  });

  it('attaches an alarm to the resource its rule names', () => {
    expect(ruleResource({ resource_id: 'vm-1', resource_type: 'instance' })).toEqual({ type: 'nova.instance', id: 'vm-1' });
    expect(ruleResource({ resource_id: 'v', resource_type: 'volume' })).toEqual({ type: 'cinder.volume', id: 'v' });
    expect(ruleResource({ resource_id: 'x', resource_type: 'generic' })).toBeUndefined();
    expect(ruleResource({ event_type: 'compute.instance.update', query: [{ field: 'traits.instance_id', op: 'eq', value: 'vm-2' }] })).toEqual({ type: 'nova.instance', id: 'vm-2' });
    expect(ruleResource({ event_type: 'volume.update.end', query: [{ field: 'traits.state', op: 'eq', value: 'error' }, { field: 'traits.resource_id', op: 'eq', value: 'vol-1' }] })).toEqual({
      type: 'cinder.volume',
      id: 'vol-1',
    });
    expect(ruleResource({ event_type: 'port.*', query: [{ field: 'traits.resource_id', op: 'eq', value: 'p-1' }] })).toEqual({ type: 'neutron.port', id: 'p-1' });
    expect(ruleResource({ event_type: 'volume.update.end', query: [{ field: 'traits.resource_id', op: 'ne', value: 'vol-1' }] })).toBeUndefined();
    // The recorded alarms watch every instance (no resource in the query): no parent.
    for (const a of alarms) expect(alarmDraft(apiAlarmFacts(a)).parents).toEqual([]);
    const watching = { ...alarms[0]!, event_rule: { event_type: 'compute.instance.update', query: [{ field: 'traits.instance_id', op: 'eq', value: 'vm-3' }] } };
    expect(alarmDraft(apiAlarmFacts(watching))).toMatchObject({ parents: [{ type: 'nova.instance', id: 'vm-3' }], attributes: { resource_id: 'vm-3' } });
  });
});

describe('Ironic (real Ironic 21.4 and upstream samples)', () => {
  const nodes = fixture<{ nodes: ApiNode[] }>('wire', 'real-openstack', 'ironic', 'api', 'nodes-detail.json').nodes;
  const upstream = fixture<{ nodes: ApiNode[] }>('openstack', 'ironic', 'api-ref', 'source', 'samples', 'nodes-list-details-response.json').nodes;

  it('maps a node field by field; the node hosts its instance', () => {
    expect(nodeDraft(nodes[0]!)).toEqual({
      type: 'ironic.node',
      id: '4012d952-fb98-4b71-bfea-6e25a7fc1100',
      name: 'node-0',
      state: 'available',
      project: '7f89d7e57b0a41ebbf570c30c34401ef',
      parents: [],
      children: [],
      attributes: { driver: 'fake-hardware', maintenance: true, maintenance_reason: 'disk replacement', power_state: 'power on', resource_class: 'baremetal-small' },
    });
    expect(nodeDraft(upstream[0]!)).toMatchObject({ state: 'available', children: [{ type: 'nova.instance', id: '5344a3e2-978a-444e-990a-cbf47c62ef88' }] });
    const show = fixture<ApiNode>('openstack', 'ironic', 'api-ref', 'source', 'samples', 'node-show-response.json');
    for (const n of [...nodes, ...upstream, show]) {
      expect(nodeDraft(pickNode(n))).toEqual(nodeDraft(n));
      expect(Object.keys(pickNode(n)).length).toBeLessThan(Object.keys(n).length);
    }
  });

  it("each node's last state notification gives the entity the API shows; .start and port events give none", () => {
    const notes = recorded('ironic');
    const last = new Map<string, ReturnType<typeof draftOf>>();
    for (const n of notes) {
      const d = draftOf(n);
      if (d && routeEvent(n.eventType)?.action === 'upsert') last.set(d.id, d);
    }
    for (const node of nodes) expect(last.get(node.uuid), node.name ?? node.uuid).toEqual(nodeDraft(node));
    expect(notes.filter((n) => n.eventType.startsWith('baremetal.node.') && n.eventType.endsWith('.start')).every((n) => routeEvent(n.eventType)?.action === 'ignore')).toBe(true);
    expect(routeEvent('baremetal.port.create.end')).toBeUndefined();
    expect(routeEvent('baremetal.node.delete.end')).toEqual({ family: 'ironic.node', action: 'delete' });
    expect(routeEvent('baremetal.node.power_set.error')).toEqual({ family: 'ironic.node', action: 'upsert' });
    expect(routeEvent('baremetal.node.power_state_corrected.success')).toEqual({ family: 'ironic.node', action: 'upsert' });
    const bad = { ...notes[1]!, payload: { 'ironic_object.data': { name: 'x' } } };
    expect(() => draftOf(bad)).toThrow(/baremetal.node.create.end .*payload has no ironic_object.data.uuid/);
  });
});

describe('Octavia (real Octavia 11 and upstream samples)', () => {
  const real = (f: string) => fixture<Record<string, unknown[]>>('wire', 'real-openstack', 'octavia', 'api', f);
  const up = (f: string) => fixture<Record<string, unknown[]>>('openstack', 'octavia', 'api-ref', 'source', 'v2', 'examples', f);

  it('maps load balancers, listeners, pools and members with both statuses and their parents', () => {
    const [lb] = real('loadbalancers.json').loadbalancers as ApiLoadBalancer[];
    expect(octaviaDraft({ kind: 'loadbalancer', lb: lb! })).toEqual({
      type: 'octavia.loadbalancer',
      id: 'cdc3fc5e-a968-48ac-a276-87ce6f02e0cf',
      name: 'lb-1',
      state: 'OFFLINE',
      project: '7f89d7e57b0a41ebbf570c30c34401ef',
      parents: [
        { type: 'neutron.port', id: 'e0f68406-53dd-4134-bcab-ed0a97df62ff' },
        { type: 'neutron.network', id: '113846a6-92dc-4f04-a7ea-3532bfc51714' },
      ],
      attributes: { provider: 'amphora', provisioning_status: 'ACTIVE', vip_address: '198.51.100.1' },
    });
    const stuck = (real('loadbalancers.json').loadbalancers as ApiLoadBalancer[]).find((l) => l.provider === 'noop_driver')!;
    expect(octaviaDraft({ kind: 'loadbalancer', lb: stuck }).attributes).toMatchObject({ provisioning_status: 'PENDING_CREATE' });
    for (const listener of [...real('listeners.json').listeners!, ...up('listeners-list-response.json').listeners!] as ApiListener[]) {
      expect(octaviaDraft({ kind: 'listener', listener }).parents).toEqual(listener.loadbalancers!.map((l) => ({ type: 'octavia.loadbalancer', id: l.id })));
    }
    for (const pool of [...real('pools.json').pools!, ...up('pools-list-response.json').pools!] as ApiPool[]) {
      expect(octaviaDraft({ kind: 'pool', pool }).parents!.length).toBe(pool.loadbalancers!.length + pool.listeners!.length);
    }
    for (const lb of up('loadbalancers-list-response.json').loadbalancers as ApiLoadBalancer[]) expect(octaviaDraft({ kind: 'loadbalancer', lb }).state).toBe(lb.operating_status);
  });

  it("a member points at the Neutron port holding its address in its subnet, and that port's instance", () => {
    const members = [...real('members.json').members!, ...up('members-list-response.json').members!] as ApiMember[];
    const ports = portsByAddress([
      { id: 'port-1', device_owner: 'compute:nova', device_id: 'vm-1', fixed_ips: [{ subnet_id: members[0]!.subnet_id!, ip_address: members[0]!.address! }] },
      { id: 'port-2', device_owner: 'network:dhcp', device_id: 'dhcp', fixed_ips: [{ subnet_id: members[1]!.subnet_id!, ip_address: members[1]!.address! }] },
    ]);
    const draft = (m: ApiMember) => octaviaDraft({ kind: 'member', member: m, pool: 'pool-1', target: ports.get(`${m.subnet_id} ${m.address}`) });
    expect(draft(members[0]!)).toMatchObject({ state: 'NO_MONITOR', parents: [{ type: 'octavia.pool', id: 'pool-1' }, { type: 'neutron.port', id: 'port-1' }, { type: 'nova.instance', id: 'vm-1' }] });
    expect(draft(members[1]!).parents).toEqual([{ type: 'octavia.pool', id: 'pool-1' }, { type: 'neutron.port', id: 'port-2' }]);
    expect(draft(members[2]!).parents).toEqual([{ type: 'octavia.pool', id: 'pool-1' }]);
  });

  it('only a load balancer delete is taken from its notifications (create/update carry no status, update.end the old state)', () => {
    const notes = recorded('octavia');
    expect(notes.map((n) => routeEvent(n.eventType)?.action)).toEqual(['ignore', 'ignore', 'ignore', 'ignore', 'delete']);
    expect(draftOf(notes[4]!)).toEqual({ type: 'octavia.loadbalancer', id: notes[4]!.payload.loadbalancer_id });
  });
});

describe('Trove (upstream samples)', () => {
  it('maps instances to the Nova server behind them and clusters to their instances', () => {
    const samples = (f: string) => fixture<{ instances: ApiTroveInstance[] }>('openstack', 'trove', 'api-ref', 'source', 'samples', f).instances;
    const [active, failed] = samples('instance-mgmt-list-response.json');
    expect(troveDraft({ kind: 'instance', instance: active! })).toEqual({
      type: 'trove.instance',
      id: '7de1bed8-6983-4d46-9a52-0abfbb0d27a2',
      name: 'test',
      state: 'ACTIVE',
      project: '9f8dd5eacb074c9f87d2d822c9092aa5',
      parents: [{ type: 'nova.instance', id: '710a84e5-6adf-4a4c-9167-8bade67a5a1c' }],
      attributes: { datastore: 'mysql', datastore_version: '5.7', operating_status: 'HEALTHY' },
    });
    expect(troveDraft({ kind: 'instance', instance: failed! })).toMatchObject({ state: 'ERROR', parents: [] });
    // The project view (no server_id without admin) still maps.
    for (const instance of samples('instance-list-detail-response.json')) expect(troveDraft({ kind: 'instance', instance }).parents).toEqual([]);
    expect(troveDraft({ kind: 'cluster', cluster: { id: 'c', name: 'db', task: { name: 'NONE' }, instances: [{ id: 'a' }, { id: 'b' }] } })).toMatchObject({
      state: 'NONE',
      children: [{ type: 'trove.instance', id: 'a' }, { type: 'trove.instance', id: 'b' }],
    });
  });
});

describe('Trove endpoint', () => {
  it('adds /v1.0/{project} to a catalog URL without it, and leaves a full one alone', () => {
    expect(troveEndpoint('http://db.example:8779', 'p1')).toBe('http://db.example:8779/v1.0/p1');
    expect(troveEndpoint('http://db.example:8779/v1.0/', 'p1')).toBe('http://db.example:8779/v1.0/p1');
    expect(troveEndpoint('http://db.example/database/v1.0/abc', 'p1')).toBe('http://db.example/database/v1.0/abc');
    expect(troveEndpoint('http://db.example:8779', undefined)).toBe('http://db.example:8779');
  });
});

describe('config', () => {
  const auth = { auth_url: 'http://127.0.0.1:9/identity/v3', username: 'u', password: 'p', project_name: 'admin', user_domain_name: 'Default', project_domain_name: 'Default' };
  it('each source is a built-in `use:`; a bad key is refused with its path', async () => {
    for (const use of ['openstack.aodh', 'openstack.octavia', 'openstack.ironic', 'openstack.trove']) {
      const source = await createSource({ name: use, use, auth });
      expect(source.types.length, use).toBeGreaterThan(0);
    }
    await expect(createSource({ name: 'o', use: 'openstack.octavia', auth, resolveMembers: 'yes' })).rejects.toThrow(/sources\[0\]\.resolveMembers: /);
    await expect(createSource({ name: 'a', use: 'openstack.aodh', auth, resolveMembers: true })).rejects.toThrow('sources[0].resolveMembers: is not a known option here');
  });
});
