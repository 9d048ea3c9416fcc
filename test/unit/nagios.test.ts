import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { readFixture } from '../support/fixtures.js';
import { type MonitoringServer, type Reply, startMonitoringServer, wire } from '../support/monitoring-server.js';
import { waitFor } from '../support/wait.js';

const CGI = '/cgi-bin/nagios4';
const auth = { username: 'nagiosadmin', password: 's3cret-pw' };

type StatusDoc = { result: Record<string, unknown>; data: { hostlist?: Record<string, Record<string, unknown>>; servicelist?: Record<string, Record<string, Record<string, unknown>>> } };
const json = (doc: unknown): Reply => ({ body: JSON.stringify(doc) });

let server: MonitoringServer;
let sync: Synchronizer | undefined;
let events: EntityEvent[];

beforeEach(async () => {
  server = await startMonitoringServer({ basicAuth: auth });
  server.route(`${CGI}/statusjson.cgi`, { query: 'hostlist' }, wire('nagios-statusjson-hostlist-details.json'));
  server.route(`${CGI}/statusjson.cgi`, { query: 'servicelist' }, wire('nagios-statusjson-servicelist-details.json'));
  events = [];
});

afterEach(async () => {
  sync?.stop();
  sync = undefined;
  await server.close();
});

async function start(extra: Record<string, unknown> = {}): Promise<Synchronizer> {
  const source = await createSource({ name: 'nagios', use: 'nagios', url: `${server.url}${CGI}`, ...auth, interval: '30ms', timeout: '2s', backoff: '20ms', ...extra });
  sync = createSynchronizer({ sources: [source] });
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
  return sync;
}

const polls = (query: string): number => server.requests.filter((r) => r.url.includes(`query=${query}`)).length;

