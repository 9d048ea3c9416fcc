import amqp from 'amqplib';
import { type Observable, Subject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTransportUrl } from '../../src/amqp.js';
import { createLogger } from '../../src/log.js';
import type { Entity, EntityDraft } from '../../src/model.js';
import { createAmqpSink } from '../../src/sinks/amqp.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { entity, t, upsert } from '../support/entities.js';
import { RabbitNode } from '../support/rabbitmq.js';
import { sleep, waitFor } from '../support/wait.js';

/** Its own node: restarting the run's shared broker would disturb the other suites. */
let node: RabbitNode;

beforeAll(async () => {
  node = await RabbitNode.start({ name: 'sink-restart' });
}, 90_000);

afterAll(async () => {
  await node?.dispose();
}, 60_000);

describe('use: amqp sink across a broker restart', () => {
  it('publishes the events emitted while the broker was down once it is back, in order, none lost', async () => {
    const exchange = 'synchronizer';
    const queue = 'downstream';
    // A durable queue with persistent messages: what was confirmed before the restart survives it.
    const setup = await amqp.connect(node.url);
    const ch = await setup.createChannel();
    await ch.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
    await ch.assertQueue(queue, { durable: true });
    await ch.bindQueue(queue, exchange, 'nova.instance.*');
    await setup.close();

    const source$ = new Subject<SourceSignal<Entity>>();
    const source = { name: 'nova', types: ['nova.instance'], signal$: source$ as Observable<SourceSignal<Entity>>, map: (r: unknown) => r as EntityDraft } as Source<unknown>;
    const sync = createSynchronizer({ sources: [source] });
    sync.start();
    const logs: string[] = [];
    const sink = createAmqpSink(
      // A small window: while the broker is down the callback waits, the hub queues the rest.
      { url: node.transportUrl, endpoints: parseTransportUrl(node.transportUrl), exchange, reconnectMs: 100, maxReconnectMs: 400, window: 50 },
      createLogger('info', (line) => logs.push(line)),
    );
    const handle = sink.attach(sync);
    await waitFor('the sink to be connected', () => logs.some((l) => l.includes('amqp sink: publishing')), 30_000);

    let n = 0;
    const emit = (): void => {
      source$.next(upsert(t(n), entity(`vm-${n}`)));
      n += 1;
    };
    for (let i = 0; i < 100; i++) emit();
    // Emit a paced stream while the broker stops and starts again.
    let restarted = false;
    const restart = node.restart().then(() => (restarted = true));
    let duringRestart = 0;
    while (!restarted) {
      emit();
      duringRestart += 1;
      await sleep(25);
    }
    await restart;
    for (let i = 0; i < 100; i++) emit();

    const ids: string[] = [];
    const consumer = await amqp.connect(node.url);
    const cch = await consumer.createChannel();
    await cch.consume(queue, (m) => m && ids.push(JSON.parse(m.content.toString()).entity.id), { noAck: true });
    await waitFor(`all ${n} events`, () => new Set(ids).size === n, 30_000);
    handle.unsubscribe();
    await sink.close?.();
    sync.stop();
    await consumer.close();

    const firstSeen = [...new Set(ids)];
    expect(firstSeen).toEqual(Array.from({ length: n }, (_, i) => `vm-${i}`));
    expect(duringRestart).toBeGreaterThan(20);
    const failures = logs.filter((l) => l.includes('amqp sink: broker unavailable'));
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((l) => l.includes('rabbit://guest:***@127.0.0.1'))).toBe(true);
    expect(logs.some((l) => l.includes('closed with unconfirmed'))).toBe(false);
    console.info(`sink restart: ${n} events, ${duringRestart} while the broker restarted, ${ids.length - n} duplicates`);
  }, 90_000);
});
