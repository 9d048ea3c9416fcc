/**
 * docs/sources/notifications.md tells operators of RabbitMQ 3.10–3.12 to give the synchronizer's
 * durable queue classic queue storage version 2 with a policy (the broker writes every
 * notification to disk for it, and version 1 doubled the broker's part of the delay). Declaring
 * the queue with `x-queue-version` instead would be refused for an existing queue
 * (PRECONDITION_FAILED, inequivalent arg). This checks, on the real broker, what the docs promise:
 * the policy converts the queue in place with what it holds, and the source still declares it and
 * consumes it.
 */
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
import { waitFor } from '../support/wait.js';

/**
 * Its own node: a policy is the broker's, and would apply to queues of other suites. Queues start
 * at version 1 on it, as on RabbitMQ 3.10–3.12 (Debian's is 3.10), whatever the broker's default.
 */
let node: RabbitNode;

beforeAll(async () => {
  node = await RabbitNode.start({ name: 'qversion', config: ['classic_queue.default_version = 1'] });
}, 90_000);

afterAll(async () => {
  await node?.dispose();
}, 60_000);

/** The storage version of a classic queue, as the broker reports it (`backing_queue_status`). */
async function queueVersion(queue: string): Promise<number> {
  const out = await node.ctl('eval', `rabbit_amqqueue:info(element(2, rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, <<"${queue}">>))), [backing_queue_status]).`);
  const m = /\{version,(\d+)\}/.exec(out);
  if (!m) throw new Error(`no version in the queue's status: ${out}`);
  return Number(m[1]);
}

describe('openstack.notifications on a queue given version 2 by policy', () => {
  it('keeps what the queue held and consumes it, the declaration still equivalent', async () => {
    const exchange = 'nova';
    const queue = 'synchronizer';
    const template = novaSample('instance-update.json');
    const ids = Array.from({ length: 5 }, () => randomUUID());
    const options = readNotificationOptions(
      new OptionReader({ transportUrl: node.transportUrl, exchanges: [exchange], topics: ['versioned_notifications'], queue, reconnectDelay: '200ms' }, 'sources[0]'),
    );
    const run = () => {
      const source = createNotificationSource(options, { name: 'bus', log: createLogger('silent'), scheduler: asyncScheduler });
      const sync = createSynchronizer({ sources: [source as Source<unknown>] });
      const events: EntityEvent[] = [];
      sync.entity$.subscribe((e) => events.push(e));
      sync.start();
      return { sync, events };
    };

    // The source declares its durable queue (version 1, the broker's default here) and binds it.
    const first = run();
    await waitFor('the source to be up', () => first.sync.health().bus?.status === 'up', 30_000);
    first.sync.stop();
    const before = await queueVersion(queue);

    // Notifications queue up while no synchronizer runs.
    const publisher = await OsloPublisher.connect(node.url);
    for (const [i, id] of ids.entries()) {
      const payload = structuredClone(template.payload) as { 'nova_object.data': Record<string, unknown> };
      payload['nova_object.data'].uuid = id;
      publisher.publishNoWait(exchange, 'versioned_notifications.info', osloBody({ ...template, payload }, { messageId: `m-${i}`, timestamp: osloTimestamp(new Date()) }));
    }
    await publisher.flush();
    await publisher.close();

    // The command in the docs.
    await node.ctl('set_policy', 'synchronizer-cqv2', '^synchronizer$', '{"queue-version":2}', '--apply-to', 'queues');
    await waitFor('the queue to be version 2', async () => (await queueVersion(queue)) === 2, 20_000);

    const second = run();
    await waitFor('every queued notification emitted', () => new Set(second.events.map((e) => e.entity.id)).size === ids.length, 30_000);
    expect(second.sync.health().bus?.status).toBe('up');
    expect(new Set(second.events.map((e) => e.entity.id))).toEqual(new Set(ids));
    second.sync.stop();
    expect(before).toBe(1);
  }, 120_000);
});
