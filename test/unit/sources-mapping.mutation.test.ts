import { describe, expect, it } from 'vitest';
import { createSource } from '../../src/config.js';
import { alertDraft } from '../../sources/alertmanager.js';
import { nagiosDraft } from '../../sources/nagios.js';
import { apiVolumeFacts, pickVolume, volumeDraft } from '../../sources/openstack/cinder.js';
import { present } from '../../sources/openstack/fields.js';
import { apiStackFacts, stackDraft } from '../../sources/openstack/heat.js';
import { instanceDraft, novaStatus } from '../../sources/openstack/instance.js';
import { networkDraft, pickPort, portDraft, portInstance } from '../../sources/openstack/neutron.js';
import { type OsloNotification, legacyInstanceFacts, notificationDraft, stackFacts, versionedInstanceFacts, volumeFacts } from '../../sources/openstack/notifications.js';
import { hypervisorDraft, novaRecordDraft, pickServer, serverDraft, zoneDraft, zoneOfHosts } from '../../sources/openstack/nova.js';

/**
 * The sources' mapping functions at their edges — absent, null and empty fields, fallbacks,
 * strings where numbers were expected — where the fixture-driven tests pass through only the
 * common case. Written to kill mutants (docs/testing.md, "Mutation testing").
 */

describe('OpenStack fields and instances', () => {
  it('present: null, undefined and the empty string are absent', () => {
    expect([present(null), present(undefined), present(''), present(' '), present('x')]).toStrictEqual([undefined, undefined, undefined, ' ', 'x']);
  });

  it("novaStatus follows Nova's vm_state × task_state table", () => {
    expect(novaStatus('active')).toBe('ACTIVE');
    expect(novaStatus('ACTIVE', 'REBOOTING')).toBe('REBOOT');
    expect(novaStatus('active', 'rebooting_hard')).toBe('HARD_REBOOT');
    expect(novaStatus('active', 'updating_password')).toBe('PASSWORD');
    expect(novaStatus('active', 'rebuild_spawning')).toBe('REBUILD');
    expect(novaStatus('active', 'migrating')).toBe('MIGRATING');
    expect(novaStatus('active', 'resize_finish')).toBe('RESIZE');
    expect(novaStatus('active', 'deleting')).toBe('ACTIVE');
    expect(novaStatus('active', null)).toBe('ACTIVE');
    expect(novaStatus('active', '')).toBe('ACTIVE');
    expect(novaStatus('building', 'spawning')).toBe('BUILD');
    expect(novaStatus('stopped')).toBe('SHUTOFF');
    expect(novaStatus('stopped', 'resize_prep')).toBe('RESIZE');
    expect(novaStatus('stopped', 'rebuilding')).toBe('REBUILD');
    expect(novaStatus('resized')).toBe('VERIFY_RESIZE');
    expect(novaStatus('resized', 'resize_reverting')).toBe('REVERT_RESIZE');
    expect(novaStatus('paused')).toBe('PAUSED');
    expect(novaStatus('paused', 'migrating')).toBe('MIGRATING');
    expect(novaStatus('suspended')).toBe('SUSPENDED');
    expect(novaStatus('rescued')).toBe('RESCUE');
    expect(novaStatus('error')).toBe('ERROR');
    expect(novaStatus('error', 'rebuilding')).toBe('REBUILD');
    expect(novaStatus('deleted')).toBe('DELETED');
    expect(novaStatus('soft-delete')).toBe('SOFT_DELETED');
    expect(novaStatus('shelved')).toBe('SHELVED');
    expect(novaStatus('shelved_offloaded')).toBe('SHELVED_OFFLOADED');
    expect(novaStatus('exploded')).toBe('UNKNOWN');
  });

  it('instanceDraft: the status wins over the derived one; every fact is optional', () => {
    expect(instanceDraft({ id: 'i', status: 'SHUTOFF', vmState: 'active' }).state).toBe('SHUTOFF');
    expect(instanceDraft({ id: 'i', status: '', vmState: 'stopped', taskState: 'resize_prep' }).state).toBe('RESIZE');
    expect(instanceDraft({ id: 'i' })).toStrictEqual({ type: 'nova.instance', id: 'i', name: undefined, state: undefined, project: undefined, parents: [], attributes: {} });
    const full = instanceDraft({ id: 'i', name: 'n', vmState: 'active', taskState: 'migrating', project: 'p', host: 'h', availabilityZone: 'z', flavor: 'f', image: 'im', user: 'u' });
    expect(full).toStrictEqual({
      type: 'nova.instance',
      id: 'i',
      name: 'n',
      state: 'MIGRATING',
      project: 'p',
      parents: [{ type: 'nova.host', id: 'h' }],
      attributes: { availability_zone: 'z', flavor: 'f', host: 'h', image: 'im', task_state: 'migrating', user: 'u', vm_state: 'active' },
    });
    expect(Object.keys(full.attributes!)).toStrictEqual(['availability_zone', 'flavor', 'host', 'image', 'task_state', 'user', 'vm_state']);
  });
});

