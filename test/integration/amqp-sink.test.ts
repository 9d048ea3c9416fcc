import { randomUUID } from 'node:crypto';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { type Observable, Subject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseTransportUrl } from '../../src/amqp.js';
import { createLogger } from '../../src/log.js';
import type { Entity, EntityDraft, EntityEvent } from '../../src/model.js';
import { createAmqpSink } from '../../src/sinks/amqp.js';
import { eventLine } from '../../src/sinks/stdout.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { entity, snapshot, t, upsert } from '../support/entities.js';
import { waitFor } from '../support/wait.js';

const url = inject('rabbitUrl');

/** A source whose records are already entities (the mapping passes them through). */
function sourceOf(name: string, signal$: Observable<SourceSignal<Entity>>): Source<unknown> {
  return { name, types: ['nova.instance', 'nova.host'], signal$, map: (r) => r as EntityDraft } as Source<unknown>;
}

let connection: ChannelModel;
let channel: Channel;

beforeAll(async () => {
  if (!url) throw new Error('no RabbitMQ: test/support/global-setup.ts provides rabbitUrl (is rabbitmq-server installed?)');
  connection = await amqp.connect(url);
  channel = await connection.createChannel();
});

afterAll(async () => {
  await connection?.close();
});

describe('use: amqp sink against a real RabbitMQ', () => {
  it('publishes the replay, synced, then every event, in order, as persistent JSON with the entity key header', async () => {
    const exchange = `sink-${randomUUID()}`;
    // Declared as the sink declares it (durable topic), so the queue can be bound before the sink starts.
    await channel.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, exchange, '#');
    const received: ConsumeMessage[] = [];
    await channel.consume(queue, (m) => m && received.push(m), { noAck: true });

    const source$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', source$)] });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    source$.next(snapshot(t(0), [entity('x'), entity('y'), entity('h1', 'UP', { type: 'nova.host' })], ['nova.instance', 'nova.host']));

    const sink = createAmqpSink(
      { url, endpoints: parseTransportUrl(url), exchange, types: ['nova.instance'], reconnectMs: 100, maxReconnectMs: 500 },
      createLogger('silent'),
    );
    const handle = sink.attach(sync);
    await waitFor('the replay and synced', () => received.length >= 3);
    source$.next(upsert(t(1), entity('z')));
    source$.next(upsert(t(2), entity('x', 'SHUTOFF')));
    source$.next(upsert(t(2), entity('h1', 'DOWN', { type: 'nova.host' }))); // filtered out by types
    source$.next(snapshot(t(3), [entity('x', 'SHUTOFF'), entity('z')], ['nova.instance']));
    await waitFor('every message', () => received.length >= 6);
    handle.unsubscribe();
    await sink.close?.();
    sync.stop();

    const instanceEvents = events.filter((e) => e.entity.type === 'nova.instance').slice(2); // after the replayed creates
    expect(received.map((m) => m.fields.routingKey)).toEqual([
      'nova.instance.replay',
      'nova.instance.replay',
      'synced',
      'nova.instance.create',
      'nova.instance.update',
      'nova.instance.delete',
    ]);
    expect(received.map((m) => m.properties.headers?.['x-entity-key'])).toEqual([
      'nova.instance:x',
      'nova.instance:y',
      undefined,
      'nova.instance:z',
      'nova.instance:x',
      'nova.instance:y',
    ]);
    expect(received.every((m) => m.properties.deliveryMode === 2 && m.properties.contentType === 'application/json')).toBe(true);
    const bodies = received.map((m) => m.content.toString());
    const replayed = sync.snapshot(['nova.instance']);
    expect(JSON.parse(bodies[0]!)).toMatchObject({ kind: 'replay', entity: { key: 'nova.instance:x', state: 'ACTIVE' } });
    expect(JSON.parse(bodies[1]!)).toMatchObject({ kind: 'replay', entity: { key: 'nova.instance:y' } });
    expect(JSON.parse(bodies[1]!).entity).not.toHaveProperty('raw');
    expect(JSON.parse(bodies[2]!)).toEqual({ kind: 'synced', count: 2 });
    expect(instanceEvents.map((e) => `${e.action}:${e.entity.id}`)).toEqual(['create:z', 'update:x', 'delete:y']);
    // The event body is exactly the NDJSON line of the stdout sink, without its newline.
    expect(bodies.slice(3)).toEqual(instanceEvents.map((e) => eventLine(e).slice(0, -1)));
    expect(replayed.map((e) => e.id).sort()).toEqual(['x', 'z']);
  });

  it('a consumer that fell behind gets `resync` on the wire, then a fresh replay of the whole current state and `synced`', async () => {
    const exchange = `sink-${randomUUID()}`;
    await channel.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, exchange, '#');
    const received: ConsumeMessage[] = [];
    await channel.consume(queue, (m) => m && received.push(m), { noAck: true });

    const source$ = new Subject<SourceSignal<Entity>>();
    // A queue of 5 events for the sink: a burst of 30 in one go is more than it may hold.
    const sync = createSynchronizer({ sources: [sourceOf('nova', source$)], bufferSize: 5 });
    sync.start();
    source$.next(snapshot(t(0), [entity('a')], ['nova.instance']));
    const sink = createAmqpSink({ url, endpoints: parseTransportUrl(url), exchange, reconnectMs: 100, maxReconnectMs: 500 }, createLogger('silent'));
    const handle = sink.attach(sync);
    await waitFor('the first replay and synced', () => received.length >= 2);
    for (let i = 0; i < 30; i++) source$.next(upsert(t(1 + i), entity(`burst-${i}`)));
    const kinds = () => received.map((m) => m.fields.routingKey);
    await waitFor('resync, a replay of 31 and synced', () => kinds().lastIndexOf('synced') > kinds().indexOf('resync') && kinds().indexOf('resync') > 0, { context: () => kinds().join(' ') });
    handle.unsubscribe();
    await sink.close?.();
    sync.stop();

    expect(kinds().slice(0, 2)).toEqual(['nova.instance.replay', 'synced']);
    const resyncAt = kinds().indexOf('resync');
    expect(JSON.parse(received[resyncAt]!.content.toString())).toMatchObject({ kind: 'resync', dropped: expect.any(Number) });
    const after = received.slice(resyncAt + 1);
    const syncedAt = after.findIndex((m) => m.fields.routingKey === 'synced');
    // The replay after the resync is the whole current state, whatever was dropped.
    const replayed = after.slice(0, syncedAt).map((m) => JSON.parse(m.content.toString()) as { kind: string; entity: Entity });
    expect(replayed.every((r) => r.kind === 'replay')).toBe(true);
    expect(replayed.map((r) => r.entity.id).sort()).toEqual(sync.snapshot().map((e) => e.id).sort());
    expect(replayed).toHaveLength(31);
    expect(JSON.parse(after[syncedAt]!.content.toString())).toEqual({ kind: 'synced', count: 31 });
  });

  it('republishes nacked messages, and everything after them, in order', async () => {
    const exchange = `sink-${randomUUID()}`;
    await channel.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
    // A full queue with overflow reject-publish makes the broker nack what is routed to it.
    const { queue } = await channel.assertQueue('', { exclusive: true, arguments: { 'x-max-length': 5, 'x-overflow': 'reject-publish' } });
    await channel.bindQueue(queue, exchange, 'nova.instance.*');

    const source$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', source$)] });
    sync.start();
    const logs: string[] = [];
    const sink = createAmqpSink(
      { url, endpoints: parseTransportUrl(url), exchange, reconnectMs: 50, maxReconnectMs: 100 },
      createLogger('info', (line) => logs.push(line)),
    );
    const handle = sink.attach(sync);
    for (let i = 0; i < 12; i++) source$.next(upsert(t(i), entity(`vm-${i}`)));
    await waitFor('a nack', () => logs.some((l) => l.includes('message nacked')));
    const ids: string[] = [];
    await channel.consume(queue, (m) => m && ids.push(JSON.parse(m.content.toString()).entity.id), { noAck: true });
    await waitFor('every message', () => new Set(ids).size === 12);
    handle.unsubscribe();
    await sink.close?.();
    sync.stop();
    // Last occurrence wins, as for a consumer that applies each message in turn.
    const last = ids.filter((id, i) => ids.lastIndexOf(id) === i);
    expect(last).toEqual(Array.from({ length: 12 }, (_, i) => `vm-${i}`));
    expect(ids.slice(0, 5)).toEqual(['vm-0', 'vm-1', 'vm-2', 'vm-3', 'vm-4']);
  });
});
