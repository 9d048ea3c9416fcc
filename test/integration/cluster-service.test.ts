/**
 * The cluster's parts in this process (startService twice, on the run's RabbitMQ, which has the
 * consistent-hash plugin): the lease handed over on a graceful stop, the standby warm, the
 * cluster's /health and /metrics, and a partitioned notifications source. The three-process
 * scenarios (kill -9, close_connection) are in cluster.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import type { EntityEvent } from '../../src/model.js';
import { type Service, startService } from '../../src/service.js';
import { novaSample, osloBody, osloTimestamp } from '../support/nova-samples.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { waitFor } from '../support/wait.js';

const url = inject('rabbitUrl');
const services: Service[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.stop().catch(() => undefined)));
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

async function start(doc: Record<string, unknown>, dir: string): Promise<{ service: Service; events: EntityEvent[] }> {
  if (!url) throw new Error('no RabbitMQ: test/support/global-setup.ts provides rabbitUrl (is rabbitmq-server installed?)');
  const service = await startService(await parseConfig({ log: 'silent', listen: '127.0.0.1:0', sinks: [], ...doc }, dir), createLogger('silent'));
  services.push(service);
  const events: EntityEvent[] = [];
  service.sync.entity$.subscribe((e) => events.push(e));
  return { service, events };
}

async function get(service: Service, path: string): Promise<string> {
  return (await fetch(`http://${service.address}${path}`, { signal: AbortSignal.timeout(5000) })).text();
}

/** Whether `queue` has a consumer; false while it is not declared (a channel of its own: a 404 closes it). */
async function consumed(queue: string): Promise<boolean> {
  const connection = await amqp.connect(url);
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    return (await channel.checkQueue(queue)).consumerCount > 0;
  } catch {
    return false;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

const held = async (service: Service, source: string): Promise<boolean> => (JSON.parse(await get(service, '/health')) as { cluster: { leases: Record<string, boolean> } }).cluster.leases[source] === true;

describe('a cluster of two services in one process', () => {
  it('one runs the source; the other mirrors it and, when the first stops, takes over warm', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cluster-service-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'topology.yaml'), 'entities:\n  - { type: nova.host, id: h1, state: UP }\n  - { type: nova.host, id: h2, state: UP }\n  - { type: nova.host, id: h3, state: DOWN }\n');
    const name = `cs-${randomUUID().slice(0, 8)}`;
    const cluster = (instance: string): Record<string, unknown> => ({ transportUrl: url.replace(/^amqp:/, 'rabbit:'), name, instance, leaseRetry: '200ms', heartbeat: '2s', reconnectDelay: '200ms' });
    const sources = [{ name: 'topo', use: 'static', file: './topology.yaml' }];
    const a = await start({ cluster: cluster('a'), sources }, dir);
    const b = await start({ cluster: cluster('b'), sources }, dir);
    const [owner, standby] = await waitFor('one holder of topo', async () => {
      const [ha, hb] = [await held(a.service, 'topo'), await held(b.service, 'topo')];
      return ha !== hb ? (ha ? [a, b] : [b, a]) : undefined;
    });
    await waitFor('the owner to emit the three hosts', () => owner.events.length === 3);
    // The standby folds them in without an event of its own.
    await waitFor('the standby to mirror them', () => standby.service.sync.snapshot(['nova.host']).length === 3);
    expect(standby.events).toEqual([]);
    // The broker's count of live instances is read at each lease check (every leaseRetry): the
    // owner may have last counted before the standby joined.
    const metrics = await waitFor('the owner to count both instances', async () => {
      const text = await get(owner.service, '/metrics');
      return /^synchronizer_cluster_instances 2$/m.test(text) ? text : undefined;
    });
    expect(metrics).toMatch(/^synchronizer_cluster_lease_held\{source="topo"\} 1$/m);
    expect(metrics).toMatch(new RegExp(`^synchronizer_cluster_info\\{cluster="${name}",instance_id="(a|b)"\\} 1$`, 'm'));
    expect(metrics).toMatch(/^synchronizer_cluster_instances 2$/m);

    services.splice(services.indexOf(owner.service), 1);
    await owner.service.stop();
    await waitFor('the standby to take the lease', () => held(standby.service, 'topo'), 15_000);
    await waitFor('its first snapshot', () => standby.service.sync.metrics().observations.topo === 1, 15_000);
    // Warm: the same three hosts, so nothing to say.
    expect(standby.events).toEqual([]);
    expect(await get(standby.service, '/metrics')).toMatch(/^synchronizer_cluster_mirrored_messages_total [1-9]\d*$/m);
  }, 60_000);

  it('a partitioned notifications source: every notification reaches the baseline through the partitions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cluster-service-'));
    dirs.push(dir);
    const id = randomUUID().slice(0, 8);
    const exchange = `nova-${id}`;
    const { service, events } = await start(
      {
        cluster: { transportUrl: url.replace(/^amqp:/, 'rabbit:'), name: `cp-${id}`, instance: 'solo', leaseRetry: '200ms', heartbeat: '2s', partitioned: ['bus'], partitions: 2 },
        sources: [{ name: 'bus', use: 'openstack.notifications', transportUrl: url.replace(/^amqp:/, 'rabbit:'), exchanges: [exchange], topics: ['versioned_notifications'], queue: `router-${id}` }],
      },
      dir,
    );
    await waitFor('every lease', async () => (await held(service, 'bus')) && (await held(service, 'bus.p0')) && (await held(service, 'bus.p1')), 15_000);
    // A lease held says the router and the partitions were started, not that their queues are
    // bound: a copy or a notification published before its binding is dropped by the broker. Each
    // consumes only once its queue is declared and bound (amqpConsume$), so a consumer on the
    // router's queue and on both partition queues means every binding is there.
    for (const queue of [`router-${id}`, `cp-${id}.bus.p0`, `cp-${id}.bus.p1`]) await waitFor(`a consumer on ${queue}`, () => consumed(queue), 15_000);
    const publisher = await OsloPublisher.connect(url);
    try {
      await publisher.declare(exchange, 'versioned_notifications.info');
      const template = novaSample('instance-update.json');
      for (let i = 0; i < 20; i++) {
        const payload = structuredClone(template.payload) as { 'nova_object.data': Record<string, unknown> };
        payload['nova_object.data'].uuid = `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
        await publisher.publish(exchange, 'versioned_notifications.info', osloBody({ ...template, payload }, { messageId: `m-${i}`, timestamp: osloTimestamp(new Date()) }));
      }
    } finally {
      await publisher.close();
    }
    await waitFor('20 instances', () => events.filter((e) => e.action === 'create').length === 20, 15_000);
    expect(service.sync.snapshot(['nova.instance'])).toHaveLength(20);
  }, 60_000);
});
