import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { Subject, asyncScheduler } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { REASON_HEADER } from '../../src/amqp.js';
import { createLogger } from '../../src/log.js';
import type { EntityEvent } from '../../src/model.js';
import { OptionReader } from '../../src/options.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { type NotificationHooks, type NotificationSource, createNotificationSource, readNotificationOptions } from '../../sources/openstack/notifications.js';
import { type ApiServer, serverDraft } from '../../sources/openstack/nova.js';
import { FIXTURES, novaSample, osloBody, osloTimestamp } from '../support/nova-samples.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { sleep, waitFor } from '../support/wait.js';

const REAL = join(FIXTURES, 'wire/real-openstack');
const real = (file: string): Buffer => readFileSync(join(REAL, file));
const url = inject('rabbitUrl');

interface Harness {
  sync: Synchronizer;
  source: NotificationSource;
  events: EntityEvent[];
  settled: Parameters<NonNullable<NotificationHooks['onSettled']>>[0][];
  /** For each settled message: the number of events emitted when it was settled. */
  eventsAtSettle: number[];
  logs: Record<string, unknown>[];
  exchange: string;
  queue: string;
}

const running: Synchronizer[] = [];

/** A synchronizer with one notification source on its own exchange and queue. */
function harness(extra: Record<string, unknown> = {}, others: Source<unknown>[] = []): Harness {
  const id = randomUUID().slice(0, 8);
  const exchange = (extra.exchange as string | undefined) ?? `nova-${id}`;
  const queue = `synchronizer-${id}`;
  const { exchange: _x, ...rest } = extra;
  const options = readNotificationOptions(
    new OptionReader({ transportUrl: url.replace(/^amqp:/, 'rabbit:'), exchanges: [exchange], queue, prefetch: 50, reconnectDelay: '100ms', maxReconnectDelay: '1s', ...rest }, 'sources[0]'),
  );
  const logs: Record<string, unknown>[] = [];
  const log = createLogger('debug', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
  const events: EntityEvent[] = [];
  const settled: Harness['settled'] = [];
  const eventsAtSettle: number[] = [];
  const source = createNotificationSource(options, { name: 'bus', log, scheduler: asyncScheduler }, {
    onSettled: (info) => {
      settled.push(info);
      eventsAtSettle.push(events.length);
    },
  });
  const sync = createSynchronizer({ sources: [source as Source<unknown>, ...others], log });
  sync.entity$.subscribe((e) => events.push(e));
  running.push(sync);
  return { sync, source, events, settled, eventsAtSettle, logs, exchange, queue };
}

async function started(h: Harness): Promise<void> {
  h.sync.start();
  await waitFor('the source to be up', () => h.sync.health().bus?.status === 'up');
}

let publisher: OsloPublisher;

beforeAll(async () => {
  if (!url) throw new Error('no RabbitMQ: test/support/global-setup.ts provides rabbitUrl (is rabbitmq-server installed?)');
  publisher = await OsloPublisher.connect(url);
});

afterEach(() => {
  for (const s of running.splice(0)) s.stop();
});

afterAll(async () => {
  await publisher?.close();
});

describe('openstack.notifications against a real RabbitMQ', () => {
  it('consumes what oslo publishes on an exchange oslo declared first, acking only after the event', async () => {
    const h = harness({ topics: ['notifications', 'versioned_notifications'] });
    // oslo's notifier declares its (non-durable) exchange and notifications.info queue first.
    await publisher.declare(h.exchange, 'notifications.info');
    await publisher.declare(h.exchange, 'versioned_notifications.info');
    await started(h);
    await publisher.publish(h.exchange, 'versioned_notifications.info', real('nova--versioned_notifications.info--instance.create.end.body.json'));
    await publisher.publish(h.exchange, 'notifications.info', real('nova--notifications.info--compute.instance.create.end.body.json'));
    await publisher.publish(h.exchange, 'notifications.info', real('nova--notifications.info--scheduler.select_destinations.end.body.json'));
    await waitFor('three settlements', () => h.settled.length === 3);
    // Legacy and versioned create.end describe the same server: one create, no update.
    expect(h.events.map((e) => [e.action, e.origin, e.entity.key, e.entity.state])).toEqual([
      ['create', 'notification', 'nova.instance:17596566-91a9-4b73-b5da-3920e588854f', 'ACTIVE'],
    ]);
    expect(h.events[0]!.entity.observedAt).toBe('2026-11-25T12:28:57.242Z');
    expect(h.settled.every((s) => s.outcome.ok)).toBe(true);
    expect(h.eventsAtSettle[0]).toBe(1); // the first message was settled after its event reached us
    expect(h.source.stats.unknown).toEqual(new Map([['scheduler.select_destinations.end', 1]]));
    // Acked: nothing left in our queue, and oslo's own queue still has its copies (we never stole them).
    await sleep(300); // acks are batched into the next macrotask
    h.sync.stop();
    const ours = await publisher.raw.checkQueue(h.queue);
    expect(ours.messageCount).toBe(0);
    expect((await publisher.raw.checkQueue('notifications.info')).messageCount).toBeGreaterThanOrEqual(2);
  });

  it('malformed JSON, a wrong envelope, a payload without id → dead-lettered with the reason; unknown type acked; the consumer goes on', async () => {
    const dlx = `dlx-${randomUUID().slice(0, 8)}`;
    const h = harness({ deadLetterExchange: dlx });
    await publisher.declare(h.exchange, 'notifications.info');
    await started(h);
    const dead = await publisher.raw.assertQueue('', { exclusive: true });
    await publisher.raw.bindQueue(dead.queue, dlx, '#');
    const stamp = osloTimestamp(new Date());
    const missingId = novaSample('instance-update.json');
    const data = (missingId.payload as { 'nova_object.data': Record<string, unknown> })['nova_object.data'];
    delete data.uuid;
    await publisher.publish(h.exchange, 'notifications.info', Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': '{"message_id": "x", "event_ty' })));
    await publisher.publish(h.exchange, 'notifications.info', Buffer.from('{not json at all'));
    await publisher.publish(h.exchange, 'notifications.info', Buffer.from(JSON.stringify({ 'oslo.version': '3.0', 'oslo.message': '{}' })));
    await publisher.publish(h.exchange, 'notifications.info', osloBody(missingId, { messageId: 'no-id-1', timestamp: stamp }));
    await publisher.publish(h.exchange, 'notifications.info', osloBody({ event_type: 'identity.project.created', payload: { resource_info: 'p' } }, { messageId: 'unk-1', timestamp: stamp }));
    await publisher.publish(h.exchange, 'notifications.info', osloBody(novaSample('instance-create-end.json'), { messageId: 'good-1', timestamp: stamp }));
    await waitFor('six settlements', () => h.settled.length === 6);
    expect(h.settled.map((s) => s.outcome.ok)).toEqual([false, false, false, false, true, true]);
    expect(h.events.map((e) => e.entity.key)).toEqual(['nova.instance:178b0921-8f85-4257-88b6-2e743b5a975c']);
    expect(h.source.stats).toMatchObject({ received: 6, rejected: 4, unknown: new Map([['identity.project.created', 1]]), mapped: 2 });

    const reasons: string[] = [];
    const bodies: string[] = [];
    for (let i = 0; i < 4; i++) {
      let m: amqp.GetMessage | false = false;
      for (let tries = 0; tries < 100 && !m; tries++) {
        m = await publisher.raw.get(dead.queue, { noAck: true });
        if (!m) await sleep(20);
      }
      expect(m, `dead letter ${i + 1}`).toBeTruthy();
      const msg = m as amqp.GetMessage;
      // Where it came from, the original body and properties, persistent: enough to replay it.
      expect(msg.properties.headers?.['x-original-exchange']).toBe(h.exchange);
      expect(msg.properties.headers?.['x-original-routing-key']).toBe('notifications.info');
      expect(msg.properties.headers?.['x-original-queue']).toBe(h.queue);
      expect(msg.fields.routingKey).toBe('notifications.info');
      expect(msg.properties).toMatchObject({ contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2 });
      bodies.push(msg.content.toString());
      reasons.push(String(msg.properties.headers?.[REASON_HEADER]));
    }
    expect(bodies[1]).toBe('{not json at all');
    expect(JSON.parse(JSON.parse(bodies[3]!)['oslo.message'] as string)).toMatchObject({ message_id: 'no-id-1' });
    expect(reasons[0]).toMatch(/oslo.message is not JSON/);
    expect(reasons[1]).toMatch(/body is not JSON/);
    expect(reasons[2]).toMatch(/unsupported oslo.version "3.0"/);
    expect(reasons[3]).toMatch(/instance.update \(message no-id-1\): payload has no nova_object.data.uuid/);
    const refused = h.logs.filter((l) => l.msg === 'notification refused: dead-lettered');
    expect(refused.map((l) => l.message_id)).toEqual([null, null, null, 'no-id-1']);
  });

  it('without a dead-letter exchange: refused messages are logged with message_id and reason and rejected', async () => {
    const h = harness();
    await publisher.declare(h.exchange, 'notifications.info');
    await started(h);
    const missingId = { event_type: 'compute.instance.update', payload: { state: 'active' } };
    await publisher.publish(h.exchange, 'notifications.info', osloBody(missingId, { messageId: 'legacy-no-id', timestamp: osloTimestamp(new Date()) }));
    await waitFor('one settlement', () => h.settled.length === 1);
    const line = h.logs.find((l) => l.msg === 'notification refused: rejected without requeue');
    expect(line).toMatchObject({ message_id: 'legacy-no-id', event_type: 'compute.instance.update' });
    expect(String(line!.reason)).toMatch(/payload has no instance_id/);
    await sleep(200);
    h.sync.stop();
    expect((await publisher.raw.checkQueue(h.queue)).messageCount).toBe(0); // rejected, not requeued
  });

  it('a redelivered message makes no second event', async () => {
    const h = harness();
    await publisher.declare(h.exchange, 'notifications.info');
    await started(h);
    const body = osloBody(novaSample('instance-power_off-end.json'), { messageId: 'power-off-1', timestamp: osloTimestamp(new Date()) });
    await publisher.publish(h.exchange, 'notifications.info', body);
    await waitFor('the first settlement', () => h.settled.length === 1);
    expect(h.events.map((e) => e.action)).toEqual(['create']);
    h.sync.stop();
    // The same message again, handed back by another consumer without an ack: redelivered=true.
    await publisher.publish(h.exchange, 'notifications.info', body);
    let got: amqp.GetMessage | false = false;
    for (let tries = 0; tries < 100 && !got; tries++) {
      got = await publisher.raw.get(h.queue, { noAck: false });
      if (!got) await sleep(20);
    }
    expect(got).toBeTruthy();
    publisher.raw.nack(got as amqp.GetMessage, false, true);
    await started(h);
    await waitFor('the second settlement', () => h.settled.length >= 2);
    await sleep(200);
    expect(h.settled.slice(1)).toEqual([{ messageId: 'power-off-1', eventType: 'instance.power_off.end', redelivered: true, outcome: { ok: true } }]);
    expect(h.events).toHaveLength(1);
  });

  it('a notification, then a snapshot holding the same server as the API shows it → exactly one event', async () => {
    const poll$ = new Subject<SourceSignal<ApiServer>>();
    const poll: Source<ApiServer> = { name: 'nova', types: ['nova.instance'], signal$: poll$, map: serverDraft };
    const h = harness({ topics: ['versioned_notifications'] }, [poll as Source<unknown>]);
    await publisher.declare(h.exchange, 'versioned_notifications.info');
    await started(h);
    await publisher.publish(h.exchange, 'versioned_notifications.info', real('nova--versioned_notifications.info--instance.create.end.body.json'));
    await waitFor('the notification event', () => h.events.length === 1);
    const servers = (JSON.parse(real('api/api-servers-detail-all-tenants.json').toString()) as { servers: ApiServer[] }).servers;
    const server = servers.find((s) => s.id === '17596566-91a9-4b73-b5da-3920e588854f')!;
    // A poll that started after the notification: it is compared, and agrees.
    poll$.next({ kind: 'snapshot', source: 'nova', types: ['nova.instance'], at: new Date().toISOString(), records: [server] });
    await sleep(100);
    expect(h.sync.metrics().observations.nova).toBe(1);
    expect(h.events.map((e) => [e.action, e.origin])).toEqual([['create', 'notification']]);
    // A poll whose request started before the notification holds older news: no revert (rule 4).
    const stale = { ...server, status: 'BUILD', 'OS-EXT-STS:vm_state': 'building', 'OS-EXT-STS:task_state': 'spawning' };
    poll$.next({ kind: 'snapshot', source: 'nova', types: ['nova.instance'], at: '2026-11-25T12:28:57.000Z', records: [stale] });
    await sleep(100);
    expect(h.sync.metrics().observations.nova).toBe(2);
    expect(h.events).toHaveLength(1);
    expect(h.sync.snapshot(['nova.instance'])[0]!.state).toBe('ACTIVE');
  });

  it('fails over to the next host of the transport URL', async () => {
    const server = await import('node:net').then(({ createServer }) => createServer((socket) => socket.destroy()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const deadPort = (server.address() as { port: number }).port;
    const live = new URL(url);
    const h = harness({ transportUrl: `rabbit://guest:guest@127.0.0.1:${deadPort},guest:guest@127.0.0.1:${live.port}/` });
    await publisher.declare(h.exchange, 'notifications.info');
    await started(h);
    const down = h.logs.find((l) => l.msg === 'source is down');
    expect(String(down?.error)).toContain(`127.0.0.1:${deadPort}`);
    server.close();
    await publisher.publish(h.exchange, 'notifications.info', real('nova--notifications.info--compute.instance.create.end.body.json'));
    await waitFor('the event through the second host', () => h.events.length === 1);
  });

  it('delete.end of an unknown entity → no event; create.end of an unknown entity (2.0 and 1.0 bodies) → create', async () => {
    const h = harness({ topics: ['notifications', 'versioned_notifications'] });
    await publisher.declare(h.exchange, 'notifications.info');
    await publisher.declare(h.exchange, 'versioned_notifications.info');
    await started(h);
    await publisher.publish(h.exchange, 'notifications.info', real('nova--notifications.info--compute.instance.delete.end.body.json'));
    await publisher.publish(h.exchange, 'notifications.info', real('neutron--notifications.info--port.delete.end.body.json'));
    await publisher.publish(h.exchange, 'versioned_notifications.info', real('nova--versioned_notifications.info--instance.create.end.body.json'));
    // The 1.0 format (driver `messaging`): the bare message as the body.
    await publisher.publish(h.exchange, 'notifications.info', readFileSync(join(FIXTURES, 'wire/oslo-v1-compute.instance.create.end.body.json')));
    await waitFor('four settlements', () => h.settled.length === 4);
    expect(h.settled.every((s) => s.outcome.ok)).toBe(true);
    expect(h.events.map((e) => [e.action, e.entity.key])).toEqual([
      ['create', 'nova.instance:17596566-91a9-4b73-b5da-3920e588854f'],
      ['create', 'nova.instance:3f0a8c2e-1b4d-4e5f-9a6b-7c8d9e0f1a2b'],
    ]);
  });

  it('declaring with other flags than oslo (durable) is refused by the broker: reported down, oslo unharmed', async () => {
    const h = harness({ durableExchanges: true });
    await publisher.declare(h.exchange, 'notifications.info');
    h.sync.start();
    await waitFor('the source to be down', () => h.sync.health().bus?.status === 'down');
    expect(h.sync.health().bus?.error).toMatch(new RegExp(`declaring exchange ${h.exchange} .*inequivalent arg 'durable'`));
    h.sync.stop();
    // oslo's publishes still go through to its own queue (named after the routing key, bound to
    // its exchange): one more message there. Nobody consumes it; other tests may only add to it.
    const before = (await publisher.raw.checkQueue('notifications.info')).messageCount;
    await publisher.publish(h.exchange, 'notifications.info', real('nova--notifications.info--compute.instance.update.body.json'));
    expect((await publisher.raw.checkQueue('notifications.info')).messageCount).toBeGreaterThanOrEqual(before + 1);
  });

  it('the broker cancels the consumer (queue deleted): it reconnects, redeclares and goes on', async () => {
    const h = harness();
    await publisher.declare(h.exchange, 'notifications.info');
    await started(h);
    await publisher.raw.deleteQueue(h.queue);
    await waitFor('the source to report the cancel', () => h.logs.some((l) => l.msg === 'source is down' && /cancelled the consumer/.test(String(l.error))));
    await waitFor('the source to be up again', () => h.sync.health().bus?.status === 'up');
    await publisher.publish(h.exchange, 'notifications.info', real('nova--notifications.info--compute.instance.create.end.body.json'));
    await waitFor('the event after reconnect', () => h.events.length === 1);
  });
});