describe('Nova', () => {
  it('pickServer and serverDraft: a flavor or image that is null, a string or absent', () => {
    const server = { id: 's', status: 'ACTIVE', flavor: null, image: '' };
    expect(pickServer(server)).toMatchObject({ flavor: null, image: '' });
    expect(pickServer({ id: 's', image: { id: 'img', links: [] } as { id: string } })).toMatchObject({ image: { id: 'img' } });
    expect(pickServer({ id: 's', flavor: { original_name: 'm1', id: 'x' } })).toMatchObject({ flavor: { original_name: 'm1' } });
    expect(serverDraft(server).attributes).toStrictEqual({});
    expect(serverDraft({ id: 's', image: 'not-an-object' }).attributes).toStrictEqual({});
    expect(serverDraft({ id: 's', image: { id: 'img' }, flavor: { original_name: 'm1' } }).attributes).toStrictEqual({ flavor: 'm1', image: 'img' });
  });

  it('hypervisorDraft: left out without a service host; attributes only when set; no zone, no parent', () => {
    expect(hypervisorDraft({ id: 1, service: null })).toBeUndefined();
    expect(hypervisorDraft({ id: 1, service: { host: '' } })).toBeUndefined();
    expect(hypervisorDraft({ id: 7, hypervisor_hostname: null, state: null, service: { host: 'c1', disabled_reason: 'maintenance' } })).toStrictEqual({
      type: 'nova.host',
      id: 'c1',
      name: undefined,
      state: undefined,
      parents: [],
      attributes: { disabled_reason: 'maintenance', hypervisor_id: '7' },
    });
  });

  it('zones: no state when availability is unknown; only nova-compute hosts, sorted; novaRecordDraft dispatches', () => {
    const zone = { zoneName: 'z', zoneState: null, hosts: { b: { 'nova-compute': null }, a: { 'nova-compute': { available: true } }, ctl: { 'nova-scheduler': {} }, gone: null } };
    expect(zoneDraft(zone)).toMatchObject({ state: undefined, children: [{ type: 'nova.host', id: 'a' }, { type: 'nova.host', id: 'b' }] });
    expect([...zoneOfHosts([zone])]).toStrictEqual([['a', 'z'], ['b', 'z']]);
    expect(novaRecordDraft({ kind: 'zone', zone })?.type).toBe('nova.zone');
    expect(novaRecordDraft({ kind: 'server', server: { id: 's' } })?.type).toBe('nova.instance');
    expect(novaRecordDraft({ kind: 'hypervisor', hypervisor: { id: 1, service: { host: 'h' } }, zone: 'z' })?.parents).toStrictEqual([{ type: 'nova.zone', id: 'z' }]);
    expect(() => novaRecordDraft({ kind: 'other' } as never)).toThrow('unhandled Nova record kind: {"kind":"other"}');
  });
});