describe('nagios source (statusjson.cgi over HTTP)', () => {
  it('creates a nagios.host and its nagios.service entities, with basic auth', async () => {
    await start({ attach: [{ type: 'nova.host', pattern: '^(.+)$' }] });
    await waitFor('9 creates', () => events.length >= 9);
    expect(server.requests[0]?.authorization).toBe(`Basic ${Buffer.from('nagiosadmin:s3cret-pw').toString('base64')}`);
    expect(server.requests.some((r) => r.url === `${CGI}/statusjson.cgi?query=hostlist&details=true`)).toBe(true);
    const host = events.find((e) => e.entity.key === 'nagios.host:localhost')!;
    expect(host.action).toBe('create');
    expect(host.entity).toMatchObject({ state: 'UP', source: 'nagios', parents: [{ type: 'nova.host', id: 'localhost' }] });
    const ssh = events.find((e) => e.entity.key === 'nagios.service:localhost/SSH')!;
    expect(ssh.entity).toMatchObject({ state: 'CRITICAL', parents: [{ type: 'nagios.host', id: 'localhost' }] });
    expect(sync!.health().nagios?.status).toBe('up');
  });

  it('makes no event while a check stays in its state, even when its output text moves; an update when the state changes', async () => {
    const services = readFixture<StatusDoc>('wire', 'nagios-statusjson-servicelist-details.json');
    const load = services.data.servicelist!.localhost!['Current Load']!;
    let n = 0;
    server.route(`${CGI}/statusjson.cgi`, { query: 'servicelist' }, () => {
      n += 1;
      // Every check runs again: new last_check and new numbers in the output, same state.
      load.last_check = 1795607047000 + n * 1000;
      load.plugin_output = `LOAD OK - total load average: 0.${n}, 0.95, 0.69`;
      return json(services);
    });
    await start();
    await waitFor('creates', () => events.length >= 9);
    const first = polls('servicelist');
    await waitFor('three more polls', () => polls('servicelist') >= first + 3);
    expect(events).toHaveLength(9);

    services.data.servicelist!.localhost!['Current Load']!.status = 4;
    const update = await waitFor('the update', () => events.find((e) => e.action === 'update'));
    expect(update.entity).toMatchObject({ key: 'nagios.service:localhost/Current Load', state: 'WARNING' });
    expect(update.changed).toContain('state');
    expect(update.changed).toContain('attributes.output'); // the text of the new state
    expect(update.entity.attributes.output).toMatch(/^LOAD OK - total load average: 0\.\d+, 0.95, 0.69$/);
  });

  it('makes no event when Nagios fills in last_state_change of a host that stayed UP (Nagios 4 after a passive result)', async () => {
    const hosts = readFixture<StatusDoc>('wire', 'nagios-statusjson-hostlist-details.json');
    const host = hosts.data.hostlist!.localhost!;
    host.last_state_change = 0; // not yet known
    server.route(`${CGI}/statusjson.cgi`, { query: 'hostlist' }, () => json(hosts));
    await start();
    await waitFor('creates', () => events.length >= 9);
    expect(events.find((e) => e.entity.key === 'nagios.host:localhost')!.entity.attributes.lastStateChange).toBeUndefined();
    host.last_state_change = 1795607044000; // filled in, still UP
    const first = polls('hostlist');
    await waitFor('three more polls', () => polls('hostlist') >= first + 3);
    expect(events).toHaveLength(9);

    host.status = 4; // DOWN: a real change, with its time
    host.last_state_change = 1795607099000;
    const update = await waitFor('the update', () => events.find((e) => e.action === 'update'));
    expect(update.entity).toMatchObject({ key: 'nagios.host:localhost', state: 'DOWN', attributes: { lastStateChange: new Date(1795607099000).toISOString() } });
  });

  it('reports the latest output as an update with output: latest', async () => {
    const services = readFixture<StatusDoc>('wire', 'nagios-statusjson-servicelist-details.json');
    let n = 0;
    server.route(`${CGI}/statusjson.cgi`, { query: 'servicelist' }, () => {
      n += 1;
      services.data.servicelist!.localhost!.PING!.plugin_output = `PING OK - Packet loss = 0%, RTA = 0.${n} ms`;
      return json(services);
    });
    await start({ output: 'latest' });
    const update = await waitFor('an update', () => events.find((e) => e.action === 'update'));
    expect(update.entity.key).toBe('nagios.service:localhost/PING');
    expect(update.changed).toEqual(['attributes.output']);
  });

  it('an unauthorized user (200, empty lists) is a health error, not mass deletion', async () => {
    let unauthorized = false;
    server.route(`${CGI}/statusjson.cgi`, { query: 'hostlist' }, () => wire(unauthorized ? 'nagios-statusjson-hostlist-details-unauthorized.json' : 'nagios-statusjson-hostlist-details.json'));
    server.route(`${CGI}/statusjson.cgi`, { query: 'servicelist' }, () => wire(unauthorized ? 'nagios-statusjson-servicelist-details-unauthorized.json' : 'nagios-statusjson-servicelist-details.json'));
    await start();
    await waitFor('creates', () => events.length >= 9);
    unauthorized = true;
    const health = await waitFor('health down', () => (sync!.health().nagios?.status === 'down' ? sync!.health().nagios : undefined));
    expect(health.error).toMatch(/^nagios: GET http:\/\/127\.0\.0\.1:\d+\/cgi-bin\/nagios4\/statusjson\.cgi\?query=hostlist&details=true: no hosts visible to user "viewer"/);
    const p = polls('hostlist');
    await waitFor('another failed poll', () => polls('hostlist') >= p + 1);
    expect(events.filter((e) => e.action === 'delete')).toEqual([]);
    expect(sync!.snapshot(['nagios.service'])).toHaveLength(8);
  });

  it('JSON that is not what Nagios sends is a health error naming the field, and deletes nothing', async () => {
    const services = readFixture<StatusDoc>('wire', 'nagios-statusjson-servicelist-details.json');
    let broken = false;
    server.route(`${CGI}/statusjson.cgi`, { query: 'servicelist' }, () => (broken ? json({ ...services, data: { servicelist: { localhost: { HTTP: 16 } } } }) : json(services)));
    await start();
    await waitFor('creates', () => events.length >= 9);
    broken = true;
    const health = await waitFor('health down', () => (sync!.health().nagios?.status === 'down' ? sync!.health().nagios : undefined));
    expect(health.error).toContain(`data.servicelist["localhost"]["HTTP"]: expected the service's details (details=true), got 16`);
    expect(events.filter((e) => e.action === 'delete')).toEqual([]);
  });

  it('streamed: a host whose services are not a mapping, and a Nagios error answer, are health errors naming the URL; nothing is deleted', async () => {
    const services = readFixture<StatusDoc>('wire', 'nagios-statusjson-servicelist-details.json');
    let answer: unknown = services;
    server.route(`${CGI}/statusjson.cgi`, { query: 'servicelist' }, () => json(answer));
    await start();
    await waitFor('creates', () => events.length >= 9);
    const error = (): string => sync!.health().nagios?.error ?? '';
    answer = { ...services, data: { servicelist: { ...services.data.servicelist, other: 5 } } };
    await waitFor('not a mapping', () => /statusjson\.cgi\?query=servicelist&details=true: data\.servicelist\["other"\]: expected a mapping of services, got 5$/.test(error()));
    answer = { result: { ...services.result, type_code: 1, type_text: 'Unable To Process', message: 'bad query' }, data: {} };
    await waitFor('error answer', () => error().endsWith('query=servicelist&details=true: Nagios answered type_code 1 (Unable To Process): bad query'));
    expect(events.filter((e) => e.action === 'delete')).toEqual([]);
  });

  it('a wrong password is a health error naming the URL and 401, never the password', async () => {
    await start({ password: 'wrong-pw' });
    const health = await waitFor('health down', () => (sync!.health().nagios?.status === 'down' ? sync!.health().nagios : undefined));
    expect(health.error).toMatch(/statusjson\.cgi\?query=(host|service)list&details=true failed with 401/);
    expect(health.error).not.toContain('wrong-pw');
    expect(events).toEqual([]);
  });

  it('a service that is gone from a complete snapshot is deleted', async () => {
    const services = readFixture<StatusDoc>('wire', 'nagios-statusjson-servicelist-details.json');
    server.route(`${CGI}/statusjson.cgi`, { query: 'servicelist' }, () => json(services));
    await start();
    await waitFor('creates', () => events.length >= 9);
    delete services.data.servicelist!.localhost!.SSH;
    const del = await waitFor('the delete', () => events.find((e) => e.action === 'delete'));
    expect(del.entity.key).toBe('nagios.service:localhost/SSH');
  });
});

