/**
 * `amqp` benchmark, against a private RabbitMQ node it starts itself:
 * 1. Throughput: N versioned `instance.update` notifications (the resolved upstream Nova sample,
 *    as oslo's messagingv2 driver sends it) pre-published once to exchange `nova`, routed to two
 *    queues. The synchronizer's pipeline (notification source → normalizeEntity → baseline →
 *    entity$, acks after emission) drains one; a bare amqplib consumer (consume + ack, nothing
 *    else) drains the other, with the same prefetch, in the same run.
 * 2. Latency: the pipeline consuming live while notifications are published at a paced
 *    1,000 msg/s; publish-to-emit time of each, p50 and p99.
 *
 * AMQP_BENCH_N overrides N (default 100,000); AMQP_BENCH_PREFETCH the prefetch (default 1,000);
 * AMQP_BENCH_DEBUG=1 prints each drain's time and Node CPU per message to stderr, and adds a
 * third drain (bare consumer + the source's decodeNotification) to show what the format costs.
 * `cpuUsPerMsg` and `bareCpuUsPerMsg`: the main thread's time on a core per message during each
 * drain (/proc/thread-self/schedstat; the collector's helper threads not counted).
 * AMQP_BENCH_PROFILE=FILE writes a CPU profile (.cpuprofile, 200 µs samples) of the pipeline's drain.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import amqp from 'amqplib';
import { asyncScheduler } from 'rxjs';
import { createLogger } from '../../src/log.js';
import { OptionReader } from '../../src/options.js';
import type { Source } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { createNotificationSource, decodeNotification, readNotificationOptions } from '../../sources/openstack/notifications.js';
import { novaSample, osloBody, osloTimestamp } from '../support/nova-samples.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { RABBITMQ_SERVER, RabbitNode } from '../support/rabbitmq.js';
import type { Bench, BenchRow } from './run.js';
import { sleep, waitFor } from '../support/wait.js';

const N = Number(process.env.AMQP_BENCH_N ?? 100_000);
const PREFETCH = Number(process.env.AMQP_BENCH_PREFETCH ?? 1_000);
const INSTANCES = 10_000;
const LATENCY_RATE = 1_000;
const LATENCY_SECONDS = 10;
const EXCHANGE = 'nova';
const ROUTING_KEY = 'versioned_notifications.info';

const template = novaSample('instance-update.json');

/** Message i: instance i mod 10,000; the name and task state change, so every message is an event. */
export function body(i: number, stamp: string, name = `vm-${i}`): Buffer {
  const payload = structuredClone(template.payload) as { 'nova_object.data': Record<string, unknown> };
  const data = payload['nova_object.data'];
  data.uuid = `178b0921-8f85-4257-88b6-${(i % INSTANCES).toString(16).padStart(12, '0')}`;
  data.display_name = name;
  data.task_state = i % 2 === 0 ? null : 'powering-off';
  return osloBody({ ...template, payload }, { messageId: `m-${i}`, timestamp: stamp });
}

/**
 * {@link body}, made from two bodies rendered once (one per task state) with tokens where the
 * values go: the same bytes for a thousandth of the work (a structured clone and two
 * JSON.stringify per message took a quarter of a core at 1,000/s, on the cores measured).
 * Checks itself against `body` before it is used.
 */
export function bodyMaker(): (i: number, stamp: string, name: string) => Buffer {
  const tokens = { uuid: 'QQUUIDQQQQQQ', name: 'QQNAMEQQ', id: 'QQMSGIDQQ', stamp: 'QQSTAMPQQ' };
  const parts = [0, 1].map((odd) => {
    const payload = structuredClone(template.payload) as { 'nova_object.data': Record<string, unknown> };
    const data = payload['nova_object.data'];
    data.uuid = `178b0921-8f85-4257-88b6-${tokens.uuid}`;
    data.display_name = tokens.name;
    data.task_state = odd === 0 ? null : 'powering-off';
    const text = osloBody({ ...template, payload }, { messageId: tokens.id, timestamp: tokens.stamp }).toString('utf8');
    // In the order they appear; the message id twice (message_id, then _unique_id without dashes).
    return text.split(new RegExp(`(${Object.values(tokens).join('|')})`));
  });
  const make = (i: number, stamp: string, name: string): Buffer => {
    let id = 0;
    const values: Record<string, string> = {
      [tokens.uuid]: (i % INSTANCES).toString(16).padStart(12, '0'),
      [tokens.name]: name,
      [tokens.stamp]: stamp,
    };
    const pieces = parts[i % 2]!.map((piece, k) => {
      if (k % 2 === 0) return piece;
      if (piece === tokens.id) return id++ === 0 ? `m-${i}` : `m${i}`;
      return values[piece]!;
    });
    return Buffer.from(pieces.join(''));
  };
  for (const i of [0, 1, 12_345]) {
    const stamp = '2026-12-02 01:02:03.456789';
    if (!make(i, stamp, `iso-${i}`).equals(body(i, stamp, `iso-${i}`))) throw new Error(`bodyMaker: message ${i} differs from body()`);
  }
  return make;
}

