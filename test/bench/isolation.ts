/**
 * `isolation` benchmark: does a big poll stall the push path? Notifications (versioned
 * instance.update) are published at 1,000/s through a private RabbitMQ node and consumed by the
 * synchronizer's notification source; the time from publish to emission on entity$ is measured
 * 1. idle: the notification source alone;
 * 2. during snapshots: the same, while a Nova source polls N servers (pages of 1000) from a local
 *    OpenStack back to back (interval 1 ms), 1 % of them changing at the start of each poll; the window opens
 *    once the first (all-create) snapshot went through, so it measures the steady state, and
 *    closes once SNAPSHOTS more snapshots were diffed in it (and at least SECONDS passed).
 * The OpenStack server and the publisher run in worker threads: their work is not on the event
 * loop measured, and a stall of that loop cannot delay a publish and so hide itself. Also the
 * event loop's longest stall in each window (perf_hooks.monitorEventLoopDelay, 1 ms resolution)
 * and, separately, in the window of the first snapshot.
 *
 * ISOLATION_BENCH_N overrides N (default 100,000); ISOLATION_BENCH_SECONDS the idle window and the
 * least of the other (default 20); ISOLATION_BENCH_SNAPSHOTS the snapshots in it (default 3).
 * ISOLATION_BENCH_DEBUG=1 prints each snapshot's time to stderr. ISOLATION_BENCH_PROFILE=FILE writes a
 * CPU profile (.cpuprofile, 200 µs samples) of this thread during the polls' window to FILE.
 * ISOLATION_BENCH_HEAP_PROFILE=FILE writes a sampling heap profile (.heapprofile) of what was
 * allocated in that window and outlived the young generation (kept until it was promoted, whether
 * a major collection freed it later or not): where the bytes a poll promotes come from.
 * ISOLATION_BENCH_SLICE_MS sets the sliced work's budget per turn (setSliceMs; default SLICE_MS, 2).
 * ISOLATION_BENCH_PROFILE_IDLE=FILE writes a CPU profile of this thread during the idle window (the
 * notification path alone). `idleCpuUsPerMsg`: this thread's time on a core in the idle window
 * (/proc/thread-self/schedstat) per notification, i.e. what one notification costs the main thread.
 * ISOLATION_BENCH_BARE=1 (or `durable`) adds a consumer that does nothing but note and ack, beside
 * the synchronizer's (isolation-worker.ts `bare`): `…BareP99Ms` is the delivery the box gives any
 * consumer, `…OverBareP99Ms` what the synchronizer adds to it (docs/scale.md, "Session 15").
 * `mainCpuMsPerSnapshot`: this thread's time on a core in the polls' window per snapshot, less
 * what its notifications cost at the idle window's rate: the main thread's part of a poll.
 * `parseWorkerCpuMsPerSnapshot`: the parse worker's time on a core in the polls' window per
 * snapshot (it reads the pages, src/parseWorker.ts); `keptByBytesPerSnapshot`: the elements it kept
 * by their bytes, unparsed, per snapshot.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { type IntervalHistogram, PerformanceObserver, constants, monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { asyncScheduler } from 'rxjs';
import { createSources, parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { parseWorkerMemory } from '../../src/parseOffThread.js';
import { setSliceMs } from '../../src/pause.js';
import { OptionReader } from '../../src/options.js';
import type { Observation } from '../../src/model.js';
import type { Source } from '../../src/source.js';
import { type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { createNotificationSource, readNotificationOptions } from '../../sources/openstack/notifications.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { RABBITMQ_SERVER, RabbitNode } from '../support/rabbitmq.js';
import { waitFor } from '../support/wait.js';
import { type IsolationWorkerData, epochNow } from './isolation-worker.js';
import type { Bench, BenchRow } from './run.js';

const N = Number(process.env.ISOLATION_BENCH_N ?? 100_000);
const SECONDS = Number(process.env.ISOLATION_BENCH_SECONDS ?? 20);
const SNAPSHOTS = Number(process.env.ISOLATION_BENCH_SNAPSHOTS ?? 3);
/** The publisher's bound, whatever happens: a window never runs longer. */
const MAX_SECONDS = 900;
/**
 * The broker's classic queue storage: 2, RabbitMQ's only one from 4.0 and its default from 3.13
 * (what a cloud runs today); Debian's 3.10 defaults to 1. The synchronizer's queue is durable and
 * oslo publishes persistent messages, so every notification is written to disk by the broker
 * first: with version 1 the broker's part of the delay was several times the synchronizer's
 * (docs/scale.md, "Where the delay was"). ISOLATION_BENCH_QUEUE_VERSION=1 measures with the old one.
 */
