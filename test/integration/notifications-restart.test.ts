import { randomUUID } from 'node:crypto';
import { asyncScheduler } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import type { EntityEvent } from '../../src/model.js';
import { OptionReader } from '../../src/options.js';
import type { Source } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { createNotificationSource, readNotificationOptions } from '../../sources/openstack/notifications.js';
import { novaSample, osloBody, osloTimestamp } from '../support/nova-samples.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { RabbitNode } from '../support/rabbitmq.js';
import { sleep, waitFor } from '../support/wait.js';

/** Its own node: restarting the run's shared broker would disturb the other suites. */
let node: RabbitNode;

beforeAll(async () => {
  node = await RabbitNode.start({ name: 'restart' });
}, 90_000);

afterAll(async () => {
  await node?.dispose();
}, 60_000);

describe('openstack.notifications across a broker restart', () => {
  it('emits every message of a stream interrupted by a restart, acking none before its event, none twice', async () => {
    const N = 400;
    const exchange = 'nova';
    const template = novaSample('instance-update.json');
    const ids = Array.from({ length: N }, () => randomUUID());
    const body = (i: number): Buffer => {
      const payload = structuredClone(template.payload) as { 'nova_object.data': Record<string, unknown> };
      payload['nova_object.data'].uuid = ids[i];
      payload['nova_object.data'].display_name = `vm-${i}`;
      return osloBody({ ...template, payload }, { messageId: `m-${i}`, timestamp: osloTimestamp(new Date()) });
    };

    const options = readNotificationOptions(
      new OptionReader(
        { transportUrl: node.transportUrl, exchanges: [exchange], topics: ['versioned_notifications'], queue: 'synchronizer', prefetch: 20, reconnectDelay: '200ms', maxReconnectDelay: '1s' },
        'sources[0]',
      ),
    );
    const emitted = new Set<string>();
    const events: EntityEvent[] = [];
    const ackedBeforeEmit: string[] = [];
    let redelivered = 0;
    const source = createNotificationSource(options, { name: 'bus', log: createLogger('silent'), scheduler: asyncScheduler }, {
      onSettled: ({ messageId, outcome, redelivered: again }) => {
        if (again) redelivered += 1;
        const i = Number(messageId?.slice(2));
        if (outcome.ok && !emitted.has(ids[i]!)) ackedBeforeEmit.push(messageId ?? '?');
      },
    });
    const sync = createSynchronizer({ sources: [source as Source<unknown>] });
    let ups = 0;
    let restarting = false;
    /** Events emitted when the source saw the broker go away. */
    let eventsWhenDown: number | undefined;
    sync.health$.subscribe((h) => {
      if (h.bus?.status === 'up') ups += 1;
      if (restarting && h.bus?.status === 'down') eventsWhenDown ??= events.length;
    });
    sync.entity$.subscribe((e) => {
      events.push(e);
      emitted.add(e.entity.id);
      // A slow consumer: the stream is still being worked through when the broker goes down.
      const until = Date.now() + 10;
      while (Date.now() < until);
    });
    sync.start();
    await waitFor('the source to be up', () => sync.health().bus?.status === 'up', 30_000);

    // First half at once (a backlog the slow consumer is still working through), then the
    // broker restarts, then the second half as a paced stream.
    let publisher: OsloPublisher | undefined = await OsloPublisher.connect(node.url);
    await publisher.declare(exchange, 'versioned_notifications.info');
    for (let i = 0; i < N / 2; i++) publisher.publishNoWait(exchange, 'versioned_notifications.info', body(i));
    await publisher.flush();
    await waitFor('the consumer to be under way', () => events.length >= 20, 30_000);
    const eventsAtRestart = events.length;
    await publisher.close();
    publisher = undefined;
    const upsBefore = ups;
    restarting = true;
    await node.restart();
    // The non-durable exchange (oslo's default) and its bindings died with the broker: our
    // durable queue kept its persistent messages, and receives again once the source rebound it.
    await waitFor('the source to be up again', () => ups > upsBefore && sync.health().bus?.status === 'up', 30_000);
    for (let i = N / 2; i < N; i++) {
      for (;;) {
        try {
          publisher ??= await OsloPublisher.connect(node.url);
          await publisher.publish(exchange, 'versioned_notifications.info', body(i));
          break;
        } catch {
          await publisher?.close();
          publisher = undefined;
          await sleep(100);
        }
      }
      await sleep(2);
    }
    await waitFor(`all ${N} entities`, () => emitted.size === N, 60_000);
    await sleep(300);
    sync.stop();
    await publisher?.close();

    expect(eventsAtRestart).toBeGreaterThan(0);
    // The broker went down in the middle of the backlog: read when the source saw it go, not
    // when the restart was asked for (the node takes a while to stop).
    expect(eventsWhenDown).toBeDefined();
    expect(eventsWhenDown).toBeLessThan(N / 2);
    expect(ids.every((id) => emitted.has(id))).toBe(true);
    expect(events).toHaveLength(N); // each entity once: redeliveries made no second event
    expect(events.every((e) => e.action === 'create' && e.origin === 'notification')).toBe(true);
    expect(ackedBeforeEmit).toEqual([]);
    expect(source.stats.rejected).toBe(0);
    // Nothing left unacked in our (durable) queue.
    const check = await OsloPublisher.connect(node.url);
    expect((await check.raw.checkQueue('synchronizer')).messageCount).toBe(0);
    await check.close();
    console.info(`restart asked after ${eventsAtRestart} of ${N} events, broker gone after ${eventsWhenDown}; ${redelivered} redelivered`);
  }, 120_000);
});
