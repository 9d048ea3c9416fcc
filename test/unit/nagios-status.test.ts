import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nagiosDraft } from '../../sources/nagios.js';
import { type NagiosStatus, parseStatusJson, parseStatusPage } from '../../sources/nagios/status.js';
import { readAttachRules } from '../../src/attach.js';
import { OptionReader } from '../../src/options.js';
import { fixturePath, readFixture } from '../support/fixtures.js';

const html = (file: string): string => readFileSync(fixturePath('wire', file), 'utf8');
const W = 'test: GET statusjson.cgi';
const byId = (records: NagiosStatus[]) => new Map(records.map((r) => [r.kind === 'host' ? r.host : `${r.host}/${r.service}`, r]));

describe('statusjson.cgi records (recorded from Nagios 4.4.6)', () => {
  it('reads a host field by field: bit state, epoch ms → ISO, state type', () => {
    const [host, ...rest] = parseStatusJson(readFixture('wire', 'nagios-statusjson-hostlist-details.json'), 'hostlist', W);
    expect(rest).toEqual([]);
    expect(host).toEqual({
      kind: 'host',
      host: 'localhost',
      state: 'UP', // status 2
      output: 'PING OK - Packet loss = 0%, RTA = 0.91 ms',
      stateType: 'HARD', // state_type 1
      lastCheck: new Date(1795607047000).toISOString(),
      lastStateChange: new Date(1795607044000).toISOString(),
      acknowledged: false,
      inDowntime: false,
      flapping: false,
    });
  });

  it('reads every service of the recorded list, with the states Nagios showed', () => {
    const services = byId(parseStatusJson(readFixture('wire', 'nagios-statusjson-servicelist-details.json'), 'servicelist', W));
    // The same moment without details=true: just the bit values.
    const bare = readFixture<{ data: { servicelist: { localhost: Record<string, number> } } }>('wire', 'nagios-statusjson-servicelist.json');
    const names: Record<number, string> = { 1: 'PENDING', 2: 'OK', 4: 'WARNING', 8: 'UNKNOWN', 16: 'CRITICAL' };
    expect([...services.keys()].sort()).toEqual(Object.keys(bare.data.servicelist.localhost).map((s) => `localhost/${s}`).sort());
    for (const [service, bit] of Object.entries(bare.data.servicelist.localhost)) {
      expect(services.get(`localhost/${service}`)?.state).toBe(names[bit]);
    }
    expect(services.get('localhost/HTTP')).toMatchObject({
      kind: 'service',
      host: 'localhost',
      service: 'HTTP',
      state: 'CRITICAL',
      stateType: 'SOFT',
      output: 'connect to address 127.0.0.1 and port 80: Connection refused',
      lastStateChange: new Date(1795607047000).toISOString(),
    });
    // last_state_change 0 means "never": no attribute rather than 1970.
    expect(services.get('localhost/Current Users')).not.toHaveProperty('lastStateChange');
  });

  it('reads formatoptions=enumerate answers the same as bit values', () => {
    const bits = parseStatusJson(readFixture('wire', 'nagios-statusjson-servicelist-details.json'), 'servicelist', W);
    const names = parseStatusJson(readFixture('wire', 'nagios-statusjson-servicelist-details-enumerate.json'), 'servicelist', W);
    expect(names.map((r) => [r.state, r.stateType])).toEqual(bits.map((r) => [r.state, r.stateType]));
  });

  it('reads DOWN hosts and PENDING services', () => {
    const hosts = byId(parseStatusJson(readFixture('wire', 'nagios-statusjson-hostlist-details-down.json'), 'hostlist', W));
    expect(hosts.get('compute-1.example')).toMatchObject({ state: 'DOWN', output: 'CRITICAL - Host Unreachable (10.0.0.5)' });
    const services = byId(parseStatusJson(readFixture('wire', 'nagios-statusjson-servicelist-details-down.json'), 'servicelist', W));
    expect(services.get('compute-1.example/nova-compute')?.state).toBe('CRITICAL');
    expect(services.get('localhost/PING')?.state).toBe('PENDING');
  });

  it('refuses the empty lists an unauthorized user gets (HTTP 200), naming the user', () => {
    expect(() => parseStatusJson(readFixture('wire', 'nagios-statusjson-hostlist-details-unauthorized.json'), 'hostlist', W)).toThrow(
      /test: GET statusjson.cgi: no hosts visible to user "viewer".*authorized_for_all_hosts/,
    );
  });

  it('refuses Nagios errors, missing details and unknown states with the field path', () => {
    const doc = readFixture<{ result: Record<string, unknown>; data: { hostlist: Record<string, Record<string, unknown>> } }>('wire', 'nagios-statusjson-hostlist-details.json');
    expect(() => parseStatusJson({ ...doc, result: { ...doc.result, type_code: 1, type_text: 'Unable To Process', message: 'bad query' } }, 'hostlist', W)).toThrow(
      'test: GET statusjson.cgi: Nagios answered type_code 1 (Unable To Process): bad query',
    );
    expect(() => parseStatusJson({ ...doc, data: { hostlist: { localhost: 2 } } }, 'hostlist', W)).toThrow(/data.hostlist\["localhost"\]: expected the host's details/);
    const odd = { ...doc, data: { hostlist: { localhost: { ...doc.data.hostlist.localhost, status: 3 } } } };
    expect(() => parseStatusJson(odd, 'hostlist', W)).toThrow('data.hostlist["localhost"].status: expected a host state (1, 2, 4 or 8), got 3');
    expect(() => parseStatusJson('<html>Internal error</html>', 'hostlist', W)).toThrow(/expected statusjson.cgi's/);
    expect(() => parseStatusJson({ ...doc, data: {} }, 'hostlist', W)).toThrow('data.hostlist: expected a mapping, got undefined');
  });
});

describe('status.cgi pages (recorded from Nagios 4.4.6)', () => {
  it('reads the service detail page like the JSON CGI of the same moment', () => {
    const page = parseStatusPage(html('nagios-status.cgi-host-all-style-detail.html'), 'services', W);
    const json = byId(parseStatusJson(readFixture('wire', 'nagios-statusjson-servicelist-details.json'), 'servicelist', W));
    expect(page).toHaveLength(8);
    for (const r of page) {
      const j = json.get(`${r.host}/${(r as { service: string }).service}`);
      expect(r.state).toBe(j?.state);
      expect(r.output).toBe(j?.output);
    }
    expect(page[2]).toEqual({
      kind: 'service',
      host: 'localhost',
      service: 'HTTP',
      state: 'CRITICAL',
      output: 'connect to address 127.0.0.1 and port 80: Connection refused',
      lastCheck: '2026-11-25T11:44:07.000Z',
    });
  });

  it('reads the host detail page and a service page with two hosts', () => {
    const hosts = parseStatusPage(html('nagios-status.cgi-hostgroup-all-style-hostdetail-limit0-down.html'), 'hosts', W);
    expect(hosts.map((h) => [h.host, h.state, h.output])).toEqual([
      ['compute-1.example', 'DOWN', 'CRITICAL - Host Unreachable (10.0.0.5)'],
      ['localhost', 'UP', 'PING OK - Packet loss = 0%, RTA = 0.27 ms'],
    ]);
    const services = byId(parseStatusPage(html('nagios-status.cgi-host-all-style-detail-limit0-down.html'), 'services', W));
    expect(services.size).toBe(9);
    expect(services.get('compute-1.example/nova-compute')).toMatchObject({ state: 'CRITICAL', output: 'PROCS CRITICAL: 0 processes with command name nova-compute' });
    expect(services.get('localhost/Swap Usage')?.state).toBe('PENDING');
  });

  it('refuses the unauthorized page, a truncated page and a page that is not status.cgi', () => {
    expect(() => parseStatusPage(html('nagios-status.cgi-host-all-style-detail-limit0-unauthorized.html'), 'services', W)).toThrow(/no services visible to user "viewer"/);
    expect(() => parseStatusPage(html('nagios-status.cgi-hostgroup-all-style-hostdetail-limit0-unauthorized.html'), 'hosts', W)).toThrow(/no hosts visible to user "viewer"/);
    const page = html('nagios-status.cgi-host-all-style-detail.html').replace('Results 1 - 8 of 8', 'Results 1 - 8 of 250');
    expect(() => parseStatusPage(page, 'services', W)).toThrow('read 8 services but the page says 250');
    expect(() => parseStatusPage('{"not":"html"}', 'services', W)).toThrow(/expected status.cgi's HTML page/);
  });
});

describe('nagiosDraft', () => {
  const attach = readAttachRules(new OptionReader({ attach: [{ type: 'nova.host', pattern: '^([^.]+)' }] }, 'sources[0]'), 'attach', { label: 'forbidden' });

  it('maps a host to nagios.host attached by the host name pattern', () => {
    const [host] = parseStatusJson(readFixture('wire', 'nagios-statusjson-hostlist-details-down.json'), 'hostlist', W);
    expect(nagiosDraft(host!, attach)).toEqual({
      type: 'nagios.host',
      id: 'compute-1.example',
      name: 'compute-1.example',
      state: 'DOWN',
      parents: [{ type: 'nova.host', id: 'compute-1' }],
      attributes: {
        output: 'CRITICAL - Host Unreachable (10.0.0.5)',
        stateType: (host as { stateType: string }).stateType,
        lastStateChange: host!.lastStateChange,
        acknowledged: false,
        inDowntime: false,
        flapping: false,
      },
      raw: host,
    });
  });

  it('maps a service to nagios.service <host>/<service> under its host, without last check', () => {
    const services = parseStatusJson(readFixture('wire', 'nagios-statusjson-servicelist-details.json'), 'servicelist', W);
    const http = services.find((s) => s.kind === 'service' && s.service === 'HTTP')!;
    const draft = nagiosDraft(http, attach);
    expect(draft).toMatchObject({ type: 'nagios.service', id: 'localhost/HTTP', name: 'HTTP', state: 'CRITICAL', parents: [{ type: 'nagios.host', id: 'localhost' }] });
    expect(draft.attributes).toEqual({
      output: 'connect to address 127.0.0.1 and port 80: Connection refused',
      stateType: 'SOFT',
      lastStateChange: new Date(1795607047000).toISOString(),
      acknowledged: false,
      inDowntime: false,
      flapping: false,
      host: 'localhost',
    });
  });
});
