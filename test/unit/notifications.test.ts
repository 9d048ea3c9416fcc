import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toEntity } from '../../operators/normalizeEntity.js';
import { parseTransportUrl, redactUrl } from '../../src/amqp.js';
import { entityHash } from '../../src/hash.js';
import type { EntityDraft } from '../../src/model.js';
import { parseConfig } from '../../src/config.js';
import { OptionReader } from '../../src/options.js';
import {
  NotificationFormatError,
  type NotificationRecord,
  type OsloNotification,
  decodeNotification,
  notificationDraft,
  parseOsloTimestamp,
  readNotificationOptions,
  routeEvent,
} from '../../sources/openstack/notifications.js';
import { type ApiServer, serverDraft } from '../../sources/openstack/nova.js';
import { apiStackFacts, stackDraft } from '../../sources/openstack/heat.js';
import { FIXTURES, novaSample, novaSampleFiles, osloBody } from '../support/nova-samples.js';

const WIRE = join(FIXTURES, 'wire');
const REAL = join(WIRE, 'real-openstack');
const wire = (file: string): Buffer => readFileSync(join(WIRE, file));
const real = (file: string): Buffer => readFileSync(join(REAL, file));

/** Decode + route + map, as the source and normalizeEntity do. */
function draftOf(n: OsloNotification): { draft: EntityDraft; action: 'upsert' | 'delete' | 'patch' } {
  const route = routeEvent(n.eventType);
  if (!route || route.action === 'ignore') throw new Error(`${n.eventType} is not mapped`);
  const record: NotificationRecord = { family: route.family, action: route.action, notification: n };
  return { draft: notificationDraft(record), action: route.action };
}

const hashOf = (d: EntityDraft): string => entityHash(toEntity(d, 'test', '2026-01-01T00:00:00Z'));

describe('decodeNotification', () => {
  it('decodes the 2.0 envelope twice (messagingv2) with every field', () => {
    const n = decodeNotification(wire('oslo-v2-instance.create.end.body.json'));
    expect(n.messageId).toBe('b45406a7-df48-4ed8-8369-eb7b835cc9cb');
    expect(n.publisherId).toBe('nova-compute:host1');
    expect(n.eventType).toBe('instance.create.end');
    expect(n.priority).toBe('INFO');
    expect(n.timestamp).toBe('2026-11-25T11:43:02.120Z');
    expect((n.payload as Record<string, string>)['nova_object.name']).toBe('InstanceCreatePayload');
  });

  it('decodes a bare 1.0 body (driver messaging)', () => {
    const n = decodeNotification(wire('oslo-v1-compute.instance.create.end.body.json'));
    expect(n.eventType).toBe('compute.instance.create.end');
    expect(n.messageId).toBe('af1d0199-34e7-4be8-8540-1a776587d7fb');
    expect(n.timestamp).toBe('2026-11-25T11:43:03.381Z');
  });

  it('refuses malformed bodies with a reason that says what is wrong', () => {
    const cases: [string, RegExp][] = [
      ['{not json', /body is not JSON/],
      ['[1,2]', /not a JSON object/],
      ['{"oslo.version":"1.0","oslo.message":"{}"}', /unsupported oslo.version "1.0"/],
      ['{"oslo.version":"2.0","oslo.message":{"event_type":"x"}}', /oslo.message is not a JSON string/],
      ['{"oslo.version":"2.0","oslo.message":"{broken"}', /oslo.message is not JSON/],
      ['{"hello":"world"}', /event_type is missing/],
      ['{"event_type":"instance.update","timestamp":"2026-11-25 11:43:02.1"}', /payload is missing/],
      ['{"event_type":"instance.update","payload":{},"timestamp":"yesterday"}', /timestamp is missing or not a time/],
    ];
    for (const [body, reason] of cases) {
      expect(() => decodeNotification(body), body).toThrow(NotificationFormatError);
      expect(() => decodeNotification(body), body).toThrow(reason);
    }
  });
});

describe('parseOsloTimestamp', () => {
  it('reads oslo naive timestamps as UTC, whatever the local zone', () => {
    expect(parseOsloTimestamp('2026-11-25 11:43:02.120020')).toBe('2026-11-25T11:43:02.120Z');
    expect(parseOsloTimestamp('2026-11-25 11:43:02')).toBe('2026-11-25T11:43:02.000Z');
    expect(parseOsloTimestamp('2026-11-25T11:43:02.5+01:00')).toBe('2026-11-25T10:43:02.500Z');
    expect(parseOsloTimestamp('2026-11-25T11:43:02Z')).toBe('2026-11-25T11:43:02.000Z');
    expect(parseOsloTimestamp('25/11/2026')).toBeUndefined();
    expect(parseOsloTimestamp(42)).toBeUndefined();
  });
});

