import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OptionReader } from '../../src/options.js';
import { type ApiVolume, apiVolumeFacts, pickVolume, volumeDraft } from '../../sources/openstack/cinder.js';
import { type ApiStack, apiStackFacts, stackDraft } from '../../sources/openstack/heat.js';
import { authRequestBody, findEndpoint, parseTokenResponse, readCloudOptions } from '../../sources/openstack/keystone.js';
import { type ApiNetwork, type ApiPort, networkDraft, pickPort, portDraft } from '../../sources/openstack/neutron.js';
import { type ApiHypervisor, type ApiServer, type ApiZone, hypervisorDraft, pickServer, serverDraft, zoneDraft, zoneOfHosts } from '../../sources/openstack/nova.js';
import { fixturePath } from '../support/fixtures.js';
import { fixture } from '../support/openstack-server.js';

const REAL = ['wire', 'real-openstack', 'api'];

describe('Nova mappings (real Zed responses)', () => {
  it('maps a server field by field', () => {
    const [server] = fixture<{ servers: ApiServer[] }>(...REAL, 'api-servers-detail-all-tenants.json').servers;
    expect(serverDraft(server!)).toEqual({
      type: 'nova.instance',
      id: '0ca13c88-108b-4f84-a588-642bc89d7de8',
      name: 'smoke-2',
      state: 'ACTIVE',
      project: 'c5859a3ceb7840c9b49519c58e01b4da',
      parents: [{ type: 'nova.host', id: 'fake-compute-0' }],
      attributes: { availability_zone: 'nova', flavor: 'm1.tiny', host: 'fake-compute-0', image: '8b0d1614-49e6-4a3b-bbce-2b4070cbda58', user: '027f778d42cd4566a7c971f0304f7c0a', vm_state: 'active' },
    });
  });

  it('pickServer keeps every field serverDraft reads (real servers and every upstream microversion sample)', () => {
    const samples = readdirSync(fixturePath('openstack', 'nova', 'doc', 'api_samples', 'servers'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('servers-details-resp.json'))
      .flatMap((f) => fixture<{ servers: ApiServer[] }>('openstack', 'nova', 'doc', 'api_samples', 'servers', f).servers);
    const servers = [...fixture<{ servers: ApiServer[] }>(...REAL, 'api-servers-detail-all-tenants.json').servers, ...samples];
    expect(samples.length).toBeGreaterThan(10);
    for (const server of servers) {
      const picked = pickServer(server);
      expect(serverDraft(picked)).toEqual(serverDraft(server));
      expect(JSON.stringify(picked).length).toBeLessThan(JSON.stringify(server).length / 2);
    }
  });

  it('maps a hypervisor to nova.host named by its service host, in its zone', () => {
    const [h] = fixture<{ hypervisors: ApiHypervisor[] }>(...REAL, 'api-os-hypervisors-detail.json').hypervisors;
    expect(hypervisorDraft(h!, 'nova')).toEqual({
      type: 'nova.host',
      id: 'fake-compute-0',
      name: 'fake-compute-0',
      state: 'up',
      parents: [{ type: 'nova.zone', id: 'nova' }],
      attributes: { host_ip: '127.0.0.1', hypervisor_id: '77926ca4-05c7-460f-9ad1-78c3c85fbb54', hypervisor_type: 'fake', status: 'enabled' },
    });
  });

  it('maps zones (upstream sample): state from zoneState, compute hosts as children and host → zone', () => {
    const zones = fixture<{ availabilityZoneInfo: ApiZone[] }>('openstack/nova/doc/api_samples/os-availability-zone/availability-zone-detail-resp.json').availabilityZoneInfo;
    expect(zones.map(zoneDraft)).toEqual([
      { type: 'nova.zone', id: 'internal', name: 'internal', state: 'AVAILABLE', parents: [], children: [], attributes: {} },
      { type: 'nova.zone', id: 'nova', name: 'nova', state: 'AVAILABLE', parents: [], children: [{ type: 'nova.host', id: 'compute' }], attributes: {} },
    ]);
    expect([...zoneOfHosts(zones)]).toEqual([['compute', 'nova']]);
    expect(zoneDraft({ zoneName: 'z', zoneState: { available: false }, hosts: null }).state).toBe('UNAVAILABLE');
  });
});

describe('Neutron mappings', () => {
  it('maps the real network', () => {
    const [n] = fixture<{ networks: ApiNetwork[] }>(...REAL, 'api-neutron-networks.json').networks;
    expect(networkDraft(n!)).toEqual({
      type: 'neutron.network',
      id: 'f2bcf0ff-839f-4a2d-8502-e36e3f34acad',
      name: 'private',
      state: 'ACTIVE',
      project: '257473bf2f4f4eec8d64026df9019b92',
      parents: [],
      attributes: { admin_state_up: true, mtu: 1450, network_type: 'vxlan', router_external: false, shared: false },
    });
  });

  it('maps an upstream port: a router port has only its network as parent', () => {
    const [p] = fixture<{ ports: ApiPort[] }>('openstack/neutron-lib/api-ref/source/v2/samples/ports/ports-list-response.json').ports;
    expect(portDraft(p!)).toEqual({
      type: 'neutron.port',
      id: 'd80b1a3b-4fc1-49f3-952e-1e2ab7081d8b',
      name: undefined,
      state: 'ACTIVE',
      project: undefined,
      parents: [{ type: 'neutron.network', id: '70c1db1f-b701-45bd-96e0-a313ee3430b3' }],
      attributes: { admin_state_up: true, device_id: '9ae135f4-b6e0-4dad-9e91-3c223e385824', device_owner: 'network:router_gateway', fixed_ips: ['172.24.4.2'], mac_address: 'fa:16:3e:58:42:ed' },
    });
  });

  it('pickPort keeps every field portDraft reads (real and upstream ports)', () => {
    const ports = [
      ...fixture<{ ports: ApiPort[] }>(...REAL, 'api-neutron-ports.json').ports,
      ...fixture<{ ports: ApiPort[] }>('openstack/neutron-lib/api-ref/source/v2/samples/ports/ports-list-response.json').ports,
    ];
    // With every field a port draft reads, set.
    ports.push({ id: 'p', name: 'eth0', status: 'DOWN', project_id: 'pr', tenant_id: 'pr', network_id: 'n', device_id: 'vm', device_owner: 'compute:nova', mac_address: 'fa:16:3e:00:00:01', admin_state_up: false, fixed_ips: [{ ip_address: '10.0.0.5', subnet_id: 's' }], 'binding:host_id': 'compute-1' });
    for (const port of ports) expect(portDraft(pickPort(port))).toEqual(portDraft(port));
  });

  it('a compute:* port is a child of its instance', () => {
    expect(portDraft({ id: 'p', network_id: 'n', device_id: 'vm', device_owner: 'compute:nova' }).parents).toEqual([
      { type: 'neutron.network', id: 'n' },
      { type: 'nova.instance', id: 'vm' },
    ]);
  });
});

describe('Cinder and Heat mappings', () => {
  it('maps the real volume, and attachments to instances', () => {
    const [v] = fixture<{ volumes: ApiVolume[] }>(...REAL, 'api-cinder-volumes-detail.json').volumes;
    expect(volumeDraft(apiVolumeFacts(v!))).toEqual({
      type: 'cinder.volume',
      id: '7b303ace-c62a-488b-9fe7-b1bfcd3a649f',
      name: 'smoke-vol',
      state: 'creating',
      project: 'c5859a3ceb7840c9b49519c58e01b4da',
      parents: [],
      attributes: { availability_zone: 'nova', size: 1 },
    });
    expect(volumeDraft(apiVolumeFacts({ id: 'v', attachments: [{ server_id: 'b' }, { server_id: 'a' }] })).parents).toEqual([
      { type: 'nova.instance', id: 'a' },
      { type: 'nova.instance', id: 'b' },
    ]);
  });

  it('pickVolume keeps every field a volume draft reads (real volumes and every upstream sample)', () => {
    const samples = readdirSync(fixturePath('openstack', 'cinder', 'api-ref', 'source', 'v3', 'samples', 'volumes'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('volumes-list-detailed-response.json'))
      .flatMap((f) => fixture<{ volumes: ApiVolume[] }>('openstack', 'cinder', 'api-ref', 'source', 'v3', 'samples', 'volumes', f).volumes);
    const volumes = [...fixture<{ volumes: ApiVolume[] }>(...REAL, 'api-cinder-volumes-detail.json').volumes, ...samples];
    expect(samples.length).toBeGreaterThan(2);
    // With every field a volume draft reads, set.
    volumes.push({ id: 'v', name: 'data', status: 'in-use', size: 10, availability_zone: 'az1', 'os-vol-tenant-attr:tenant_id': 'p', 'os-vol-host-attr:host': 'cinder@lvm#pool', attachments: [{ server_id: 'b' }, { server_id: 'a' }] });
    for (const volume of volumes) expect(volumeDraft(apiVolumeFacts(pickVolume(volume)))).toEqual(volumeDraft(apiVolumeFacts(volume)));
  });

  it('maps the upstream stack; project from its self link', () => {
    const [s] = fixture<{ stacks: ApiStack[] }>('openstack/heat/api-ref/source/v1/samples/stacks-list-response.json').stacks;
    expect(stackDraft(apiStackFacts(s!))).toEqual({
      type: 'heat.stack',
      id: '3095aefc-09fb-4bc7-b1f0-f21a304e864c',
      name: 'simple_stack',
      state: 'CREATE_COMPLETE',
      project: 'eb1c63a4f77141548385f113a28f0f52',
      parents: [],
      attributes: { status_reason: 'Stack CREATE completed successfully' },
    });
  });
});

describe('Keystone', () => {
  it('reads the real token response and finds endpoints by type, interface and region', () => {
    const body = fixture(...REAL, 'api-keystone-post-auth-tokens.json');
    const token = parseTokenResponse('secret-token', body, 'POST x');
    expect(token).toMatchObject({ id: 'secret-token', projectId: '257473bf2f4f4eec8d64026df9019b92', expiresAt: Date.parse('2026-11-25T13:29:27Z') });
    expect(findEndpoint(token.catalog, ['compute'], 'internal', 'RegionOne')).toBe('http://127.0.0.1:18503/v2.1');
    expect(findEndpoint(token.catalog, ['block-storage', 'volumev3'], 'public')).toBe('http://127.0.0.1:18505/v3/257473bf2f4f4eec8d64026df9019b92');
    expect(() => findEndpoint(token.catalog, ['compute'], 'public', 'RegionTwo')).toThrow(/compute service has no public endpoint in region RegionTwo/);
    expect(() => findEndpoint(token.catalog, ['orchestration'], 'public')).toThrow(/no service of type orchestration/);
  });

  it('builds password (project-scoped) and application-credential requests', () => {
    expect(authRequestBody({ authUrl: 'x', authType: 'password', username: 'admin', password: 'pw', projectName: 'admin' })).toEqual({
      auth: { identity: { methods: ['password'], password: { user: { name: 'admin', domain: { name: 'Default' }, password: 'pw' } } }, scope: { project: { name: 'admin', domain: { name: 'Default' } } } },
    });
    expect(authRequestBody({ authUrl: 'x', authType: 'application_credential', applicationCredentialId: 'id', applicationCredentialSecret: 's' })).toEqual({
      auth: { identity: { methods: ['application_credential'], application_credential: { id: 'id', secret: 's' } } },
    });
  });

  it('takes credentials from auth, clouds.yaml or OS_* variables, naming the bad field', () => {
    const fromAuth = readCloudOptions(new OptionReader({ auth: { auth_url: 'http://127.0.0.1:5000', username: 'u', password: 'p', project_name: 'p' }, region: 'R' }, 'sources[0]'), {});
    expect(fromAuth).toMatchObject({ credentials: { authType: 'password', username: 'u', projectName: 'p' }, region: 'R', interface: 'public' });

    const dir = mkdtempSync(join(tmpdir(), 'clouds-'));
    const file = join(dir, 'clouds.yaml');
    writeFileSync(file, 'clouds:\n  mycloud:\n    region_name: R1\n    interface: internal\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      application_credential_id: ac\n      application_credential_secret: s\n');
    const fromCloud = readCloudOptions(new OptionReader({ cloud: 'mycloud' }, 'sources[0]'), { OS_CLIENT_CONFIG_FILE: file, HOME: dir }, dir);
    expect(fromCloud).toMatchObject({ credentials: { authType: 'application_credential', applicationCredentialId: 'ac' }, region: 'R1', interface: 'internal' });
    expect(() => readCloudOptions(new OptionReader({ cloud: 'other' }, 'sources[0]'), { OS_CLIENT_CONFIG_FILE: file, HOME: dir }, dir)).toThrow(/sources\[0\]\.cloud: no cloud "other" in clouds.yaml/);

    // Secrets kept in secure.yaml are laid onto the clouds.yaml entry, as the OpenStack tools do.
    const split = mkdtempSync(join(tmpdir(), 'clouds-'));
    writeFileSync(join(split, 'clouds.yaml'), 'clouds:\n  split:\n    region_name: R3\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: u\n      project_name: p\n');
    writeFileSync(join(split, 'secure.yaml'), 'clouds:\n  split:\n    auth:\n      password: from-secure\n');
    const fromSecure = readCloudOptions(new OptionReader({ cloud: 'split' }, 'sources[0]'), { HOME: split }, split);
    expect(fromSecure).toMatchObject({ credentials: { authType: 'password', username: 'u', password: 'from-secure', projectName: 'p' }, region: 'R3' });
    expect(fromSecure.origin).toContain(`secrets from ${join(split, 'secure.yaml')}`);
    // Without it, the missing password is named.
    expect(() => readCloudOptions(new OptionReader({ cloud: 'split' }, 'sources[0]'), { HOME: split, OS_CLIENT_CONFIG_FILE: join(split, 'clouds.yaml') }, join(split, 'elsewhere'))).toThrow(/password/);

    const env = { OS_AUTH_URL: 'http://127.0.0.1:5000/v3', OS_USERNAME: 'u', OS_PASSWORD: 'p', OS_PROJECT_NAME: 'p', OS_DOMAIN_NAME: 'D', OS_REGION_NAME: 'R2', HOME: dir };
    expect(readCloudOptions(new OptionReader({}, 'sources[0]'), env, dir)).toMatchObject({ credentials: { userDomainName: 'D', projectDomainName: 'D' }, region: 'R2', origin: 'OS_* environment' });
    expect(() => readCloudOptions(new OptionReader({}, 'sources[0]'), { HOME: dir }, dir)).toThrow(/sources\[0\]: no OpenStack credentials/);
    expect(() => readCloudOptions(new OptionReader({ auth: { auth_url: 'x', username: 'u', password: 'p' } }, 'sources[0]'), {})).toThrow(/sources\[0\]\.auth: auth: project_name or project_id is required/);
    expect(() => readCloudOptions(new OptionReader({ auth: { auth_url: 'x', usrname: 'u' } }, 'sources[0]'), {})).toThrow(/sources\[0\]\.auth\.usrname: is not a known Keystone auth option/);
  });
});
