/**
 * A RabbitMQ set up as production ones are: a TLS listener with a private CA (client certificates
 * verified when presented) and a max_message_size. Against it: the notifications source and the
 * amqp sink over amqps://, a wrong CA, dead-lettering that fails, and a message the broker will
 * never take.
 */
import { randomUUID } from 'node:crypto';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { Subject, asyncScheduler } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_HEADER_VALUE, REASON_HEADER } from '../../src/amqp.js';
import { createLogger } from '../../src/log.js';
import type { Entity, EntityDraft, EntityEvent } from '../../src/model.js';
import { OptionReader } from '../../src/options.js';
import { createAmqpSink, readAmqpSinkOptions } from '../../src/sinks/amqp.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { type NotificationHooks, createNotificationSource, readNotificationOptions } from '../../sources/openstack/notifications.js';
import { entity, snapshot, t, upsert } from '../support/entities.js';
import { novaSample, osloBody, osloTimestamp } from '../support/nova-samples.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { RabbitNode } from '../support/rabbitmq.js';
import { type TestPki, makeTestPki } from '../support/tls.js';
import { sleep, waitFor } from '../support/wait.js';

const MAX_MESSAGE = 1024 * 1024;
let pki: TestPki;
let node: RabbitNode;
let publisher: OsloPublisher;
let connection: ChannelModel;
let channel: Channel;
const running: Synchronizer[] = [];

beforeAll(async () => {
  pki = makeTestPki();
  node = await RabbitNode.start({
    name: 'tls',
    tls: { ca: pki.files.ca, cert: pki.files.serverCert, key: pki.files.serverKey, verifyPeer: true },
    config: [`max_message_size = ${MAX_MESSAGE}`],
  });
  publisher = await OsloPublisher.connect(node.url);
  connection = await amqp.connect(node.url);
  channel = await connection.createChannel();
}, 120_000);
afterEach(() => {
  for (const s of running.splice(0)) s.stop();
});
afterAll(async () => {
  await connection?.close().catch(() => undefined);
  await publisher?.close();
  await node?.dispose();
  pki?.dispose();
});