describe('nagios source (status.cgi HTML pages)', () => {
  it('creates the same kinds of entities from the classic pages', async () => {
    server.route(`${CGI}/status.cgi`, { style: 'hostdetail', limit: '0' }, wire('nagios-status.cgi-hostgroup-all-style-hostdetail-limit0-down.html'));
    server.route(`${CGI}/status.cgi`, { host: 'all', style: 'detail', limit: '0' }, wire('nagios-status.cgi-host-all-style-detail-limit0-down.html'));
    await start({ cgi: 'status', attach: [{ type: 'nova.host', pattern: '^([^.]+)\\.example$' }] });
    await waitFor('11 creates', () => events.length >= 11);
    const byKey = new Map(events.map((e) => [e.entity.key, e.entity]));
    expect(byKey.get('nagios.host:compute-1.example')).toMatchObject({ state: 'DOWN', parents: [{ type: 'nova.host', id: 'compute-1' }] });
    expect(byKey.get('nagios.host:localhost')).toMatchObject({ state: 'UP', parents: [] });
    expect(byKey.get('nagios.service:compute-1.example/nova-compute')).toMatchObject({
      state: 'CRITICAL',
      parents: [{ type: 'nagios.host', id: 'compute-1.example' }],
      attributes: { output: 'PROCS CRITICAL: 0 processes with command name nova-compute', host: 'compute-1.example' },
    });
  });

  it('the unauthorized page is a health error', async () => {
    server.route(`${CGI}/status.cgi`, { style: 'hostdetail' }, wire('nagios-status.cgi-hostgroup-all-style-hostdetail-limit0-unauthorized.html'));
    server.route(`${CGI}/status.cgi`, { style: 'detail' }, wire('nagios-status.cgi-host-all-style-detail-limit0-unauthorized.html'));
    await start({ cgi: 'status' });
    const health = await waitFor('health down', () => (sync!.health().nagios?.status === 'down' ? sync!.health().nagios : undefined));
    expect(health.error).toMatch(/no (hosts|services) visible to user "viewer"/);
    expect(events).toEqual([]);
  });
});

describe('nagios options', () => {
  it('names the bad field', async () => {
    const entry = { name: 'n', use: 'nagios', url: 'http://127.0.0.1:1/cgi-bin' };
    await expect(createSource({ ...entry, cgi: 'xml' })).rejects.toThrow(new ConfigError('sources[0].cgi', 'expected one of statusjson, status, got "xml"'));
    await expect(createSource({ ...entry, attach: [{ type: 'nova.host', pattern: '(' }] })).rejects.toThrow(/^sources\[0\]\.attach\[0\]\.pattern: not a valid regular expression/);
    await expect(createSource({ ...entry, attach: [{ type: 'nova.host', label: 'x' }] })).rejects.toThrow('sources[0].attach[0].label: is not a known option here');
    await expect(createSource({ ...entry, username: 'u' })).rejects.toThrow('sources[0].password: username and password go together');
    await expect(createSource({ ...entry, url: 'nagios.example' })).rejects.toThrow(/sources\[0\]\.url: expected an http\(s\) URL/);
  });
});
