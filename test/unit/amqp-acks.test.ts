import fc from 'fast-check';
import type { ConsumeMessage } from 'amqplib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AckBatcher, type Tracked, ackBatch } from '../../src/amqp.js';

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
        fc.record({ delayMs: fc.constantFrom(0, 10), maxBatch: fc.integer({ min: 1, max: 70 }) }),
        ([order, oks, flushes], batching) => {
          const broker = new BrokerChannel();
          const batcher = new AckBatcher(broker, batching);
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

  describe('held acks (delayMs)', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    /** `n` deliveries tracked and settled ok, in order, in one synchronous run. */
    function settled(batcher: AckBatcher, broker: BrokerChannel, n: number, from = 1): void {
      for (let tag = from; tag < from + n; tag++) {
        broker.outstanding.add(tag);
        const t = batcher.track(message(tag));
        broker.settled.add(tag);
        batcher.ack(t);
      }
    }

    it('one frame for the settles of several runs within the delay, sent when it ends', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const broker = new BrokerChannel();
      const batcher = new AckBatcher(broker, { delayMs: 10, maxBatch: 100 });
      settled(batcher, broker, 3);
      await Promise.resolve();
      vi.advanceTimersByTime(4);
      settled(batcher, broker, 3, 4);
      await Promise.resolve();
      expect(broker.frames).toBe(0);
      vi.advanceTimersByTime(5);
      expect(broker.frames).toBe(0);
      vi.advanceTimersByTime(1);
      expect(broker.frames).toBe(1);
      expect(broker.outstanding.size).toBe(0);
      expect(broker.violations).toEqual([]);
    });

    it('maxBatch acks waiting go at once, in a microtask, without waiting for the delay', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const broker = new BrokerChannel();
      const batcher = new AckBatcher(broker, { delayMs: 10, maxBatch: 5 });
      settled(batcher, broker, 4);
      await Promise.resolve();
      expect(broker.frames).toBe(0);
      settled(batcher, broker, 1, 5);
      await Promise.resolve();
      expect(broker.frames).toBe(1);
      expect(broker.outstanding.size).toBe(0);
      // The timer of the first four found nothing left to send.
      vi.advanceTimersByTime(10);
      expect(broker.frames).toBe(1);
      // The count starts over after a flush: four more wait for the delay again.
      settled(batcher, broker, 4, 6);
      await Promise.resolve();
      expect(broker.frames).toBe(1);
      vi.advanceTimersByTime(10);
      expect(broker.frames).toBe(2);
    });

    it('an explicit flush (a graceful stop) sends what waits at once; a closed batcher sends nothing', () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const broker = new BrokerChannel();
      const batcher = new AckBatcher(broker, { delayMs: 10, maxBatch: 100 });
      settled(batcher, broker, 3);
      batcher.flush();
      expect(broker.frames).toBe(1);
      settled(batcher, broker, 2, 4);
      batcher.close();
      vi.advanceTimersByTime(20);
      expect(broker.frames).toBe(1);
      expect([...broker.outstanding]).toEqual([4, 5]);
    });
  });

  it('holds at most a quarter of the prefetch window, and a few reads at most', () => {
    expect([1, 3, 4, 8, 100, 256, 257, 1000, 100_000].map(ackBatch)).toEqual([1, 1, 1, 2, 25, 64, 64, 64, 64]);
  });
});