/** This thread's time on a core so far, µs (/proc/thread-self/schedstat; NaN where there is none). */
function threadRunUs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1000;
  } catch {
    return NaN;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A synchronizer with one notification source on `queue` of `node`. */
function pipeline(node: RabbitNode, queue: string) {
  const options = readNotificationOptions(
    new OptionReader({ transportUrl: node.transportUrl, exchanges: [EXCHANGE], topics: ['versioned_notifications'], queue, prefetch: PREFETCH }, 'bench'),
  );
  const source = createNotificationSource(options, { name: 'bus', log: createLogger('warn'), scheduler: asyncScheduler });
  const sync = createSynchronizer({ sources: [source as Source<unknown>], tombstoneMs: 60_000 });
  return { source, sync };
}

/** Declares `queue` as the source declares its own (durable), bound like it. */
async function declareQueue(channel: amqp.Channel, queue: string): Promise<void> {
  await channel.assertQueue(queue, { durable: true, autoDelete: false, exclusive: false });
  await channel.bindQueue(queue, EXCHANGE, ROUTING_KEY);
}

async function prepublish(publisher: OsloPublisher): Promise<void> {
  const stamp = osloTimestamp(new Date(Date.now() - 60_000));
  for (let i = 0; i < N; i++) {
    if (!publisher.publishNoWait(EXCHANGE, ROUTING_KEY, body(i, stamp))) await new Promise((r) => publisher.raw.once('drain', r));
    if (i % 5_000 === 4_999) await publisher.flush();
  }
  await publisher.flush();
}

async function drainPipeline(node: RabbitNode, queue: string): Promise<{ rate: number; cpuUsPerMsg: number }> {
  const { source, sync } = pipeline(node, queue);
  let events = 0;
  sync.entity$.subscribe(() => (events += 1));
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const profile = process.env.AMQP_BENCH_PROFILE ? new Session() : undefined;
  if (profile) {
    profile.connect();
    await profile.post('Profiler.enable');
    await profile.post('Profiler.setSamplingInterval', { interval: 200 });
    await profile.post('Profiler.start');
  }
  const run0 = threadRunUs();
  sync.start();
  await waitFor('the pipeline to drain', () => source.stats.acked >= N, { timeoutMs: 600_000, everyMs: 5 });
  if (profile) {
    writeFileSync(process.env.AMQP_BENCH_PROFILE!, JSON.stringify((await profile.post('Profiler.stop')).profile));
    profile.disconnect();
  }
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuUsPerMsg = (threadRunUs() - run0) / N;
  if (process.env.AMQP_BENCH_DEBUG) process.stderr.write(`pipeline: ${elapsed.toFixed(0)} ms, ${Math.round((N / elapsed) * 1000)} msg/s, node cpu ${((cpu.user + cpu.system) / N).toFixed(1)} µs/msg\n`);
  if (events !== N) throw new Error(`amqp bench: expected ${N} events, got ${events}`);
  await sleep(50); // the last ack batch
  sync.stop();
  return { rate: (N / elapsed) * 1000, cpuUsPerMsg };
}

/** The bare consumer; with `decode`, it also decodes each body as the source does (debug figure). */
async function drainBare(url: string, queue: string, decode = false): Promise<{ rate: number; cpuUsPerMsg: number }> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.prefetch(PREFETCH);
  let count = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => (done = r));
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const run0 = threadRunUs();
  await channel.consume(queue, (message) => {
    if (message === null) return;
    if (decode) decodeNotification(message.content);
    channel.ack(message);
    if (++count === N) done();
  });
  await finished;
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuUsPerMsg = (threadRunUs() - run0) / N;
  if (process.env.AMQP_BENCH_DEBUG) process.stderr.write(`bare${decode ? '+decode' : ''}: ${elapsed.toFixed(0)} ms, ${Math.round((N / elapsed) * 1000)} msg/s, node cpu ${((cpu.user + cpu.system) / N).toFixed(1)} µs/msg\n`);
  await connection.close();
  return { rate: (N / elapsed) * 1000, cpuUsPerMsg };
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run the benchmarks with node --expose-gc (npm run bench does)');
  gc();
}