describe('Neutron', () => {
  it('keeps false and 0 but not null, undefined or empty strings; project falls back to tenant_id', () => {
    expect(networkDraft({ id: 'n', admin_state_up: false, mtu: 0, shared: null, 'provider:network_type': '', tenant_id: 't', project_id: null })).toStrictEqual({
      type: 'neutron.network',
      id: 'n',
      name: undefined,
      state: undefined,
      project: 't',
      parents: [],
      attributes: { admin_state_up: false, mtu: 0 },
    });
    expect(networkDraft({ id: 'n', project_id: 'p', tenant_id: 't' }).project).toBe('p');
  });

  it('a port belongs to an instance only when a compute:* device owns it', () => {
    expect(portInstance({ device_owner: 'compute:nova', device_id: 'vm' })).toBe('vm');
    expect(portInstance({ device_owner: 'compute:nova', device_id: '' })).toBeUndefined();
    expect(portInstance({ device_owner: 'network:dhcp', device_id: 'dhcp' })).toBeUndefined();
    expect(portInstance({ device_owner: 'xcompute:nova', device_id: 'vm' })).toBeUndefined();
    expect(portInstance({ device_owner: null, device_id: 'vm' })).toBeUndefined();
  });

  it('portDraft keeps only real addresses; pickPort keeps addresses and drops the rest of fixed_ips', () => {
    const port = { id: 'p', network_id: '', device_owner: 'compute:z', device_id: 'vm', fixed_ips: [{ ip_address: '10.0.0.1', subnet_id: 's' }, { ip_address: '' }, { ip_address: null }, {}] };
    expect(portDraft(port)).toMatchObject({ parents: [{ type: 'nova.instance', id: 'vm' }], attributes: { device_id: 'vm', device_owner: 'compute:z', fixed_ips: ['10.0.0.1'] } });
    expect(portDraft({ id: 'p', fixed_ips: [{ ip_address: '' }] }).attributes).toStrictEqual({});
    expect(portDraft({ id: 'p', fixed_ips: null, tenant_id: 't' })).toMatchObject({ project: 't', parents: [], attributes: {} });
    expect(pickPort(port).fixed_ips).toStrictEqual([{ ip_address: '10.0.0.1' }, { ip_address: '' }, { ip_address: null }, {}]);
    expect(pickPort({ id: 'p', fixed_ips: null }).fixed_ips).toBeNull();
    expect(pickPort({ id: 'p', fixed_ips: [null as never] }).fixed_ips).toStrictEqual([null]);
    // An element that is no object stays as it is (portDraft then finds no address in it).
    expect(pickPort({ id: 'p', fixed_ips: ['10.0.0.9' as never] }).fixed_ips).toStrictEqual(['10.0.0.9']);
  });
});