describe('routeEvent', () => {
  it('maps end/update events to upserts and *.delete.end to deletes', () => {
    expect(routeEvent('instance.delete.end')).toEqual({ family: 'nova.versioned', action: 'delete' });
    expect(routeEvent('compute.instance.delete.end')).toEqual({ family: 'nova.legacy', action: 'delete' });
    expect(routeEvent('instance.update')).toEqual({ family: 'nova.versioned', action: 'upsert' });
    expect(routeEvent('compute.instance.update')).toEqual({ family: 'nova.legacy', action: 'upsert' });
    expect(routeEvent('instance.power_off.end')).toEqual({ family: 'nova.versioned', action: 'upsert' });
    expect(routeEvent('port.create.end')).toEqual({ family: 'neutron.port', action: 'upsert' });
    expect(routeEvent('network.delete.end')).toEqual({ family: 'neutron.network', action: 'delete' });
    expect(routeEvent('volume.attach.end')).toEqual({ family: 'cinder.volume', action: 'upsert' });
    expect(routeEvent('orchestration.stack.create.error')).toEqual({ family: 'heat.stack', action: 'upsert' });
  });

  it('ignores starts and errors of known families, and knows nothing of other types', () => {
    expect(routeEvent('instance.create.start')?.action).toBe('ignore');
    expect(routeEvent('compute.instance.create.error')?.action).toBe('ignore');
    expect(routeEvent('port.delete.start')?.action).toBe('ignore');
    expect(routeEvent('scheduler.select_destinations.end')).toBeUndefined();
    expect(routeEvent('network.floating_ip.allocate')).toBeUndefined();
    expect(routeEvent('aggregate.create.end')).toBeUndefined();
  });
});

describe('nova.instance from notifications: poll and push agree (real OpenStack Zed)', () => {
  const servers = (JSON.parse(real('api/api-servers-detail-all-tenants.json').toString()) as { servers: ApiServer[] }).servers;
  const byId = new Map(servers.map((s) => [s.id, s]));

  it('legacy compute.instance.create.end gives the API entity, field by field', () => {
    const n = decodeNotification(real('nova--notifications.info--compute.instance.create.end.body.json'));
    const { draft, action } = draftOf(n);
    expect(action).toBe('upsert');
    expect(draft).toEqual({
      type: 'nova.instance',
      id: '17596566-91a9-4b73-b5da-3920e588854f',
      name: 'smoke-1',
      state: 'ACTIVE',
      project: 'c5859a3ceb7840c9b49519c58e01b4da',
      parents: [{ type: 'nova.host', id: 'fake-compute-0' }],
      attributes: {
        availability_zone: 'nova',
        flavor: 'm1.tiny',
        host: 'fake-compute-0',
        image: '8b0d1614-49e6-4a3b-bbce-2b4070cbda58',
        user: '027f778d42cd4566a7c971f0304f7c0a',
        vm_state: 'active',
      },
    });
    expect(hashOf(draft)).toBe(hashOf(serverDraft(byId.get(draft.id)!)));
  });

  it('versioned instance.create.end gives the API entity, field by field', () => {
    const n = decodeNotification(real('nova--versioned_notifications.info--instance.create.end.body.json'));
    const { draft } = draftOf(n);
    const api = serverDraft(byId.get(draft.id)!);
    expect(draft.id).toBe(api.id);
    expect(draft.name).toBe(api.name);
    expect(draft.state).toBe('ACTIVE');
    expect(draft.project).toBe(api.project);
    expect(draft.parents).toEqual(api.parents);
    expect(draft.attributes).toEqual(api.attributes);
    expect(hashOf(draft)).toBe(hashOf(api));
  });

  it('the last notification of each server before the API listing, legacy or versioned, hashes like the poll', () => {
    const last = new Map<string, { legacy?: EntityDraft; versioned?: EntityDraft }>();
    for (const line of readFileSync(join(REAL, 'all-deliveries.jsonl'), 'utf8').split('\n').filter(Boolean)) {
      const delivery = JSON.parse(line) as { n: number; body: string };
      // The listing was taken after the three boots (n ≤ 66) and before smoke-0's delete began.
      if (delivery.n > 66) break;
      const n = decodeNotification(delivery.body);
      const route = routeEvent(n.eventType);
      if (!route || route.action !== 'upsert' || !route.family.startsWith('nova.')) continue;
      const { draft } = draftOf(n);
      const entry = last.get(draft.id) ?? {};
      entry[route.family === 'nova.legacy' ? 'legacy' : 'versioned'] = draft;
      last.set(draft.id, entry);
    }
    expect(last.size).toBe(3);
    let compared = 0;
    for (const server of servers) {
      const entry = last.get(server.id)!;
      const api = hashOf(serverDraft(server));
      expect(hashOf(entry.legacy!)).toBe(api);
      expect(hashOf(entry.versioned!)).toBe(api);
      compared += 1;
    }
    expect(compared).toBe(servers.length);
  });

  it('derives the API status from vm_state and task_state (building/networking → BUILD, deleting keeps ACTIVE)', () => {
    const lines = readFileSync(join(REAL, 'all-deliveries.jsonl'), 'utf8').split('\n').filter(Boolean);
    const nth = (k: number): OsloNotification => decodeNotification((JSON.parse(lines[k - 1]!) as { body: string }).body);
    expect(draftOf(nth(36)).draft).toMatchObject({ state: 'BUILD', attributes: { vm_state: 'building', task_state: 'networking' } });
    expect(draftOf(nth(35)).draft).toMatchObject({ state: 'BUILD', attributes: { vm_state: 'building', task_state: 'networking' } });
    expect(draftOf(nth(68)).draft).toMatchObject({ state: 'ACTIVE', attributes: { task_state: 'deleting' } });
    expect(draftOf(nth(67)).draft).toMatchObject({ state: 'ACTIVE', attributes: { task_state: 'deleting' } });
    // Before scheduling there is no host: no parent, like the API's null OS-EXT-SRV-ATTR:host.
    expect(draftOf(nth(10)).draft.parents).toEqual([]);
  });

  it('delete.end (legacy and versioned) deletes by id', () => {
    for (const f of ['nova--notifications.info--compute.instance.delete.end.body.json', 'nova--versioned_notifications.info--instance.delete.end.body.json']) {
      const { draft, action } = draftOf(decodeNotification(real(f)));
      expect(action).toBe('delete');
      expect(draft.id).toBe('f0e637c9-0667-4f24-90cd-96458dce258b');
    }
  });
});

