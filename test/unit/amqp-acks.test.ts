import fc from 'fast-check';
import type { ConsumeMessage } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { AckBatcher, type Tracked } from '../../src/amqp.js';

/** The broker's view of one channel: outstanding tags, and what each ack/reject removes. */
class BrokerChannel {
  readonly outstanding = new Set<number>();
  readonly settled = new Set<number>();
  readonly violations: number[] = [];
  frames = 0;

  private remove(tag: number): void {
    if (!this.settled.has(tag)) this.violations.push(tag);
    this.outstanding.delete(tag);
  }

  ack(message: ConsumeMessage, allUpTo = false): void {
    this.frames += 1;
    const tag = message.fields.deliveryTag;
    if (!this.outstanding.has(tag)) throw new Error(`PRECONDITION_FAILED - unknown delivery tag ${tag}`);
    if (allUpTo) for (const t of [...this.outstanding]) if (t <= tag) this.remove(t);
    this.remove(tag);
  }

  reject(message: ConsumeMessage): void {
    this.frames += 1;
    const tag = message.fields.deliveryTag;
    if (!this.outstanding.has(tag)) throw new Error(`PRECONDITION_FAILED - unknown delivery tag ${tag}`);
    this.remove(tag);
  }
}

const message = (tag: number): ConsumeMessage => ({ fields: { deliveryTag: tag } }) as unknown as ConsumeMessage;

describe('AckBatcher', () => {
  it('never acks a delivery before it is settled, whatever the settle order; acks every one in the end', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }).chain((n) =>
          fc.tuple(fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }), fc.array(fc.boolean(), { minLength: n, maxLength: n }), fc.array(fc.boolean(), { minLength: n, maxLength: n })),
        ),
        ([order, oks, flushes]) => {
          const broker = new BrokerChannel();
          const batcher = new AckBatcher(broker);
          const tracked: Tracked[] = order.map((_, i) => {
            broker.outstanding.add(i + 1);
            return batcher.track(message(i + 1));
          });
          order.forEach((i, step) => {
            broker.settled.add(i + 1);
            if (oks[i]) batcher.ack(tracked[i]!);
            else batcher.reject(tracked[i]!);
            if (flushes[step]) batcher.flush();
          });
          batcher.flush();
          expect(broker.violations).toEqual([]);
          expect([...broker.outstanding]).toEqual([]);
        },
      ),
    );
  });

  it('settled in order, a whole batch is one ack frame', () => {
    const broker = new BrokerChannel();
    const batcher = new AckBatcher(broker);
    const tracked = Array.from({ length: 100 }, (_, i) => {
      broker.outstanding.add(i + 1);
      return batcher.track(message(i + 1));
    });
    for (const t of tracked) {
      broker.settled.add(t.message.fields.deliveryTag);
      batcher.ack(t);
    }
    batcher.flush();
    expect(broker.frames).toBe(1);
    expect(broker.outstanding.size).toBe(0);
  });

  it('an unsettled delivery holds back only itself', () => {
    const broker = new BrokerChannel();
    const batcher = new AckBatcher(broker);
    const tracked = [1, 2, 3].map((tag) => {
      broker.outstanding.add(tag);
      return batcher.track(message(tag));
    });
    broker.settled.add(2).add(3);
    batcher.ack(tracked[1]!);
    batcher.ack(tracked[2]!);
    batcher.flush();
    expect([...broker.outstanding]).toEqual([1]);
    expect(broker.violations).toEqual([]);
  });

  it('sends the ack frame before the event loop turns (a microtask), one frame for a synchronous run of settles', async () => {
    // amqplib writes the frame in a setImmediate of its own; a flush that waited for one more
    // turn would hold the prefetch window through a whole snapshot slice (docs/scale.md).
    const broker = new BrokerChannel();
    const batcher = new AckBatcher(broker);
    const tracked = Array.from({ length: 50 }, (_, i) => {
      broker.outstanding.add(i + 1);
      return batcher.track(message(i + 1));
    });
    for (const t of tracked) {
      broker.settled.add(t.message.fields.deliveryTag);
      batcher.ack(t);
    }
    expect(broker.frames).toBe(0);
    await Promise.resolve();
    expect(broker.frames).toBe(1);
    expect(broker.outstanding.size).toBe(0);
  });
});
