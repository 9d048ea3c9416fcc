import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { asyncScheduler } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createSources, parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import type { EntityEvent } from '../../src/model.js';
import { OptionReader } from '../../src/options.js';
import type { Source } from '../../src/source.js';
import { type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { type NotificationHooks, createNotificationSource, readNotificationOptions } from '../../sources/openstack/notifications.js';
import { fixturePath } from '../support/fixtures.js';
import { type OpenStackServer, startOpenStackServer } from '../support/openstack-server.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { waitFor } from '../support/wait.js';

const url = inject('rabbitUrl');

/** The recorded bodies of a service, in the order it published them, with the routing key it used. */
function recorded(service: string): { file: string; routingKey: string; body: Buffer }[] {
  const dir = fixturePath('wire', 'real-openstack', service);
  return readdirSync(dir)
    .filter((f) => /^\d{3}--.*\.body\.json$/.test(f))
    .sort()
    .map((file) => ({ file, routingKey: file.split('--')[2]!, body: readFileSync(join(dir, file)) }));
}

let publisher: OsloPublisher;
let os: OpenStackServer;
let sync: Synchronizer | undefined;

beforeAll(async () => {
  if (!url) throw new Error('no RabbitMQ: test/support/global-setup.ts provides rabbitUrl (is rabbitmq-server installed?)');
  publisher = await OsloPublisher.connect(url);
});
afterEach(async () => {
  sync?.stop();
  await os?.close();
});
afterAll(async () => {
  await publisher?.close();
});

describe('Aodh and Ironic: notifications through a real RabbitMQ, then polls of the same cloud', () => {
  it('every recorded change is one event, and the polls that follow add only what notifications cannot carry', async () => {
    os = await startOpenStackServer({ pageSize: 1 });
    // The polls wait until every notification is in: their first attempts fail (and back off).
    const clear = os.inject({ when: (path) => path.endsWith('/v2/alarms') || path.endsWith('/v1/nodes/detail'), status: 503 });
    const id = randomUUID().slice(0, 8);
    const exchanges = { aodh: `aodh-${id}`, ironic: `ironic-${id}` };
    const settled: Parameters<NonNullable<NotificationHooks['onSettled']>>[0][] = [];
    const bus = createNotificationSource(
      readNotificationOptions(
        new OptionReader(
          { transportUrl: url.replace(/^amqp:/, 'rabbit:'), exchanges: Object.values(exchanges), topics: ['notifications', 'ironic_versioned_notifications'], queue: `synchronizer-${id}`, reconnectDelay: '100ms' },
          'sources[0]',
        ),
      ),
      { name: 'bus', log: createLogger('error'), scheduler: asyncScheduler },
      { onSettled: (info) => settled.push(info) },
    );
    const config = await parseConfig(
      { sources: ['aodh', 'ironic'].map((name) => ({ name, use: `openstack.${name}`, interval: '300ms', timeout: '10s', requestTimeout: '2s', region: 'RegionOne', auth: os.auth })), sinks: [] },
      process.cwd(),
    );
    sync = createSynchronizer({ sources: [bus as Source<unknown>, ...createSources(config.sources)] });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    for (const [service, exchange] of Object.entries(exchanges)) for (const m of recorded(service)) await publisher.declare(exchange, m.routingKey);
    sync.start();
    await waitFor('the bus to be up', () => sync!.health().bus?.status === 'up');

    const messages = [...recorded('aodh').map((m) => ({ ...m, exchange: exchanges.aodh })), ...recorded('ironic').map((m) => ({ ...m, exchange: exchanges.ironic }))];
    for (const m of messages) await publisher.publish(m.exchange, m.routingKey, m.body);
    await waitFor('every message settled', () => settled.length === messages.length);
    expect(settled.every((s) => s.outcome.ok)).toBe(true);
    expect(sync.health().aodh?.status).not.toBe('up');

    const byName = (name: string) => events.filter((e) => e.entity.name === name).map((e) => `${e.action}:${e.entity.state}`);
    // Aodh: four creations, the rule change and the two state transitions as patches, one deletion.
    expect(events.filter((e) => e.entity.type === 'aodh.alarm').map((e) => `${e.action}:${e.entity.name}:${e.entity.state}`)).toEqual([
      'create:instance-error:INSUFFICIENT DATA',
      'create:volume-error:INSUFFICIENT DATA',
      'create:demo-port-error:INSUFFICIENT DATA',
      'create:to-delete:INSUFFICIENT DATA',
      'update:instance-error:INSUFFICIENT DATA',
      'update:instance-error:ALARM',
      'update:demo-port-error:OK',
      'delete:to-delete:INSUFFICIENT DATA',
    ]);
    // Ironic: one event per state change (the PATCH of /extra changes nothing the entity holds).
    expect(byName('node-0')).toEqual(['create:ENROLL', 'update:MANAGEABLE', 'update:AVAILABLE', 'update:AVAILABLE', 'update:AVAILABLE', 'update:AVAILABLE']);
    expect(events.filter((e) => e.entity.name === 'node-0').slice(3).map((e) => e.changed)).toEqual([['attributes.power_state'], ['attributes.power_state'], ['attributes.maintenance', 'attributes.maintenance_reason']]);
    expect(byName('node-1')).toEqual(['create:ENROLL', 'update:MANAGEABLE', 'update:AVAILABLE', 'update:AVAILABLE', 'update:ACTIVE']);
    expect(byName('node-2')).toEqual(['create:ENROLL', 'delete:ENROLL']);
    const pushed = events.length;

    clear();
    await waitFor('both polls up', () => sync!.health().aodh?.status === 'up' && sync!.health().ironic?.status === 'up');
    const polls = os.requestsTo('/v2/alarms').length;
    await waitFor('two more polls of each', () => os.requestsTo('/v2/alarms').length >= polls + 2 && sync!.metrics().observations.ironic! >= 3);
    // The polls agree with every notification-made entity, the patched alarms too: they bring only
    // the two upstream nodes, which no notification announced.
    expect(events.slice(pushed).map((e) => `${e.action}:${e.origin}:${e.entity.name ?? e.entity.id}:${e.entity.state}`).sort()).toEqual(
      ['create:snapshot:test_node_classic:AVAILABLE', 'create:snapshot:test_node_dynamic:ENROLL'].sort(),
    );
  });
});