describe('Nova versioned notification samples (upstream, $ref resolved)', () => {
  it('instance.create.end: every field from the resolved sample', () => {
    const s = novaSample('instance-create-end.json');
    const n: OsloNotification = { eventType: s.event_type, timestamp: '2026-01-01T00:00:00.000Z', payload: s.payload };
    expect(draftOf(n).draft).toEqual({
      type: 'nova.instance',
      id: '178b0921-8f85-4257-88b6-2e743b5a975c',
      name: 'some-server',
      state: 'ACTIVE',
      project: '6f70656e737461636b20342065766572',
      parents: [{ type: 'nova.host', id: 'compute' }],
      attributes: {
        availability_zone: 'nova',
        flavor: 'test_flavor',
        host: 'compute',
        image: '155d900f-4e14-4e4c-a73d-069cbf4541e6',
        user: 'fake',
        vm_state: 'active',
      },
    });
  });

  it('every instance.*.end / update / exists sample maps to a nova.instance with id and state', () => {
    let mapped = 0;
    for (const file of novaSampleFiles().filter((f) => f.startsWith('instance-'))) {
      const s = novaSample(file);
      const route = routeEvent(s.event_type);
      expect(route, file).toBeDefined();
      if (route!.action === 'ignore') continue;
      const { draft } = draftOf({ eventType: s.event_type, timestamp: '2026-01-01T00:00:00.000Z', payload: s.payload });
      expect(draft.type, file).toBe('nova.instance');
      expect(draft.id, file).toMatch(/^[0-9a-f-]{36}$/);
      expect(draft.state, file).toMatch(/^[A-Z_]+$/);
      expect(draft.state, file).not.toBe('UNKNOWN');
      mapped += 1;
    }
    expect(mapped).toBeGreaterThan(40);
  });

  it('power_off.end → SHUTOFF; the body oslo would send round-trips', () => {
    const s = novaSample('instance-power_off-end.json');
    const n = decodeNotification(osloBody(s, { messageId: '00000000-0000-0000-0000-000000000001', timestamp: '2026-11-25 11:43:02.120020' }));
    expect(n.timestamp).toBe('2026-11-25T11:43:02.120Z');
    expect(draftOf(n).draft.state).toBe('SHUTOFF');
  });
});