const QUEUE_VERSION = Number(process.env.ISOLATION_BENCH_QUEUE_VERSION ?? 2);
const RATE = 1_000;
/**
 * ISOLATION_BENCH_BARE=1: a bare consumer beside the synchronizer's, in each window (`…BareP99Ms`;
 * isolation-worker.ts), on a transient queue; `durable`: on a durable one, as the synchronizer's.
 */
const BARE = process.env.ISOLATION_BENCH_BARE === '1' || process.env.ISOLATION_BENCH_BARE === 'durable';
const EXCHANGE = 'nova';
const ROUTING_KEY = 'versioned_notifications.info';
const PREFIX = 'iso-';

function worker<T>(data: IsolationWorkerData): { worker: Worker; first: Promise<T> } {
  const w = new Worker(new URL('./isolation-worker.js', import.meta.url), { workerData: data });
  const first = new Promise<T>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  return { worker: w, first };
}

function notificationSource(node: RabbitNode, queue: string): Source<unknown> {
  const options = readNotificationOptions(new OptionReader({ transportUrl: node.transportUrl, exchanges: [EXCHANGE], topics: ['versioned_notifications'], queue }, 'bench'));
  return createNotificationSource(options, { name: 'bus', log: createLogger('warn'), scheduler: asyncScheduler }) as Source<unknown>;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Window {
  p50: number;
  p99: number;
  max: number;
  /** Publish to the delivery reaching the process (the publisher, the broker, the network), p99. */
  deliveredP99: number;
  /**
   * Publish to delivery less the time this thread's event loop was blocked meanwhile (a delivery
   * waits in the socket while it is): what the publisher, the broker and the network took at
   * least, p99.
   */
  outsideP99: number;
  /** The synchronizer's own part: the delivery reaching it to the event on entity$ (`receivedAt` to emission). */
  ownP99: number;
  ownMax: number;
  maxStallMs: number;
  /** This thread's time on a core from the first publish to the last emission, µs per notification. */
  cpuUsPerMsg: number;
  /** The same in all, ms. */
  cpuMs: number;
  /** Notifications published in the window. */
  messages: number;
  /** With ISOLATION_BENCH_BARE: publish to delivery at a consumer that does nothing else (isolation-worker.ts `bare`), p99. */
  bareP99?: number;
  /**
   * With ISOLATION_BENCH_BARE: each notification's emission less its delivery to the bare
   * consumer, p99. Both had it from the same broker at the same moment, so what the box did to
   * both cancels out: what the synchronizer adds over a consumer that does nothing.
   */
  overBareP99?: number;
}

/** CPU seconds (user + system) a process used so far, from /proc. */
function processCpu(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/**
 * This thread's time on a core and its time runnable but waiting for one, ms so far
 * (/proc/thread-self/schedstat; NaN where there is none).
 */
function threadSched(): { run: number; wait: number } {
  try {
    const [run, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
    return { run: run! / 1e6, wait: wait! / 1e6 };
  } catch {
    return { run: NaN, wait: NaN };
  }
}

/**
 * With ISOLATION_BENCH_DEBUG: every 500 ms on stderr, what the window looked like: notifications
 * emitted, the queue's ready messages (a passive check on a channel of its own), the event loop's
 * longest delay, the longest minor and major GC pause, the longest gap between two 1 ms ticks
 * with this thread's run and wait time and the process's CPU in it, the CPU the broker and this
 * process used, this thread's time running and waiting for a core, and how busy the cloud
 * worker's loop was.
 */
async function traceWindow(node: RabbitNode, queue: string, cloud: Worker | undefined, emitted: () => number): Promise<() => Promise<void>> {
  const conn = await OsloPublisher.connect(node.url);
  const beamPid = Number(readFileSync(join(node.dir, 'rabbitmq.pid'), 'utf8').trim());
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  // The longest pause of each kind of collection: a stall is the collector's or the code's.
  let gcMax = { minor: 0, major: 0 };
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = ((e as { detail?: { kind?: number } }).detail?.kind ?? -1) === constants.NODE_PERFORMANCE_GC_MINOR ? 'minor' : 'major';
      gcMax[kind] = Math.max(gcMax[kind], e.duration);
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  // The longest gap between two 1 ms ticks, with what this thread did in it (/proc/thread-self/
  // schedstat: its time on a core, and its time runnable but waiting for one), and the CPU the
  // whole process used (all its threads, the cloud and publisher workers included). A gap this
  // thread spent running was a block of its own (code or a collection); one it spent waiting
  // was the machine's doing.
  let gap = { wall: 0, run: 0, wait: 0, cpu: 0 };
  let tick = { wall: performance.now(), cpu: process.cpuUsage(), sched: threadSched() };
  const ticker = setInterval(() => {
    const now = { wall: performance.now(), cpu: process.cpuUsage(), sched: threadSched() };
    const wall = now.wall - tick.wall;
    if (wall > gap.wall) {
      gap = { wall, run: now.sched.run - tick.sched.run, wait: now.sched.wait - tick.sched.wait, cpu: (now.cpu.user + now.cpu.system - tick.cpu.user - tick.cpu.system) / 1000 };
    }
    tick = now;
  }, 1);
  const t0 = performance.now();
  let last = { emitted: emitted(), beam: processCpu(beamPid), self: process.cpuUsage(), sched: threadSched(), elu: cloud?.performance.eventLoopUtilization() };
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void conn.raw.checkQueue(queue).then(
      (q) => {
        const now = { emitted: emitted(), beam: processCpu(beamPid), self: process.cpuUsage(), sched: threadSched(), elu: cloud?.performance.eventLoopUtilization() };
        const elu = cloud && last.elu && now.elu ? cloud.performance.eventLoopUtilization(now.elu, last.elu).utilization : NaN;
        const self = (now.self.user + now.self.system - last.self.user - last.self.system) / 1e6;
        process.stderr.write(
          `trace t=${((performance.now() - t0) / 1000).toFixed(1)}s emitted=${now.emitted - last.emitted} ready=${q.messageCount} loopMax=${(loop.max / 1e6).toFixed(0)}ms gcMinorMax=${gcMax.minor.toFixed(0)}ms gcMajorMax=${gcMax.major.toFixed(0)}ms longestGap=${gap.wall.toFixed(0)}ms/run${gap.run.toFixed(0)}/wait${gap.wait.toFixed(0)}/cpu${gap.cpu.toFixed(0)}ms beamCpu=${(now.beam - last.beam).toFixed(2)}s selfCpu=${self.toFixed(2)}s mainRun=${((now.sched.run - last.sched.run) / 1000).toFixed(2)}s mainWait=${((now.sched.wait - last.sched.wait) / 1000).toFixed(2)}s cloudElu=${elu.toFixed(2)}\n`,
        );
        loop.reset();
        gcMax = { minor: 0, major: 0 };
        gap = { wall: 0, run: 0, wait: 0, cpu: 0 };
        last = now;
        busy = false;
      },
      () => (busy = false),
    );
  }, 500);
  return async () => {
    clearInterval(timer);
    clearInterval(ticker);
    loop.disable();
    gc.disconnect();
    await conn.close();
  };
}

/**
 * When each notification of the open window reached the process (its observation's `receivedAt`),
 * by index; the syncs' `onObserved` fill it through {@link noteReceived}.
 */
let receivedAt: Float64Array | undefined;

function noteReceived(o: Observation): void {
  if (receivedAt === undefined || o.kind !== 'change' || o.receivedAt === undefined) return;
  const name = o.record.name;
  if (name === undefined || !name.startsWith(PREFIX)) return;
  const i = Number(name.slice(PREFIX.length));
  if (receivedAt[i] === 0) receivedAt[i] = o.receivedAt;
}

/**
 * When this thread's event loop was blocked: a 1 ms timer that fires more than 2 ms after the last
 * marks the time between as blocked. `blockedWithin(from, to)` is the blocked time in that span.
 */
function blockedSpans(): { stop(): void; blockedWithin(from: number, to: number): number } {
  const starts: number[] = [];
  const ends: number[] = [];
  let last = epochNow();
  const timer = setInterval(() => {
    const now = epochNow();
    if (now - last > 2) {
      starts.push(last + 1);
      ends.push(now);
    }
    last = now;
  }, 1);
  // before[k]: blocked time in the spans before span k.
  const before: number[] = [];
  /** Blocked time before `t`. */
  const upTo = (t: number): number => {
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    // Spans 0..lo-1 start before t; the last of them may still be open at t.
    if (lo === 0) return 0;
    return before[lo - 1]! + Math.min(t, ends[lo - 1]!) - starts[lo - 1]!;
  };
  return {
    stop() {
      clearInterval(timer);
      let sum = 0;
      for (let k = 0; k < starts.length; k++) {
        before.push(sum);
        sum += ends[k]! - starts[k]!;
      }
    },
    blockedWithin: (from, to) => Math.max(0, upTo(to) - upTo(from)),
  };
}

/** When the bare consumer had each of `total` notifications (then it is stopped). */
async function bareDelivery(bare: Worker, total: number): Promise<Float64Array> {
  const times = new Promise<Float64Array>((resolve, reject) => {
    bare.once('message', resolve);
    bare.once('error', reject);
  });
  // Every notification was emitted by now; the bare consumer had them as soon, or it lags: a
  // moment more, then whatever it has.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  bare.postMessage('stop');
  const received = await times;
  await bare.terminate();
  let missing = 0;
  for (let i = 0; i < total; i++) if (received[i] === 0) missing += 1;
  if (missing > 0) throw new Error(`isolation bench: the bare consumer did not receive ${missing} of ${total} notifications`);
  return received.subarray(0, total);
}

/** Publishes RATE/s from a worker until `done()`; each notification's publish-to-emit time. */
async function measure(node: RabbitNode, sync: Synchronizer, done: () => boolean, trace?: { queue: string; cloud?: Worker }): Promise<Window> {
  const emittedAt = new Float64Array(RATE * MAX_SECONDS);
  const received = new Float64Array(RATE * MAX_SECONDS);
  receivedAt = received;
  const spans = blockedSpans();
  let emitted = 0;
  const subscription = sync.entity$.subscribe((e) => {
    // The notification's own event only: the instances it names are not in the polled cloud, so
    // a later snapshot deletes them, and that delete carries the notification's name too.
    const name = e.entity.name;
    if (e.origin !== 'notification' || name === undefined || !name.startsWith(PREFIX)) return;
    const i = Number(name.slice(PREFIX.length));
    if (emittedAt[i] !== 0) return;
    emittedAt[i] = epochNow();
    emitted += 1;
  });
  const loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const bare = BARE ? worker<'up'>({ role: 'bare', url: node.url, exchange: EXCHANGE, routingKey: ROUTING_KEY, rate: RATE, maxSeconds: MAX_SECONDS, prefix: PREFIX, durable: process.env.ISOLATION_BENCH_BARE === 'durable' }) : undefined;
  await bare?.first;
  const { worker: publisher, first } = worker<Float64Array>({ role: 'publisher', url: node.url, exchange: EXCHANGE, routingKey: ROUTING_KEY, rate: RATE, maxSeconds: MAX_SECONDS, prefix: PREFIX });
  const started = performance.now();
  const run0 = threadSched().run;
  const stopTrace = process.env.ISOLATION_BENCH_DEBUG && trace ? await traceWindow(node, trace.queue, trace.cloud, () => emitted) : undefined;
  await waitFor('the window to close', () => performance.now() - started >= SECONDS * 1000 && done(), { timeoutMs: MAX_SECONDS * 1000, everyMs: 50 });
  publisher.postMessage('stop');
  const sentAt = await first;
  const total = sentAt.length;
  await publisher.terminate();
  await waitFor('every published notification to be emitted', () => emitted >= total, { timeoutMs: 120_000, everyMs: 5 });
  const cpuMs = threadSched().run - run0;
  const bareAt = bare === undefined ? undefined : await bareDelivery(bare.worker, sentAt.length);
  const cpuUsPerMsg = (cpuMs * 1000) / total;
  loop.disable();
  await stopTrace?.();
  subscription.unsubscribe();
  const latencies = new Float64Array(total);
  for (let i = 0; i < total; i++) latencies[i] = emittedAt[i]! - sentAt[i]!;
  latencies.sort();
  receivedAt = undefined;
  spans.stop();
  const delivered = new Float64Array(total);
  const outside = new Float64Array(total);
  const own = new Float64Array(total);
  for (let i = 0; i < total; i++) {
    if (received[i] === 0) throw new Error(`isolation bench: notification ${i} was emitted without its receive time`);
    delivered[i] = received[i]! - sentAt[i]!;
    outside[i] = delivered[i]! - spans.blockedWithin(sentAt[i]!, received[i]!);
    own[i] = emittedAt[i]! - received[i]!;
  }
  delivered.sort();
  outside.sort();
  own.sort();
  const bareDelivered = bareAt?.map((at, i) => at - sentAt[i]!).sort();
  const overBare = bareAt?.map((at, i) => emittedAt[i]! - at).sort();
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[total - 1]!,
    deliveredP99: percentile(delivered, 99),
    outsideP99: percentile(outside, 99),
    ownP99: percentile(own, 99),
    ownMax: own[total - 1]!,
    maxStallMs: loop.max / 1e6,
    cpuUsPerMsg,
    cpuMs,
    messages: total,
    ...(bareDelivered !== undefined && overBare !== undefined ? { bareP99: percentile(bareDelivered, 99), overBareP99: percentile(overBare, 99) } : {}),
  };
}

