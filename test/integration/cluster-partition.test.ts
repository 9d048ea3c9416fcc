/**
 * The partitioned notifications source's router on its own, on the run's RabbitMQ (which has the
 * consistent-hash plugin): on a fresh cluster the router may run before any partition's consumer
 * has declared its queue. The broker confirms a copy that no queue is bound to receive and drops
 * it, and the router acks the original on that confirm: the router must bind the partition queues
 * itself before it copies anything.
 */
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { BehaviorSubject, asyncScheduler } from 'rxjs';
import { describe, expect, inject, it } from 'vitest';
import { parseTransportUrl } from '../../src/amqp.js';
import { partitionLeases, partitionQueue, partitionedNotifications } from '../../src/cluster/partition.js';
import { createLogger } from '../../src/log.js';
import type { SourceSignal } from '../../src/source.js';
import type { NotificationRecord } from '../../sources/openstack/notifications.js';
import { novaSample, osloBody, osloTimestamp } from '../support/nova-samples.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { waitFor } from '../support/wait.js';

const url = inject('rabbitUrl');

/** The queue's message and consumer counts; undefined while it is not declared (a channel of its own: a 404 closes it). */
async function counts(queue: string): Promise<{ messages: number; consumers: number } | undefined> {
  const connection = await amqp.connect(url);
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    const q = await channel.checkQueue(queue);
    return { messages: q.messageCount, consumers: q.consumerCount };
  } catch {
    return undefined;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

describe('a partitioned notifications source', () => {
  it('keeps what the router copied before any partition ran: the router binds the partition queues itself', async () => {
    if (!url) throw new Error('no RabbitMQ: test/support/global-setup.ts provides rabbitUrl (is rabbitmq-server installed?)');
    const id = randomUUID().slice(0, 8);
    const [cluster, name, exchange, queue] = [`pr-${id}`, 'bus', `nova-${id}`, `router-${id}`];
    const leases = new Map(partitionLeases(name, 2).map((lease) => [lease, new BehaviorSubject(lease === name)]));
    const source = partitionedNotifications(
      {
        transportUrl: url,
        endpoints: parseTransportUrl(url.replace(/^amqp:/, 'rabbit:')),
        exchanges: [exchange],
        topics: ['versioned_notifications'],
        priorities: ['info'],
        queue,
        prefetch: 100,
        durableExchanges: false,
        durableQueue: true,
        reconnectMs: 200,
        maxReconnectMs: 1000,
        heartbeatSeconds: 10,
      },
      { name, log: createLogger('silent'), scheduler: asyncScheduler },
      { name: cluster, partitions: 2, held$: (lease) => leases.get(lease)! },
    );
    const changes: Array<SourceSignal<NotificationRecord>> = [];
    const subscription = source.signal$.subscribe((signal) => {
      if (signal.kind !== 'change') return;
      changes.push(signal);
      signal.settle?.({ ok: true });
    });
    const partitions = [0, 1].map((k) => partitionQueue(cluster, name, k));
    const publisher = await OsloPublisher.connect(url);
    try {
      // Only the router runs: its input consumes once its queue is bound to the exchange.
      await waitFor(`a consumer on ${queue}`, async () => ((await counts(queue))?.consumers ?? 0) > 0, 15_000);
      await publisher.declare(exchange, 'versioned_notifications.info');
      const template = novaSample('instance-update.json');
      for (let i = 0; i < 10; i++) {
        const payload = structuredClone(template.payload) as { 'nova_object.data': Record<string, unknown> };
        payload['nova_object.data'].uuid = `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
        await publisher.publish(exchange, 'versioned_notifications.info', osloBody({ ...template, payload }, { messageId: `m-${i}`, timestamp: osloTimestamp(new Date()) }));
      }
      // Every original acked (its copy confirmed), and every copy waiting in a partition queue.
      await waitFor('the router to copy all 10 into the partition queues', async () => {
        const held = await Promise.all(partitions.map(counts));
        const routed = await counts(queue);
        return routed?.messages === 0 && held.every((h) => h !== undefined) && held.reduce((n, h) => n + h!.messages, 0) === 10;
      }, 15_000);
      expect(changes).toEqual([]);

      for (const [lease, held] of leases) if (lease !== name) held.next(true);
      await waitFor('the partitions to emit all 10', () => changes.length === 10, 15_000);
      expect(new Set(changes.map((c) => (c.kind === 'change' ? (c.record.notification.payload as { 'nova_object.data': { uuid: string } })['nova_object.data'].uuid : '')))).toHaveLength(10);
      await waitFor('every copy acked', async () => (await Promise.all(partitions.map(counts))).every((h) => h?.messages === 0), 15_000);
    } finally {
      subscription.unsubscribe();
      await publisher.close();
    }
  }, 60_000);
});