describe('Neutron, Cinder, Heat notifications reuse the poll sources’ mappings', () => {
  it('port.create.end (real Neutron) → neutron.port, field by field', () => {
    const { draft, action } = draftOf(decodeNotification(real('neutron--notifications.info--port.create.end.body.json')));
    expect(action).toBe('upsert');
    expect(draft).toMatchObject({
      type: 'neutron.port',
      id: '9c8d4ca2-3b5c-4907-bcd9-f7537fcfc5d5',
      name: 'smoke-port',
      state: 'DOWN',
      project: '257473bf2f4f4eec8d64026df9019b92',
      parents: [{ type: 'neutron.network', id: 'f2bcf0ff-839f-4a2d-8502-e36e3f34acad' }],
    });
    expect(draft.attributes).toMatchObject({ mac_address: 'fa:16:3e:4d:ab:13', fixed_ips: ['10.0.0.17'], admin_state_up: true });
  });

  it('port.delete.end (real Neutron) → delete of the port', () => {
    const { draft, action } = draftOf(decodeNotification(real('neutron--notifications.info--port.delete.end.body.json')));
    expect(action).toBe('delete');
    expect(draft.id).toBe('9c8d4ca2-3b5c-4907-bcd9-f7537fcfc5d5');
  });

  it('port.delete.end with only port_id still deletes', () => {
    const n: OsloNotification = { eventType: 'port.delete.end', timestamp: '2026-01-01T00:00:00.000Z', payload: { port_id: 'p-1' } };
    expect(draftOf(n).draft).toMatchObject({ type: 'neutron.port', id: 'p-1' });
  });

  it('legacy volume.attach.end (Watcher sample) → cinder.volume attached to its server', () => {
    const file = join(FIXTURES, 'openstack/watcher/watcher/tests/unit/decision_engine/model/notification/data/scenario_1_volume-attach.json');
    const s = JSON.parse(readFileSync(file, 'utf8')) as { event_type: string; payload: Record<string, unknown> };
    const { draft } = draftOf({ eventType: s.event_type, timestamp: '2026-01-01T00:00:00.000Z', payload: s.payload });
    expect(draft).toMatchObject({
      type: 'cinder.volume',
      id: '5028b1eb-8749-48ae-a42c-5bdd1323976f',
      name: 'name_0',
      state: 'in-use',
      project: '91FFFE30-78A0-4152-ACD2-8310FF274DC9',
      parents: [{ type: 'nova.instance', id: 'server' }],
    });
    expect(draft.attributes).toMatchObject({ size: 40, host: 'host_0@backend_0#pool_0' });
  });

  it('a versioned-object-wrapped volume payload is unwrapped', () => {
    const n: OsloNotification = {
      eventType: 'volume.create.end',
      timestamp: '2026-01-01T00:00:00.000Z',
      payload: { 'cinder_object.name': 'VolumePayload', 'cinder_object.data': { volume_id: 'v-1', status: 'available', size: 1, tenant_id: 'p' } },
    };
    expect(draftOf(n).draft).toMatchObject({ type: 'cinder.volume', id: 'v-1', state: 'available', project: 'p', attributes: { size: 1 } });
  });

  it('orchestration.stack.create.end → heat.stack with its ACTION_STATUS', () => {
    const n: OsloNotification = {
      eventType: 'orchestration.stack.create.end',
      timestamp: '2026-01-01T00:00:00.000Z',
      payload: { stack_identity: 'd2df0a2a-765c-44ef-b117-32d599bc9c3b', stack_name: 'newstack', tenant_id: 'a077', state: 'CREATE_COMPLETE', state_reason: 'Stack CREATE completed successfully' },
    };
    expect(draftOf(n).draft).toMatchObject({ type: 'heat.stack', id: 'd2df0a2a-765c-44ef-b117-32d599bc9c3b', name: 'newstack', state: 'CREATE_COMPLETE', project: 'a077' });
  });

  it('a nested stack: its notification and its poll record (show_nested, with parent) give one hash', () => {
    const n: OsloNotification = {
      eventType: 'orchestration.stack.update.end',
      timestamp: '2026-01-01T00:00:00.000Z',
      // Heat's stack_identity is the stack's ARN.
      payload: { stack_identity: 'arn:openstack:heat::a077:stacks/web-group-x7k2/5e7e5ed0', stack_name: 'web-group-x7k2', tenant_id: 'a077', state: 'UPDATE_COMPLETE', state_reason: 'Stack UPDATE completed successfully' },
    };
    const polled = { id: '5e7e5ed0', stack_name: 'web-group-x7k2', stack_status: 'UPDATE_COMPLETE', stack_status_reason: 'Stack UPDATE completed successfully', project: 'a077', parent: '3095aefc' };
    expect(hashOf(draftOf(n).draft)).toBe(hashOf(stackDraft(apiStackFacts(polled))));
  });
});

