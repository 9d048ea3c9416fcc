/**
 * Progress an operator can watch, for a REST poll source (Nagios) run by the service against a
 * local server answering with the recorded Nagios responses: a poll still running says how far it
 * got, the first complete snapshot is logged at info with entities by type, pages, bytes and
 * durations, every later one at debug.
 */
import { Buffer } from 'node:buffer';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { type Service, startService } from '../../src/service.js';
import { type MonitoringServer, type Reply, startMonitoringServer, wire } from '../support/monitoring-server.js';
import { waitFor } from '../support/wait.js';

const CGI = '/cgi-bin/nagios4';
let server: MonitoringServer;
let service: Service | undefined;
let lines: Record<string, unknown>[];

beforeEach(async () => {
  server = await startMonitoringServer();
  lines = [];
});
afterEach(async () => {
  await service?.stop();
  service = undefined;
  await server.close();
});

const logged = (msg: string, level = 'info'): Record<string, unknown>[] => lines.filter((l) => l.msg === msg && l.level === level);

describe('progress logs of a REST poll source', () => {
  it('a poll still running logs pages and bytes so far; the first snapshot logs entities by type, pages, bytes and time; later ones go to debug', async () => {
    const hosts = wire('nagios-statusjson-hostlist-details.json');
    const services = wire('nagios-statusjson-servicelist-details.json');
    server.route(`${CGI}/statusjson.cgi`, { query: 'hostlist' }, hosts);
    // The service list of the first poll is held until its progress was logged: the poll is
    // "long" for as long as the test wants, whatever the load of the machine.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let first = true;
    server.route(`${CGI}/statusjson.cgi`, { query: 'servicelist' }, async (): Promise<Reply> => {
      if (first) {
        first = false;
        await held;
      }
      return services;
    });
    const config = await parseConfig(
      { sources: [{ name: 'nagios', use: 'nagios', url: `${server.url}${CGI}`, interval: '100ms', timeout: '30s', progressInterval: '50ms' }], sinks: [] },
      process.cwd(),
    );
    service = await startService(config, createLogger('debug', (l) => lines.push(JSON.parse(l) as Record<string, unknown>)));

    const progress = await waitFor('a progress line with the host list read', () => logged('still reading').find((l) => l.pages === 1), { context: () => JSON.stringify(lines) });
    expect(progress).toMatchObject({ source: 'nagios', pages: 1, bytes: Buffer.byteLength(hosts.body) });
    expect(progress.elapsedMs).toBeGreaterThanOrEqual(50);
    expect(logged('first complete snapshot')).toEqual([]);
    release();

    const snapshot = await waitFor('the first complete snapshot line', () => logged('first complete snapshot')[0], { context: () => JSON.stringify(lines) });
    expect(snapshot).toMatchObject({
      source: 'nagios',
      entities: { 'nagios.host': 1, 'nagios.service': 8 },
      records: 9,
      pages: 2,
      bytes: Buffer.byteLength(hosts.body) + Buffer.byteLength(services.body),
      events: 9,
    });
    expect(snapshot.readMs).toBeGreaterThanOrEqual(progress.elapsedMs as number);
    expect(snapshot.durationMs).toBeGreaterThanOrEqual(snapshot.readMs as number);

    const later = await waitFor('a later snapshot, at debug', () => logged('snapshot', 'debug')[0]);
    expect(later).toMatchObject({ source: 'nagios', entities: { 'nagios.host': 1, 'nagios.service': 8 }, pages: 2, events: 0 });
    expect(logged('first complete snapshot')).toHaveLength(1);
  });
});