async function latency(node: RabbitNode, publisher: OsloPublisher): Promise<{ p50: number; p99: number; count: number }> {
  const queue = 'bench-latency';
  const { sync } = pipeline(node, queue);
  const total = LATENCY_RATE * LATENCY_SECONDS;
  const sentAt = new Float64Array(total);
  const latencies: number[] = [];
  sync.entity$.subscribe((e) => {
    const i = Number(e.entity.name?.slice(4));
    if (e.entity.name?.startsWith('lat-') && sentAt[i]! > 0) latencies.push(performance.now() - sentAt[i]!);
  });
  sync.start();
  await waitFor('the latency source to be up', () => sync.health().bus?.status === 'up', { timeoutMs: 30_000, everyMs: 5 });
  const t0 = performance.now();
  let i = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * LATENCY_RATE) + 1);
    for (; i < due; i++) {
      const b = body(i, osloTimestamp(new Date()), `lat-${i}`);
      sentAt[i] = performance.now();
      publisher.publishNoWait(EXCHANGE, ROUTING_KEY, b);
    }
    await sleep(1);
  }
  await waitFor('every paced message to be emitted', () => latencies.length >= total, { timeoutMs: 60_000, everyMs: 5 });
  sync.stop();
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), count: latencies.length };
}

const bench: Bench = {
  name: 'amqp',
  title: `${N} versioned instance.update notifications drained through the pipeline (acks after emission) vs a bare amqplib consumer, prefetch ${PREFETCH}; publish-to-emit latency at ${LATENCY_RATE} msg/s`,
  needs: `RabbitMQ (Debian package rabbitmq-server: ${RABBITMQ_SERVER}), started privately on loopback`,
  missing: () => (existsSync(RABBITMQ_SERVER) ? undefined : `${RABBITMQ_SERVER} (apt-get install rabbitmq-server; scripts/test.sh installs it)`),
  async run(): Promise<BenchRow[]> {
    const node = await RabbitNode.start({ name: 'bench' });
    try {
      const publisher = await OsloPublisher.connect(node.url);
      await publisher.raw.assertExchange(EXCHANGE, 'topic', { durable: false, autoDelete: false });
      await declareQueue(publisher.raw, 'bench-pipeline');
      await declareQueue(publisher.raw, 'bench-bare');
      const debug = Boolean(process.env.AMQP_BENCH_DEBUG);
      // Debug only: how much of the gap is the oslo format's double JSON decode alone.
      if (debug) await declareQueue(publisher.raw, 'bench-bare-decode');
      await prepublish(publisher);
      // Pipeline first, while the bare queue still holds its copies: any cost of that is ours.
      const pipelineDrain = await drainPipeline(node, 'bench-pipeline');
      const bareDrain = await drainBare(node.url, 'bench-bare');
      if (debug) await drainBare(node.url, 'bench-bare-decode', true);
      await publisher.raw.deleteQueue('bench-pipeline');
      await publisher.raw.deleteQueue('bench-bare');
      if (debug) await publisher.raw.deleteQueue('bench-bare-decode');
      // The drains leave a 100,000-entity baseline and 100,000 messages' worth of garbage: collect
      // them first, or their major GC pause lands in the latency window, which is not about them.
      collectGarbage();
      const { p50, p99 } = await latency(node, publisher);
      await publisher.close();
      return [
        {
          bench: 'amqp',
          n: N,
          msgsPerSec: Math.round(pipelineDrain.rate),
          bareMsgsPerSec: Math.round(bareDrain.rate),
          cpuUsPerMsg: Number(pipelineDrain.cpuUsPerMsg.toFixed(1)),
          bareCpuUsPerMsg: Number(bareDrain.cpuUsPerMsg.toFixed(1)),
          p50Ms: Number(p50.toFixed(2)),
          p99Ms: Number(p99.toFixed(2)),
        },
      ];
    } finally {
      await node.dispose();
    }
  },
};

export default bench;