describe('payload missing its id', () => {
  it('throws a reason naming the event type, the message and the missing field', () => {
    const n: OsloNotification = { messageId: 'm-1', eventType: 'instance.update', timestamp: '2026-01-01T00:00:00.000Z', payload: { 'nova_object.data': { display_name: 'x' } } };
    expect(() => draftOf(n)).toThrow('instance.update (message m-1): payload has no nova_object.data.uuid');
    const legacy: OsloNotification = { eventType: 'compute.instance.update', timestamp: '2026-01-01T00:00:00.000Z', payload: { state: 'active' } };
    expect(() => draftOf(legacy)).toThrow(/payload has no instance_id/);
    const port: OsloNotification = { eventType: 'port.update.end', timestamp: '2026-01-01T00:00:00.000Z', payload: { port: { name: 'p' } } };
    expect(() => draftOf(port)).toThrow(/payload has no port.id or port_id/);
    // An empty id is no id either.
    const empty: OsloNotification = { eventType: 'compute.instance.update', timestamp: '2026-01-01T00:00:00.000Z', payload: { instance_id: '', state: 'active' } };
    expect(() => draftOf(empty)).toThrow(/payload has no instance_id/);
  });
});

describe('options and transport URLs', () => {
  it('parses oslo transport URLs with failover hosts and a vhost', () => {
    expect(parseTransportUrl('rabbit://nova:s%40cret@10.0.0.1:5673,nova:s%40cret@10.0.0.2/openstack')).toEqual([
      { hostname: '10.0.0.1', port: 5673, username: 'nova', password: 's@cret', vhost: 'openstack', tls: false },
      { hostname: '10.0.0.2', port: 5672, username: 'nova', password: 's@cret', vhost: 'openstack', tls: false },
    ]);
    expect(parseTransportUrl('rabbit://127.0.0.1/')).toEqual([{ hostname: '127.0.0.1', port: 5672, username: 'guest', password: 'guest', vhost: '/', tls: false }]);
    expect(parseTransportUrl('rabbit://u:p@[::1]:5671/?ssl=1')[0]).toMatchObject({ hostname: '::1', port: 5671, tls: true });
    expect(() => parseTransportUrl('kafka://h:9092/')).toThrow(/unsupported scheme "kafka:"/);
    expect(() => parseTransportUrl('rabbit://u:p@h:99999/')).toThrow(/out of range/);
    expect(redactUrl('rabbit://u:secret@h:5672,v:other@h2/')).toBe('rabbit://u:***@h:5672,v:***@h2/');
  });

  it('reads the options with defaults, and names the bad field', () => {
    const o = readNotificationOptions(new OptionReader({ transportUrl: 'rabbit://u:p@127.0.0.1:5672/' }, 'sources[0]'));
    expect(o).toMatchObject({
      // Every family's: Aodh, Ironic and Octavia publish on their own exchanges, Ironic on its own topic.
      exchanges: ['nova', 'neutron', 'cinder', 'heat', 'openstack', 'aodh', 'ironic', 'octavia'],
      topics: ['notifications', 'versioned_notifications', 'ironic_versioned_notifications'],
      priorities: ['info'],
      queue: 'synchronizer',
      durableExchanges: false,
      durableQueue: true,
      transportUrl: 'rabbit://u:***@127.0.0.1:5672/',
    });
    expect(() => readNotificationOptions(new OptionReader({ transportUrl: 'http://x' }, 'sources[3]'))).toThrow(/^sources\[3\]\.transportUrl: unsupported scheme/);
    expect(() => readNotificationOptions(new OptionReader({ transportUrl: 'rabbit://h/', priorities: ['loud'] }, 'sources[0]'))).toThrow(
      /sources\[0\]\.priorities: unknown priority "loud"/,
    );
  });

  it('is a built-in source: use openstack.notifications in a config', async () => {
    const config = await parseConfig({ sources: [{ name: 'bus', use: 'openstack.notifications', transportUrl: 'rabbit://u:p@127.0.0.1:5672/', exchanges: ['nova'] }] }, '/tmp');
    expect(config.sources[0]).toMatchObject({ name: 'bus', use: 'openstack.notifications', options: { exchanges: ['nova'], queue: 'synchronizer' } });
    await expect(parseConfig({ sources: [{ name: 'bus', use: 'openstack.notifications', transportUrl: 'rabbit://h/', exchange: 'nova' }] }, '/tmp')).rejects.toThrow(
      'sources[0].exchange: is not a known option here',
    );
  });
});