describe('Cinder and Heat', () => {
  it('volumeDraft: size as a number whatever form it came in; attachments deduplicated and sorted', () => {
    const draft = (size: unknown): unknown => volumeDraft({ id: 'v', size: size as number }).attributes;
    expect([draft(10), draft('20'), draft(''), draft(null), draft(undefined), draft('big'), draft(0)]).toStrictEqual([{ size: 10 }, { size: 20 }, {}, {}, {}, {}, { size: 0 }]);
    expect(volumeDraft({ id: 'v', attachedTo: ['b', 'a', 'b'], availabilityZone: 'z', host: 'h@b#p' })).toStrictEqual({
      type: 'cinder.volume',
      id: 'v',
      name: undefined,
      state: undefined,
      project: undefined,
      parents: [{ type: 'nova.instance', id: 'a' }, { type: 'nova.instance', id: 'b' }],
      attributes: { availability_zone: 'z', host: 'h@b#p' },
    });
    expect(apiVolumeFacts({ id: 'v', attachments: [{ server_id: 's1' }, { server_id: '' }, { server_id: null }] }).attachedTo).toStrictEqual(['s1']);
    expect(apiVolumeFacts({ id: 'v', attachments: null }).attachedTo).toStrictEqual([]);
    expect(volumeDraft({ id: 'v' }).parents).toStrictEqual([]);
    expect(pickVolume({ id: 'v', attachments: null }).attachments).toBeNull();
    expect(pickVolume({ id: 'v', attachments: [{ server_id: 's', id: 'x' } as { server_id: string }, null as never] }).attachments).toStrictEqual([{ server_id: 's' }, null]);
    expect(pickVolume({ id: 'v', attachments: ['s' as never] }).attachments).toStrictEqual(['s']);
  });

  it('heat: project from the record, else from the self link only; status reason kept when set', () => {
    const links = [
      { rel: 'bookmark', href: 'http://h/v1/wrong/stacks/s/1' },
      { rel: 'self', href: null },
      { rel: 'self', href: 'http://h/v1/proj/stacks/s/1' },
    ];
    expect(apiStackFacts({ id: '1', links }).project).toBe('proj');
    expect(apiStackFacts({ id: '1', project: 'own', links }).project).toBe('own');
    expect(apiStackFacts({ id: '1', links: [{ rel: 'self', href: 'http://h/other' }] }).project).toBeUndefined();
    expect(apiStackFacts({ id: '1', links: null }).project).toBeUndefined();
    expect(stackDraft({ id: '1', statusReason: '' }).attributes).toStrictEqual({});
    expect(stackDraft({ id: '1', name: 'st', status: 'CREATE_COMPLETE', statusReason: 'done', project: 'p' })).toStrictEqual({
      type: 'heat.stack',
      id: '1',
      name: 'st',
      state: 'CREATE_COMPLETE',
      project: 'p',
      parents: [],
      attributes: { status_reason: 'done' },
    });
  });
});

describe('the sources map their API records with these functions', () => {
  it('openstack.heat and openstack.cinder: map is the draft of the record', async () => {
    // Created, never started: no request is made, so the address only has to be well formed.
    const auth = { auth_url: 'http://127.0.0.1:9/v3', username: 'u', password: 'p', project_name: 'p', user_domain_name: 'Default', project_domain_name: 'Default' };
    const heat = await createSource({ name: 'heat', use: 'openstack.heat', auth });
    const stack = { id: '1', stack_name: 'st', stack_status: 'CREATE_COMPLETE', stack_status_reason: 'done', links: [{ rel: 'self', href: 'http://h/v1/proj/stacks/st/1' }] };
    expect(heat.map(stack)).toStrictEqual(stackDraft(apiStackFacts(stack)));
    expect(heat.map(stack)).toMatchObject({ type: 'heat.stack', id: '1', project: 'proj' });
    const cinder = await createSource({ name: 'cinder', use: 'openstack.cinder', auth });
    const volume = { id: 'v', name: 'data', status: 'in-use', size: 10, attachments: [{ server_id: 's1' }] };
    expect(cinder.map(volume)).toStrictEqual(volumeDraft(apiVolumeFacts(volume)));
    expect(cinder.map(volume)).toMatchObject({ type: 'cinder.volume', id: 'v', parents: [{ type: 'nova.instance', id: 's1' }] });
  });
});

