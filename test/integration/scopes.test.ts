/**
 * Two clouds in one synchronizer (issue 14, DESIGN "Scopes"): two fixture OpenStacks whose host
 * and zone names are the same (`fake-compute-0`, `nova`, `internal`: the real recording's), each polled by its
 * own `openstack.nova` source and notified through its own notification source (its own exchange
 * on the real RabbitMQ), each with its scope. Deletes in one cloud never touch the other.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createSources, parseConfig } from '../../src/config.js';
import type { EntityEvent } from '../../src/model.js';
import { type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import type { NotificationSource } from '../../sources/openstack/notifications.js';
import { FIXTURES, osloTimestamp } from '../support/nova-samples.js';
import { type OpenStackServer, startOpenStackServer } from '../support/openstack-server.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { waitFor } from '../support/wait.js';

const url = inject('rabbitUrl');
const REAL = join(FIXTURES, 'wire/real-openstack');
const ROUTING_KEY = 'versioned_notifications.info';

/** smoke-0, the instance the recorded shutdown and delete notifications are about. */
const SMOKE_0 = 'f0e637c9-0667-4f24-90cd-96458dce258b';
/** Cloud B's instances: the same records under other UUIDs (UUIDs are unique across clouds). */
const inB = (id: string): string => `b${id.slice(1)}`;

/** A recorded versioned notification, about `uuid`, stamped now (the real body, re-wrapped). */
function recorded(file: string, uuid: string): Buffer {
  const outer = JSON.parse(readFileSync(join(REAL, file), 'utf8')) as Record<string, string>;
  const inner = JSON.parse(outer['oslo.message']!) as { message_id: string; timestamp: string; payload: { 'nova_object.data': { uuid: string } } };
  inner.message_id = randomUUID();
  inner.timestamp = osloTimestamp(new Date());
  inner.payload['nova_object.data'].uuid = uuid;
  return Buffer.from(JSON.stringify({ ...outer, 'oslo.message': JSON.stringify(inner) }));
}

let publisher: OsloPublisher;
const clouds: OpenStackServer[] = [];
let sync: Synchronizer | undefined;

beforeAll(async () => {
  if (!url) throw new Error('no RabbitMQ: test/support/global-setup.ts provides rabbitUrl (is rabbitmq-server installed?)');
  publisher = await OsloPublisher.connect(url);
});
afterEach(async () => {
  sync?.stop();
  for (const os of clouds.splice(0)) await os.close();
});
afterAll(async () => {
  await publisher?.close();
});

