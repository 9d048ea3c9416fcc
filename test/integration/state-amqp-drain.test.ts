import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { CliRun } from '../support/cli.js';
import { novaSample, osloBody, osloTimestamp } from '../support/nova-samples.js';
import { sleep, waitFor } from '../support/wait.js';

const run = new CliRun();
let connection: ChannelModel | undefined;
afterEach(async () => {
  run.cleanup();
  await connection?.close().catch(() => undefined);
});

/** Every message waiting in `queue`, taken off it (basic.get until empty). */
async function takeAll(channel: Channel, queue: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (;;) {
    const m = await channel.get(queue, { noAck: true });
    if (m === false) return out;
    out.push(m.content);
  }
}

/** The instance id a notification body is about. */
function notifiedId(body: Buffer): string {
  const inner = JSON.parse((JSON.parse(body.toString()) as { 'oslo.message': string })['oslo.message']) as { payload: { 'nova_object.data': { uuid: string } } };
  return inner.payload['nova_object.data'].uuid;
}

describe('SIGTERM with state.dir and a slow amqp sink', () => {
  it('drains: every event is on the exchange after exit, every notification that made one is acked, none acked that did not', async (ctx) => {
    const url = inject('rabbitUrl');
    if (!url) ctx.skip(true, 'no RabbitMQ for this run (rabbitmq-server missing?)');
    const tag = randomUUID().slice(0, 8);
    const [inExchange, inQueue, outExchange, outQueue] = [`nova-${tag}`, `sync-in-${tag}`, `sync-out-${tag}`, `watch-${tag}`];
    connection = await amqp.connect(url, { noDelay: true });
    const channel = await connection.createConfirmChannel();
    // The test's own view of both ends: the services' exchange (oslo's flags) and the sink's.
    await channel.assertExchange(inExchange, 'topic', { durable: false, autoDelete: false });
    await channel.assertExchange(outExchange, 'topic', { durable: true, autoDelete: false });
    await channel.assertQueue(outQueue, { durable: false, autoDelete: true });
    await channel.bindQueue(outQueue, outExchange, 'nova.instance.*');

    const dir = run.workdir('drain-');
    const config = join(dir, 'synchronizer.yaml');
    writeFileSync(
      config,
      [
        'log: info',
        'state: { dir: ./state }',
        'shutdownDeadline: 60s',
        'sources:',
        '  - name: bus',
        '    use: openstack.notifications',
        `    transportUrl: ${url}`,
        `    exchanges: [${inExchange}]`,
        '    topics: [versioned_notifications]',
        `    queue: ${inQueue}`,
        '    prefetch: 100',
        'sinks:',
        '  - use: amqp',
        `    url: ${url}`,
        `    exchange: ${outExchange}`,
        // One unconfirmed message at a time: a slow sink, so events queue up in front of it.
        '    window: 1',
        '',
      ].join('\n'),
    );
    const cli = run.cli('--config', config);
    await waitFor('the consumer', () => /"source is up".*"source":"bus"/.test(cli.stderr), { timeoutMs: 30_000, context: () => cli.stderr });

    const N = 400;
    const template = novaSample('instance-update.json');
    const ids = Array.from({ length: N }, () => randomUUID());
    for (let i = 0; i < N; i++) {
      const payload = structuredClone(template.payload) as { 'nova_object.data': Record<string, unknown> };
      payload['nova_object.data'].uuid = ids[i];
      payload['nova_object.data'].display_name = `vm-${i}`;
      channel.publish(inExchange, 'versioned_notifications.info', osloBody({ ...template, payload }, { messageId: `m-${i}`, timestamp: osloTimestamp(new Date()) }), { contentType: 'application/json', deliveryMode: 2 });
    }
    await channel.waitForConfirms();

    const published: string[] = [];
    const take = async (): Promise<void> => {
      for (const body of await takeAll(channel, outQueue)) published.push((JSON.parse(body.toString()) as { entity: { id: string } }).entity.id);
    };
    // Some events out, most still queued in front of the slow sink.
    const deadline = Date.now() + 30_000;
    while (published.length < 20) {
      if (Date.now() > deadline) throw new Error(`the sink did not get under way: ${published.length} events; stderr:\n${cli.stderr}`);
      await take();
      await sleep(20);
    }
    const atSignal = published.length;
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    await take();
    const leftInQueue = (await takeAll(channel, inQueue)).map(notifiedId);

    const out = new Set(published);
    expect(out.size).toBe(published.length); // no event twice
    expect(published.length).toBeGreaterThan(atSignal); // the drain delivered what was queued
    // Acked ⇔ its event is on the exchange: a notification left in the queue made no event,
    // and every notification not left in the queue (acked) made one.
    expect(leftInQueue.filter((id) => out.has(id))).toEqual([]);
    expect([...out, ...leftInQueue].sort()).toEqual([...ids].sort());
    expect(cli.stderr).toContain('synchronizer stopped');
  }, 120_000);
});
