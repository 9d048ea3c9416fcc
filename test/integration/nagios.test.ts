import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { type RunningNagios, startNagios } from '../support/nagios.js';
import { waitFor } from '../support/wait.js';

let nagios: RunningNagios;
let sync: Synchronizer;
const events: EntityEvent[] = [];

/** What the test saw, for a timeout's message. */
const seen = (): string => `events: ${events.map((e) => `${e.action} ${e.entity.key} ${e.entity.state}`).join(', ')}`;

const event = (action: string, key: string, state: string) => () => events.find((e) => e.action === action && e.entity.key === key && e.entity.state === state);

beforeAll(async () => {
  nagios = await startNagios();
  console.info(`Nagios 4 + CGIs under Apache ready in ${nagios.startMs} ms`);
  const common = { url: nagios.url, interval: '200ms', timeout: '5s', backoff: '100ms' };
  const source = await createSource({ name: 'nagios', use: 'nagios', ...common, ...nagios.admin, attach: [{ type: 'nova.host', pattern: '^([^.]+)' }] });
  // Same Nagios, a user who is not authorized: must stay down, never look empty.
  const blind = await createSource({ name: 'blind', use: 'nagios', ...common, ...nagios.viewer });
  sync = createSynchronizer({ sources: [source, blind] });
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
}, 60_000);

afterAll(async () => {
  sync?.stop();
  await nagios?.stop();
});

describe('nagios source against a real Nagios Core 4.4 (statusjson.cgi under Apache)', () => {
  it('creates the host and its service, PENDING until checked', async () => {
    const host = await waitFor('host', event('create', 'nagios.host:compute-1.example', 'PENDING'), { context: seen });
    expect(host.entity.parents).toEqual([{ type: 'nova.host', id: 'compute-1' }]);
    const service = await waitFor('service', event('create', 'nagios.service:compute-1.example/nova-compute', 'PENDING'), { context: seen });
    expect(service.entity.parents).toEqual([{ type: 'nagios.host', id: 'compute-1.example' }]);
  });

  it('a check result that changes the state is an update', async () => {
    // compute-2 is this test's own host: PENDING until this test sends it a result.
    await waitFor('host created', event('create', 'nagios.host:compute-2.example', 'PENDING'), { context: seen });
    await waitFor('service created', event('create', 'nagios.service:compute-2.example/nova-compute', 'PENDING'), { context: seen });
    nagios.command('PROCESS_HOST_CHECK_RESULT;compute-2.example;1;CRITICAL - Host Unreachable (10.0.0.5)', 'PROCESS_SERVICE_CHECK_RESULT;compute-2.example;nova-compute;2;PROCS CRITICAL: 0 processes');
    const host = await waitFor('host DOWN', event('update', 'nagios.host:compute-2.example', 'DOWN'), { context: seen });
    expect(host.entity.attributes).toMatchObject({ output: 'CRITICAL - Host Unreachable (10.0.0.5)', stateType: 'HARD' });
    const service = await waitFor('service CRITICAL', event('update', 'nagios.service:compute-2.example/nova-compute', 'CRITICAL'), { context: seen });
    expect(service.entity.attributes).toMatchObject({ output: 'PROCS CRITICAL: 0 processes', stateType: 'HARD' });
  });

  it('a new check result in the same state makes no event', async () => {
    // compute-3 is this test's own host: bring its service to CRITICAL first.
    const key = 'nagios.service:compute-3.example/nova-compute';
    await waitFor('service created', () => events.find((e) => e.action === 'create' && e.entity.key === key), { context: seen });
    nagios.command('PROCESS_SERVICE_CHECK_RESULT;compute-3.example;nova-compute;2;PROCS CRITICAL: 0 processes');
    await waitFor('service CRITICAL', () => events.find((e) => e.entity.key === key && e.entity.state === 'CRITICAL'), { context: seen });
    const before = events.length;
    // Its host is left alone by the test and may change on its own (Nagios stamps it): only the service counts.
    const serviceEvents = () => events.slice(before).filter((e) => e.entity.key === key);
    nagios.command('PROCESS_SERVICE_CHECK_RESULT;compute-3.example;nova-compute;2;PROCS CRITICAL: 0 processes (again)');
    // Until the CGI itself shows the new result, then three more complete polls of ours.
    const authorization = `Basic ${Buffer.from(`${nagios.admin.username}:${nagios.admin.password}`).toString('base64')}`;
    const end = Date.now() + 15_000;
    for (;;) {
      const res = await fetch(`${nagios.url}/statusjson.cgi?query=service&hostname=compute-3.example&servicedescription=nova-compute`, { headers: { authorization } });
      if ((await res.text()).includes('(again)')) break;
      if (Date.now() > end) throw new Error('Nagios never showed the second CRITICAL result');
      await new Promise((r) => setTimeout(r, 100));
    }
    const polls = sync.metrics().observations.nagios ?? 0;
    await waitFor('three more polls', () => (sync.metrics().observations.nagios ?? 0) >= polls + 3, { context: seen });
    expect(serviceEvents()).toEqual([]);
    nagios.command('PROCESS_SERVICE_CHECK_RESULT;compute-3.example;nova-compute;0;PROCS OK: 1 process');
    await waitFor('service OK', event('update', key, 'OK'), { context: seen });
    // Only the OK result changed anything.
    expect(serviceEvents().map((e) => `${e.action} ${e.entity.key} ${e.entity.state}`)).toEqual([`update ${key} OK`]);
  });

  it('the unauthorized user is reported down, not empty', async () => {
    const blind = await waitFor('blind down', () => sync.health().blind?.status === 'down' && sync.health().blind, { context: seen });
    expect(blind.error).toMatch(/no hosts visible to user "viewer"/);
    expect(events.filter((e) => e.entity.source === 'blind')).toEqual([]);
  });
});
