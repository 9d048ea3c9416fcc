/**
 * /metrics of a service that consumes notifications from a real RabbitMQ and publishes its events
 * to it: notifications consumed, rejected and dead-lettered, publish-to-emit latency, the amqp
 * sink's unconfirmed messages, and no broker credentials anywhere.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { type Service, startService } from '../../src/service.js';
import { FIXTURES } from '../support/nova-samples.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { waitFor } from '../support/wait.js';

const url = inject('rabbitUrl');
const REAL = join(FIXTURES, 'wire/real-openstack');
let publisher: OsloPublisher;
let service: Service | undefined;

beforeAll(async () => {
  if (!url) throw new Error('no RabbitMQ: test/support/global-setup.ts provides rabbitUrl (is rabbitmq-server installed?)');
  publisher = await OsloPublisher.connect(url);
});
afterEach(async () => {
  await service?.stop();
  service = undefined;
});
afterAll(async () => {
  await publisher?.close();
});

/** One sample of the exposition, or undefined. */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('/metrics with RabbitMQ on both sides', () => {
  it('counts notifications consumed, rejected and dead-lettered, their publish-to-emit time, and the sink\'s unconfirmed messages', async () => {
    const id = randomUUID().slice(0, 8);
    const exchange = `nova-${id}`;
    const config = await parseConfig(
      {
        listen: '127.0.0.1:0',
        sources: [{ name: 'bus', use: 'openstack.notifications', transportUrl: url.replace(/^amqp:/, 'rabbit:'), exchanges: [exchange], topics: ['notifications'], queue: `synchronizer-${id}`, deadLetterExchange: `dead-${id}` }],
        sinks: [{ use: 'amqp', url, exchange: `events-${id}` }],
      },
      process.cwd(),
    );
    service = await startService(config, createLogger('silent'));
    await waitFor('the consumer to be up', () => service!.sync.health().bus?.status === 'up');
    await publisher.publish(exchange, 'notifications.info', readFileSync(join(REAL, 'nova--notifications.info--compute.instance.create.end.body.json')));
    await publisher.publish(exchange, 'notifications.info', Buffer.from('{not json at all'));

    const series = {
      consumed: 'synchronizer_notifications_consumed_total{source="bus"}',
      rejected: 'synchronizer_notifications_rejected_total{source="bus"}',
      dead: 'synchronizer_notifications_dead_lettered_total{source="bus"}',
      latency: 'synchronizer_publish_to_emit_seconds_count{source="bus"}',
      latencySum: 'synchronizer_publish_to_emit_seconds_sum{source="bus"}',
      ours: 'synchronizer_delivery_to_emit_seconds_count{source="bus"}',
      oursSum: 'synchronizer_delivery_to_emit_seconds_sum{source="bus"}',
      unconfirmed: 'synchronizer_sink_unconfirmed_messages{sink="amqp"}',
      backlog: 'synchronizer_sink_backlog_events',
    };
    const metrics = async (): Promise<string> => (await fetch(`http://${service!.address}/metrics`)).text();
    const text = await waitFor('both messages settled and the event confirmed', async () => {
      const t = await metrics();
      return sample(t, series.consumed) === 1 && sample(t, series.rejected) === 1 && sample(t, series.unconfirmed) === 0 ? t : undefined;
    });
    expect(sample(text, series.dead)).toBe(1);
    expect(sample(text, series.latency)).toBe(1);
    // The synchronizer's own part, from the delivery reaching it: not the sample's timestamp
    // (years ago), a few ms here and at most the test's own span.
    expect(sample(text, series.ours)).toBe(1);
    expect(sample(text, series.oursSum)).toBeGreaterThan(0);
    expect(sample(text, series.oursSum)).toBeLessThan(30);
    expect(sample(text, series.latencySum)).toBeGreaterThan(86_400);
    expect(sample(text, series.backlog)).toBe(0);
    expect(text).toMatch(/^synchronizer_events_total\{type="nova\.instance",action="create"\} 1$/m);
    // The broker URLs hold credentials: never in a label or anywhere else.
    const password = new URL(url).password;
    if (password) expect(text).not.toContain(password);
    expect(text).not.toContain(new URL(url).host);
  });
});