describe('two clouds, two scopes', () => {
  it('keeps overlapping host names apart, resolves refs within each cloud, and a delete in one never touches the other', async () => {
    const a = await startOpenStackServer();
    const b = await startOpenStackServer();
    clouds.push(a, b);
    b.state.servers = b.state.servers.map((s) => ({ ...s, id: inB(s.id as string) }));
    const id = randomUUID().slice(0, 8);
    const exchange = { 'region-a': `nova-${id}-a`, 'region-b': `nova-${id}-b` };
    const poll = (scope: 'region-a' | 'region-b', os: OpenStackServer) => ({
      name: `nova-${scope}`,
      use: 'openstack.nova',
      scope,
      interval: '300ms',
      timeout: '10s',
      requestTimeout: '2s',
      region: 'RegionOne',
      auth: os.auth,
    });
    const bus = (scope: 'region-a' | 'region-b') => ({
      name: `bus-${scope}`,
      use: 'openstack.notifications',
      scope,
      transportUrl: url.replace(/^amqp:/, 'rabbit:'),
      exchanges: [exchange[scope]],
      topics: ['versioned_notifications'],
      queue: `synchronizer-${id}-${scope}`,
      reconnectDelay: '100ms',
    });
    const config = await parseConfig({ sources: [poll('region-a', a), poll('region-b', b), bus('region-a'), bus('region-b')], sinks: [] }, process.cwd());
    const sources = createSources(config.sources);
    sync = createSynchronizer({ sources });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    for (const x of Object.values(exchange)) await publisher.declare(x, ROUTING_KEY);
    sync.start();
    const s = sync;
    await waitFor('both buses up', () => s.health()['bus-region-a']?.status === 'up' && s.health()['bus-region-b']?.status === 'up');
    await waitFor('both clouds polled', () => events.length >= 12, { context: () => JSON.stringify(events.map((e) => `${e.action} ${e.entity.key}`)) + JSON.stringify(s.health()) });

    // Both nova sources own nova.* — each within its scope; neither was refused.
    expect(s.health()['nova-region-a']?.status).toBe('up');
    expect(s.health()['nova-region-b']?.status).toBe('up');
    const keys = events.map((e) => `${e.action} ${e.entity.key} ${e.entity.scope}`).sort();
    expect(keys).toEqual(
      [
        `create nova.host:region-a/fake-compute-0 region-a`,
        `create nova.host:region-b/fake-compute-0 region-b`,
        `create nova.zone:region-a/internal region-a`,
        `create nova.zone:region-a/nova region-a`,
        `create nova.zone:region-b/internal region-b`,
        `create nova.zone:region-b/nova region-b`,
        ...a.state.servers.map((v) => `create nova.instance:${v.id as string} region-a`),
        ...b.state.servers.map((v) => `create nova.instance:${v.id as string} region-b`),
      ].sort(),
    );
    // Refs resolve within the scope: each cloud's instances sit on its own fake-compute-0.
    for (const e of events.filter((x) => x.entity.type === 'nova.instance')) {
      expect(e.entity.parents).toContainEqual({ type: 'nova.host', id: `${e.entity.scope}/fake-compute-0` });
    }
    const bySource = (name: string) => (sources.find((x) => x.name === name) as NotificationSource).stats;

    // Cloud A: smoke-0 deleted, and notified on A's bus. One delete, A's smoke-0 only.
    let seen = events.length;
    a.state.servers = a.state.servers.filter((v) => v.id !== SMOKE_0);
    await publisher.publish(exchange['region-a'], ROUTING_KEY, recorded('nova--versioned_notifications.info--instance.delete.end.body.json', SMOKE_0));
    await waitFor('the delete acked', () => bySource('bus-region-a').acked === 1);
    const pollsOfA = a.requestsTo('/servers/detail').length;
    await waitFor('two more polls of A', () => a.requestsTo('/servers/detail').length >= pollsOfA + 2);
    expect(events.slice(seen).map((e) => `${e.action} ${e.entity.key} ${e.entity.scope}`)).toEqual([`delete nova.instance:${SMOKE_0} region-a`]);

    // Cloud B: smoke-0 starts deleting (the poll shows its task state), notified on B's bus: one
    // update, of B's smoke-0, whichever of the two sees it first.
    seen = events.length;
    const smokeOfB = b.state.servers.find((v) => v.id === inB(SMOKE_0))!;
    smokeOfB['OS-EXT-STS:task_state'] = 'deleting';
    await publisher.publish(exchange['region-b'], ROUTING_KEY, recorded('nova--versioned_notifications.info--instance.shutdown.end.body.json', inB(SMOKE_0)));
    await waitFor('the shutdown acked', () => bySource('bus-region-b').acked === 1);
    const pollsOfB = b.requestsTo('/servers/detail').length;
    await waitFor('two more polls of B', () => b.requestsTo('/servers/detail').length >= pollsOfB + 2);
    expect(events.slice(seen).map((e) => `${e.action} ${e.entity.key} ${e.entity.scope} ${e.changed?.join('+')}`)).toEqual([
      `update nova.instance:${inB(SMOKE_0)} region-b attributes.task_state`,
    ]);

    // Cloud A loses its compute host: A's poll deletes region-a's fake-compute-0, not region-b's.
    seen = events.length;
    a.state.hypervisors = [];
    await waitFor('A host deleted', () => events.slice(seen).some((e) => e.action === 'delete'), { context: () => JSON.stringify(events.map((e) => `${e.action} ${e.entity.key}`)) + JSON.stringify(s.health()) });
    const pollsOfB2 = b.requestsTo('/os-hypervisors/detail').length;
    await waitFor('two more polls of B', () => b.requestsTo('/os-hypervisors/detail').length >= pollsOfB2 + 2);
    expect(events.slice(seen).map((e) => `${e.action} ${e.entity.key}`)).toEqual(['delete nova.host:region-a/fake-compute-0']);
    expect(
      s
        .snapshot(['nova.host'])
        .map((e) => e.key)
        .sort(),
    ).toEqual(['nova.host:region-b/fake-compute-0']);
    expect(s.snapshot(['nova.instance']).filter((e) => e.scope === 'region-b')).toHaveLength(3);
  });
});