describe('notification payloads', () => {
  const n = (eventType: string, payload: Record<string, unknown>): OsloNotification => ({ eventType, timestamp: '2026-11-25T12:00:00.000Z', payload, messageId: 'm1' });

  it('legacy instance payloads: task state from new_task_state when present, image from meta or URL', () => {
    expect(legacyInstanceFacts(n('compute.instance.update', { instance_id: 'i', new_task_state: null, state_description: 'spawning' })).taskState).toBeUndefined();
    expect(legacyInstanceFacts(n('compute.instance.update', { instance_id: 'i', state_description: 'spawning' })).taskState).toBe('spawning');
    expect(legacyInstanceFacts(n('x', { instance_id: 'i', image_meta: { base_image_ref: 'meta' }, image_ref_url: 'http://g/images/url' })).image).toBe('meta');
    expect(legacyInstanceFacts(n('x', { instance_id: 'i', image_meta: { base_image_ref: '' }, image_ref_url: 'http://g/images/url' })).image).toBe('url');
    expect(legacyInstanceFacts(n('x', { instance_id: 'i', image_meta: 'none', image_ref_url: 'http://g/images/' })).image).toBeUndefined();
    expect(legacyInstanceFacts(n('x', { instance_id: 'i', image_ref_url: 'plain' })).image).toBe('plain');
    expect(legacyInstanceFacts(n('x', { instance_id: 'i' })).image).toBeUndefined();
  });

  it('versioned instance payloads must be nova_objects; the flavor name is read inside its own', () => {
    expect(() => versionedInstanceFacts(n('instance.update', { uuid: 'i' }))).toThrow('instance.update (message m1): payload is not a nova_object (no nova_object.data)');
    expect(() => versionedInstanceFacts({ ...n('instance.update', { 'nova_object.data': {} }), messageId: undefined })).toThrow(
      'instance.update (message without message_id): payload has no nova_object.data.uuid',
    );
    const d = { uuid: 'i', flavor: { 'nova_object.data': { name: 'm1' } } };
    expect(versionedInstanceFacts(n('instance.update', { 'nova_object.data': d })).flavor).toBe('m1');
    expect(versionedInstanceFacts(n('instance.update', { 'nova_object.data': { uuid: 'i', flavor: { name: 'm1' } } })).flavor).toBeUndefined();
  });

  it('volume payloads: wrapped or flat, attachments by server_id or instance_uuid, size as given', () => {
    const flat = volumeFacts(n('volume.attach.end', { volume_id: 'v', size: '3', volume_attachment: [{ server_id: 'a' }, { instance_uuid: 'b' }, { server_id: '' }, 'x'] }));
    expect(flat).toMatchObject({ id: 'v', size: '3', attachedTo: ['a', 'b'] });
    expect(volumeFacts(n('volume.x', { volume_id: 'v', size: true, volume_attachment: 'no' }))).toMatchObject({ size: undefined, attachedTo: [] });
    expect(volumeFacts(n('volume.x', { 'versioned_object.data': { volume_id: 'w', size: 2 } }))).toMatchObject({ id: 'w', size: 2 });
    expect(volumeFacts(n('volume.x', { 'cinder_object.data': { volume_id: 'c' }, 'versioned_object.data': { volume_id: 'w' } })).id).toBe('c');
    expect(volumeFacts(n('volume.x', { 'cinder_object.data': 'text', volume_id: 'flat' })).id).toBe('flat');
  });

  it('a payload without the id its entity needs is refused, naming the event, the message and the field', () => {
    expect(() => versionedInstanceFacts({ ...n('instance.update', { uuid: 'i' }), messageId: undefined })).toThrow('instance.update (message without message_id): payload is not a nova_object');
    expect(() => volumeFacts(n('volume.attach.end', { size: 1 }))).toThrow('volume.attach.end (message m1): payload has no volume_id');
    expect(() => stackFacts(n('orchestration.stack.update.end', { stack_name: 's' }))).toThrow('orchestration.stack.update.end (message m1): payload has no stack_identity');
    expect(() => notificationDraft({ family: 'octavia.loadbalancer', action: 'upsert', notification: n('octavia.loadbalancer.create.end', { name: 'lb' }) })).toThrow(
      'octavia.loadbalancer.create.end (message m1): payload has no loadbalancer_id',
    );
  });

  it('alarms: a creation maps the whole alarm, a transition only the fields its detail names', () => {
    const created = notificationDraft({ family: 'aodh.alarm', action: 'upsert', notification: n('alarm.creation', { alarm_id: 'a1', detail: { name: 'cpu', type: 'event', severity: 'low' } }) });
    expect(created).toStrictEqual({ type: 'aodh.alarm', id: 'a1', name: 'cpu', state: undefined, project: undefined, parents: [], attributes: { severity: 'low', type: 'event' } });
    const moved = notificationDraft({ family: 'aodh.alarm', action: 'patch', notification: n('alarm.state_transition', { alarm_id: 'a1', detail: { state: 'alarm' } }) });
    expect(moved).toStrictEqual({ type: 'aodh.alarm', id: 'a1', state: 'alarm' });
  });

  it("stack payloads: the id is the identity's last path segment", () => {
    expect(stackFacts(n('orchestration.stack.update.end', { stack_identity: 'arn:openstack:heat::p:stacks/name/abc' })).id).toBe('abc');
    expect(stackFacts(n('orchestration.stack.update.end', { stack_identity: 'abc' })).id).toBe('abc');
    expect(stackFacts(n('orchestration.stack.update.end', { stack_identity: 'stacks/name/' })).id).toBe('stacks/name/');
  });

  it('neutron payloads: the record under its kind, or only `<kind>_id` on deletes', () => {
    const port = notificationDraft({ family: 'neutron.port', action: 'delete', notification: n('port.delete.end', { port_id: 'p1' }) });
    expect(port).toMatchObject({ type: 'neutron.port', id: 'p1' });
    const net = notificationDraft({ family: 'neutron.network', action: 'upsert', notification: n('network.create.end', { network: { id: 'n1', name: 'net' } }) });
    expect(net).toMatchObject({ type: 'neutron.network', id: 'n1', name: 'net' });
    expect(() => notificationDraft({ family: 'neutron.network', action: 'upsert', notification: n('network.create.end', { network: 'x' }) })).toThrow(
      'network.create.end (message m1): payload has no network.id or network_id',
    );
  });
});