const round = (x: number): number => Number(x.toFixed(2));

/** With ISOLATION_BENCH_PROFILE: profiles this thread until the returned function writes the file. */
async function profile(file: string | undefined): Promise<() => Promise<void>> {
  if (!file) return async () => {};
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

/**
 * With ISOLATION_BENCH_HEAP_PROFILE: samples this thread's allocations until the returned function
 * writes the file. Samples of objects that die in a scavenge are dropped, those a major collection
 * frees are kept: the profile is what survived the young generation, by allocation site.
 */
async function heapProfile(file: string | undefined): Promise<() => Promise<void>> {
  if (!file) return async () => {};
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  // The two `include…` flags are V8's (Node 20's protocol types lack them).
  await session.post('HeapProfiler.startSampling', { samplingInterval: 16_384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false } as object);
  return async () => {
    // What is still young at the end would count as surviving: a scavenge first (with --expose-gc).
    (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc?.({ type: 'minor' });
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

const bench: Bench = {
  name: 'isolation',
  title: `publish-to-emit latency of notifications at ${RATE}/s through RabbitMQ, idle (${SECONDS} s) vs while ${SNAPSHOTS} ${N}-server Nova snapshots (1 % churn) are polled and diffed back to back`,
  needs: `RabbitMQ (Debian package rabbitmq-server: ${RABBITMQ_SERVER}), started privately on loopback`,
  missing: () => (existsSync(RABBITMQ_SERVER) ? undefined : `${RABBITMQ_SERVER} (apt-get install rabbitmq-server; scripts/test.sh installs it)`),
  async run(): Promise<BenchRow[]> {
    if (process.env.ISOLATION_BENCH_SLICE_MS) setSliceMs(Number(process.env.ISOLATION_BENCH_SLICE_MS));
    const node = await RabbitNode.start({ name: 'isolation', config: [`classic_queue.default_version = ${QUEUE_VERSION}`]});
    const { worker: cloud, first: cloudUp } = worker<{ url: string; auth: Record<string, string> }>({ role: 'openstack', servers: N });
    try {
      const os = await cloudUp;
      const setup = await OsloPublisher.connect(node.url);
      await setup.raw.assertExchange(EXCHANGE, 'topic', { durable: false, autoDelete: false });
      await setup.close();

      // 1. Idle.
      const idleSync = createSynchronizer({ sources: [notificationSource(node, 'iso-idle')], tombstoneMs: 60_000, onObserved: noteReceived });
      idleSync.start();
      await waitFor('the idle source to be up', () => idleSync.health().bus?.status === 'up', { timeoutMs: 30_000, everyMs: 5 });
      const stopIdleProfile = await profile(process.env.ISOLATION_BENCH_PROFILE_IDLE);
      const idle = await measure(node, idleSync, () => true, { queue: 'iso-idle' });
      await stopIdleProfile();
      idleSync.stop();
      // The idle window's queue is durable, and bound as the next window's is: left in place, every
      // notification of that window was routed to it too, written to disk and kept there with no
      // consumer, so the broker did twice the work (0.85–0.9 of a core against 0.45 idle) on the
      // cores measured. Until session 14 it was left (docs/scale.md, "The idle queue").
      const cleanup = await OsloPublisher.connect(node.url);
      await cleanup.raw.deleteQueue('iso-idle');
      await cleanup.close();

      // 2. During back-to-back snapshots.
      const config = await parseConfig(
        { sources: [{ name: 'nova', use: 'openstack.nova', types: ['nova.instance'], interval: '1ms', timeout: '10m', region: 'RegionOne', auth: os.auth }], sinks: [] },
        process.cwd(),
      );
      let last = performance.now();
      const sync = createSynchronizer({
        sources: [notificationSource(node, 'iso-during'), ...createSources(config.sources)],
        tombstoneMs: 60_000,
        onObserved: (o, events) => {
          noteReceived(o);
          if (o.kind !== 'snapshot' || !process.env.ISOLATION_BENCH_DEBUG) return;
          process.stderr.write(`isolation: snapshot of ${o.records.length} diffed, ${events.length} events, ${Math.round(performance.now() - last)} ms after the last, at ${Math.round(performance.now())} ms\n`);
          last = performance.now();
        },
      });
      const firstLoop = monitorEventLoopDelay({ resolution: 1 });
      firstLoop.enable();
      sync.start();
      await waitFor('the first snapshot', () => (sync.metrics().observations.nova ?? 0) >= 1, { timeoutMs: 600_000, everyMs: 20 });
      firstLoop.disable();
      await waitFor('the bus source to be up', () => sync.health().bus?.status === 'up', { timeoutMs: 30_000, everyMs: 5 });
      const before = sync.metrics();
      const started = performance.now();
      const workerBefore = await parseWorkerMemory();
      const stopProfile = await profile(process.env.ISOLATION_BENCH_PROFILE);
      const stopHeapProfile = await heapProfile(process.env.ISOLATION_BENCH_HEAP_PROFILE);
      const during = await measure(node, sync, () => (sync.metrics().observations.nova ?? 0) - (before.observations.nova ?? 0) >= SNAPSHOTS, { queue: 'iso-during', cloud });
      await stopProfile();
      await stopHeapProfile();
      const after = sync.metrics();
      const workerAfter = await parseWorkerMemory();
      const seconds = (performance.now() - started) / 1000;
      sync.stop();
      const snapshots = (after.observations.nova ?? 0) - (before.observations.nova ?? 0);
      if (snapshots < 1) throw new Error('isolation bench: no snapshot was diffed during the measured window');
      return [
        {
          bench: 'isolation',
          n: N,
          idleP50Ms: round(idle.p50),
          idleP99Ms: round(idle.p99),
          idleMaxStallMs: round(idle.maxStallMs),
          idleCpuUsPerMsg: round(idle.cpuUsPerMsg),
          idleDeliveredP99Ms: round(idle.deliveredP99),
          idleOutsideP99Ms: round(idle.outsideP99),
          idleOwnP99Ms: round(idle.ownP99),
          ...(idle.bareP99 !== undefined ? { idleBareP99Ms: round(idle.bareP99), idleOverBareP99Ms: round(idle.overBareP99!) } : {}),
          duringSnapshotP50Ms: round(during.p50),
          duringSnapshotP99Ms: round(during.p99),
          duringSnapshotMaxMs: round(during.max),
          duringSnapshotDeliveredP99Ms: round(during.deliveredP99),
          duringSnapshotOutsideP99Ms: round(during.outsideP99),
          duringSnapshotOwnP99Ms: round(during.ownP99),
          duringSnapshotOwnMaxMs: round(during.ownMax),
          ...(during.bareP99 !== undefined ? { duringSnapshotBareP99Ms: round(during.bareP99), duringSnapshotOverBareP99Ms: round(during.overBareP99!) } : {}),
          maxStallMs: round(during.maxStallMs),
          snapshots,
          snapshotEverySec: round(seconds / snapshots),
          firstSnapshotMaxStallMs: round(firstLoop.max / 1e6),
          mainCpuMsPerSnapshot: round((during.cpuMs - (idle.cpuUsPerMsg * during.messages) / 1000) / snapshots),
          parseWorkerCpuMsPerSnapshot: round((workerAfter.cpuMs - workerBefore.cpuMs) / snapshots),
          keptByBytesPerSnapshot: round((workerAfter.byBytes - workerBefore.byBytes) / snapshots),
          queueVersion: QUEUE_VERSION,
        },
      ];
    } finally {
      cloud.postMessage('close');
      await cloud.terminate();
      await node.dispose();
    }
  },
};

export default bench;