function bus(extra: Record<string, unknown>) {
  const id = randomUUID().slice(0, 8);
  const exchange = `nova-${id}`;
  const queue = `synchronizer-${id}`;
  const options = readNotificationOptions(
    new OptionReader({ transportUrl: node.tlsUrl, tls: { ca: pki.files.ca }, exchanges: [exchange], queue, prefetch: 10, reconnectDelay: '100ms', maxReconnectDelay: '1s', ...extra }, 'sources[0]'),
  );
  const logs: Record<string, unknown>[] = [];
  const log = createLogger('debug', (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
  const settled: Parameters<NonNullable<NotificationHooks['onSettled']>>[0][] = [];
  const source = createNotificationSource(options, { name: 'bus', log, scheduler: asyncScheduler }, { onSettled: (i) => settled.push(i) });
  const sync = createSynchronizer({ sources: [source as Source<unknown>], log });
  const events: EntityEvent[] = [];
  sync.entity$.subscribe((e) => events.push(e));
  running.push(sync);
  sync.start();
  return { sync, source, events, settled, logs, exchange, queue };
}

describe('amqps:// with a private CA', () => {
  it('the notifications source consumes over TLS (tls.ca), also presenting a client certificate', async () => {
    for (const tls of [{ ca: pki.files.ca }, { ca: pki.files.ca, cert: pki.files.clientCert, key: pki.files.clientKey }]) {
      const h = bus({ tls });
      await publisher.declare(h.exchange, 'notifications.info');
      await waitFor('bus up over amqps', () => h.sync.health().bus?.status === 'up', { context: () => JSON.stringify(h.sync.health()) });
      await publisher.publish(h.exchange, 'notifications.info', osloBody(novaSample('instance-create-end.json'), { messageId: randomUUID(), timestamp: osloTimestamp(new Date()) }));
      await waitFor('the event', () => h.events.length === 1);
      expect(h.logs.find((l) => l.msg === 'consuming notifications')?.endpoint).toMatch(/^amqps:\/\/guest@127\.0\.0\.1:\d+\/$/);
      h.sync.stop();
    }
  });

  it('a wrong CA is a clear error; insecure: true connects and warns', async () => {
    const wrong = bus({ tls: { ca: pki.files.otherCa } });
    const down = await waitFor('bus down', () => wrong.sync.health().bus?.status === 'down' && wrong.sync.health().bus);
    expect(down.error).toMatch(/connecting to amqps:\/\/guest@127\.0\.0\.1:\d+\/: .*(SELF_SIGNED|certificate)/i);
    wrong.sync.stop();
    const loose = bus({ tls: { insecure: true } });
    await waitFor('bus up', () => loose.sync.health().bus?.status === 'up');
    expect(loose.logs.some((l) => l.level === 'warn' && String(l.msg).includes('verification is OFF'))).toBe(true);
  });

  it('the amqp sink publishes over TLS (tls.ca)', async () => {
    const exchange = `sink-${randomUUID()}`;
    await channel.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, exchange, '#');
    const received: ConsumeMessage[] = [];
    await channel.consume(queue, (m) => m && received.push(m), { noAck: true });
    const sink = createAmqpSink(readAmqpSinkOptions(new OptionReader({ url: node.tlsUrl, exchange, tls: { ca: pki.files.ca } }, 'sinks[0]')), createLogger('silent'));
    const { sync, source$ } = hub();
    sink.attach(sync);
    source$.next(snapshot(t(0), [entity('a'), entity('b')]));
    await waitFor('replay/events over amqps', () => received.filter((m) => m.fields.routingKey === 'nova.instance.create').length === 2);
    await sink.close?.();
  });
});

function hub(): { sync: Synchronizer; source$: Subject<SourceSignal<Entity>> } {
  const source$ = new Subject<SourceSignal<Entity>>();
  const source = { name: 'nova', types: ['nova.instance'], signal$: source$, map: (r: Entity) => r as EntityDraft } as unknown as Source<unknown>;
  const sync = createSynchronizer({ sources: [source] });
  running.push(sync);
  sync.start();
  return { sync, source$ };
}

describe('dead-lettering that fails still settles', () => {
  it('a refusal whose reason and headers would overflow the 64 KiB header table: dead-lettered with capped headers, and the consumer goes on', async () => {
    const dlx = `dlx-${randomUUID().slice(0, 8)}`;
    const h = bus({ deadLetterExchange: dlx, prefetch: 1 });
    await publisher.declare(h.exchange, 'notifications.info');
    await waitFor('bus up', () => h.sync.health().bus?.status === 'up');
    const dead = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(dead.queue, dlx, '#');
    const missingId = novaSample('instance-update.json');
    delete (missingId.payload as { 'nova_object.data': Record<string, unknown> })['nova_object.data'].uuid;
    // 60 KiB of headers from the publisher, and a 20 KB message_id the reason quotes.
    const bigId = `id-${'x'.repeat(20_000)}`;
    await publisher.raw.publish(h.exchange, 'notifications.info', osloBody(missingId, { messageId: bigId, timestamp: osloTimestamp(new Date()) }), { headers: { bulk: 'h'.repeat(60_000) } });
    await publisher.raw.waitForConfirms();
    await publisher.publish(h.exchange, 'notifications.info', osloBody(novaSample('instance-create-end.json'), { messageId: 'good', timestamp: osloTimestamp(new Date()) }));
    // prefetch 1: the good one only arrives once the refused one stopped holding the slot.
    await waitFor('the good one after the refused one', () => h.events.length === 1, { context: () => JSON.stringify(h.settled.map((s) => s.outcome)) });
    let letter: amqp.GetMessage | false = false;
    for (let tries = 0; tries < 100 && !letter; tries++) {
      letter = await channel.get(dead.queue, { noAck: true });
      if (!letter) await sleep(20);
    }
    if (!letter) throw new Error('no dead letter');
    const headers = letter.properties.headers ?? {};
    expect(String(headers[REASON_HEADER]).length).toBeLessThanOrEqual(MAX_HEADER_VALUE);
    expect(headers.bulk).toBeUndefined();
    expect(headers['x-synchronizer-headers-dropped']).toBeGreaterThan(60_000);
    await sleep(300);
    expect((await channel.checkQueue(h.queue)).messageCount).toBe(0);
  });

  it('a dead-letter exchange deleted under the consumer: the copy is retried on a fresh channel, the message settled, the consumer goes on', async () => {
    const dlx = `dlx-${randomUUID().slice(0, 8)}`;
    const h = bus({ deadLetterExchange: dlx, prefetch: 1 });
    await publisher.declare(h.exchange, 'notifications.info');
    await waitFor('bus up', () => h.sync.health().bus?.status === 'up');
    // A first refusal opens the dead-letter channel; then the exchange goes away under it.
    await publisher.publish(h.exchange, 'notifications.info', Buffer.from('{first'));
    await waitFor('the first refusal', () => h.settled.length === 1);
    await sleep(100);
    await channel.deleteExchange(dlx);
    await publisher.publish(h.exchange, 'notifications.info', Buffer.from('{not json'));
    await publisher.publish(h.exchange, 'notifications.info', osloBody(novaSample('instance-create-end.json'), { messageId: 'after', timestamp: osloTimestamp(new Date()) }));
    await waitFor('the good one', () => h.events.length === 1);
    await sleep(300);
    expect((await channel.checkQueue(h.queue)).messageCount).toBe(0);
    // The exchange is back (declared again by the retry): the copy was kept.
    await channel.checkExchange(dlx);
    expect(h.logs.filter((l) => String(l.msg).includes('NOT dead-lettered'))).toEqual([]);
    expect(h.sync.health().bus?.status).toBe('up');
    expect(h.settled.map((s) => s.outcome.ok)).toEqual([false, false, true]);
  });

  it('a dead-letter exchange that cannot be used (redeclared as another type): rejected without requeue, logged, the consumer goes on', async () => {
    const dlx = `dlx-${randomUUID().slice(0, 8)}`;
    const h = bus({ deadLetterExchange: dlx, prefetch: 1 });
    await publisher.declare(h.exchange, 'notifications.info');
    await waitFor('bus up', () => h.sync.health().bus?.status === 'up');
    await channel.deleteExchange(dlx);
    await channel.assertExchange(dlx, 'fanout', { durable: false });
    await publisher.publish(h.exchange, 'notifications.info', Buffer.from('{not json'));
    await publisher.publish(h.exchange, 'notifications.info', osloBody(novaSample('instance-create-end.json'), { messageId: 'after', timestamp: osloTimestamp(new Date()) }));
    await waitFor('the good one', () => h.events.length === 1, { context: () => JSON.stringify(h.logs.slice(-2)) });
    await sleep(300);
    expect((await channel.checkQueue(h.queue)).messageCount).toBe(0);
    const lost = h.logs.filter((l) => String(l.msg).includes('NOT dead-lettered'));
    expect(lost).toHaveLength(1);
    expect(String(lost[0]!.error)).toMatch(/dead-lettering to exchange dlx-\w+ failed twice: .*PRECONDITION/);
    expect(h.sync.health().bus?.status).toBe('up');
  });
});

describe('the amqp sink and a message the broker will never take', () => {
  it('an event over max_message_size is set aside, counted and logged; the stream goes on in order', async () => {
    const exchange = `sink-${randomUUID()}`;
    await channel.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, exchange, '#');
    const received: ConsumeMessage[] = [];
    await channel.consume(queue, (m) => m && received.push(m), { noAck: true });
    const logs: Record<string, unknown>[] = [];
    // The sink's own cap is left at its default: the broker's smaller limit is what refuses.
    const sink = createAmqpSink(
      readAmqpSinkOptions(new OptionReader({ url: node.url, exchange, reconnectDelay: '50ms', maxReconnectDelay: '200ms' }, 'sinks[0]')),
      createLogger('debug', (line) => logs.push(JSON.parse(line) as Record<string, unknown>)),
    );
    const { sync, source$ } = hub();
    sink.attach(sync);
    source$.next(snapshot(t(0), [entity('a')]));
    source$.next(upsert(t(1), entity('huge', 'ACTIVE', { attributes: { blob: 'z'.repeat(2 * MAX_MESSAGE) } })));
    source$.next(upsert(t(2), entity('after-1')));
    source$.next(upsert(t(3), entity('after-2')));
    await waitFor('the events after the poison one', () => received.some((m) => m.properties.headers?.['x-entity-key'] === 'nova.instance:after-2'), {
      timeoutMs: 20_000,
      context: () => JSON.stringify(logs.slice(-3)),
    });
    const keys = received.filter((m) => m.fields.routingKey.startsWith('nova.instance.')).map((m) => m.properties.headers?.['x-entity-key']);
    expect(keys.filter((k, i) => keys.indexOf(k) === i)).toEqual(['nova.instance:a', 'nova.instance:after-1', 'nova.instance:after-2']);
    expect(sink.stats().setAside).toBe(1);
    expect(logs.find((l) => String(l.msg).includes('set aside'))).toMatchObject({ level: 'error', routingKey: 'nova.instance.create', entityKey: 'nova.instance:huge' });
    await sink.close?.();
  });

  it('maxMessageSize sets an oversized message aside before it is published', async () => {
    const exchange = `sink-${randomUUID()}`;
    const sink = createAmqpSink(readAmqpSinkOptions(new OptionReader({ url: node.url, exchange, maxMessageSize: '64KiB' }, 'sinks[0]')), createLogger('silent'));
    const { sync, source$ } = hub();
    sink.attach(sync);
    source$.next(snapshot(t(0), [entity('a'), entity('big', 'ACTIVE', { attributes: { blob: 'q'.repeat(100_000) } })]));
    await waitFor('set aside', () => sink.stats().setAside === 1);
    await sink.close?.();
  });
});