describe('monitoring', () => {
  it('nagiosDraft: attributes only when known; a service is named and parented by its host', () => {
    // Strict: no member at all, not one holding undefined, for what the record does not say.
    expect(nagiosDraft({ kind: 'host', host: 'h', state: 'UP', output: '' }).attributes).toStrictEqual({});
    expect(nagiosDraft({ kind: 'host', host: 'h', state: 'UP', output: 'ok', stateType: 'HARD', lastStateChange: 'x', acknowledged: false, inDowntime: false, flapping: false }).attributes).toStrictEqual({
      output: 'ok',
      stateType: 'HARD',
      lastStateChange: 'x',
      acknowledged: false,
      inDowntime: false,
      flapping: false,
    });
    expect(nagiosDraft({ kind: 'service', host: 'h', service: 'disk', state: 'OK', output: '' })).toMatchObject({
      type: 'nagios.service',
      id: 'h/disk',
      name: 'disk',
      parents: [{ type: 'nagios.host', id: 'h' }],
      attributes: { host: 'h' },
    });
  });

  it('alertDraft: project from its label, only the chosen annotations, FIRING without severity', () => {
    const alert = {
      fingerprint: 'f',
      labels: { alertname: 'Down', tenant: 'p1', sev: 'warning' },
      annotations: { summary: 's', runbook: 'r' },
      startsAt: '2026-11-25T12:00:00.000Z',
      status: { state: 'active' as const, silencedBy: [], inhibitedBy: [] },
    };
    expect(alertDraft(alert, { projectLabel: 'tenant', severityLabel: 'sev', annotations: ['runbook', 'missing'] })).toMatchObject({
      project: 'p1',
      state: 'WARNING',
      attributes: { severity: 'warning', annotations: { runbook: 'r' } },
    });
    const plain = alertDraft(alert);
    expect(plain.project).toBeUndefined();
    expect(plain.state).toBe('FIRING');
    expect(plain.attributes).not.toHaveProperty('severity');
    expect(plain.attributes).toMatchObject({ annotations: { summary: 's' }, status: 'active', startsAt: '2026-11-25T12:00:00.000Z' });
    // Silences and inhibitions are sets: sorted, so Alertmanager's order does not change the hash.
    const silenced = alertDraft({ ...alert, status: { state: 'suppressed' as const, silencedBy: ['s2', 's1'], inhibitedBy: ['i2', 'i1'] } });
    expect(silenced.attributes).toMatchObject({ silencedBy: ['s1', 's2'], inhibitedBy: ['i1', 'i2'] });
    expect(silenced.state).toBe('SUPPRESSED');
  });
});
