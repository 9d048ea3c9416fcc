/**
 * The `isolation` benchmark's other threads, so that neither serving the polls nor publishing the
 * notifications runs on the event loop being measured (a stall there would delay the publish too,
 * and hide itself from the latency):
 * - `openstack`: the local OpenStack (test/support/openstack-server.ts) with N servers, 1 % of
 *   them changing state at the start of every poll (its first page asked for). Its pages are
 *   rendered once and again only when a server on them changed, and the 1 % is a run of
 *   consecutive servers (a page or two): rendering 100,000 servers at every poll kept this thread
 *   busy 70–80 % of the time, on the cores the synchronizer is measured on. Which servers change
 *   does not matter to the synchronizer: its step costs the number of changed records.
 * - `publisher`: instance.update notifications at `rate`/s until told to stop (or `maxSeconds`),
 *   each one's send time (epoch ms, sub-ms) posted back at the end.
 * - `bare` (ISOLATION_BENCH_BARE): a consumer that does nothing but note when each notification
 *   reached it and ack it, on a queue of its own (exclusive, not durable: the broker writes
 *   nothing of it to disk; or durable as the synchronizer's) bound as the synchronizer's: the
 *   delivery the box gives a consumer that neither parses nor waits for a loop that polls. Its
 *   receive times are posted back when told to stop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import amqp from 'amqplib';
import { performance } from 'node:perf_hooks';
import { osloTimestamp } from '../support/nova-samples.js';
import { startOpenStackServer } from '../support/openstack-server.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { bodyMaker } from './amqp.js';

export type IsolationWorkerData =
  | { role: 'openstack'; servers: number }
  | { role: 'publisher'; url: string; exchange: string; routingKey: string; rate: number; maxSeconds: number; prefix: string }
  | { role: 'bare'; url: string; exchange: string; routingKey: string; rate: number; maxSeconds: number; prefix: string; durable: boolean };

/** Epoch ms with sub-ms precision, comparable across threads (each has its own timeOrigin). */
export const epochNow = (): number => performance.timeOrigin + performance.now();

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function openstack(data: Extract<IsolationWorkerData, { role: 'openstack' }>): Promise<void> {
  const os = await startOpenStackServer({ servers: data.servers, novaMaxLimit: 1000, novaPageCache: true });
  let round = 0;
  const timer = setInterval(() => {
    // A poll started (its first page, without a marker): 1 % of the servers change.
    const started = os.requests.filter((r) => r.path.endsWith('/servers/detail') && !r.query.includes('marker=')).length;
    os.requests.length = 0;
    for (let k = 0; k < started; k++) {
      round += 1;
      const servers = os.state.servers;
      const churn = Math.ceil(servers.length / 100);
      const first = ((round - 1) * churn) % servers.length;
      const changed: number[] = [];
      for (let i = first; i < Math.min(servers.length, first + churn); i++) {
        const s = servers[i]!;
        s.status = s.status === 'SHUTOFF' ? 'ACTIVE' : 'SHUTOFF';
        changed.push(i);
      }
      os.serversChanged(changed);
    }
  }, 20);
  parentPort!.postMessage({ url: os.url, auth: os.auth });
  parentPort!.once('message', () => {
    clearInterval(timer);
    void os.close().then(() => parentPort!.postMessage('closed'));
  });
}

async function publisher(data: Extract<IsolationWorkerData, { role: 'publisher' }>): Promise<void> {
  const publisher = await OsloPublisher.connect(data.url);
  let stop = false;
  parentPort!.once('message', () => (stop = true));
  const total = data.rate * data.maxSeconds;
  const sentAt = new Float64Array(total);
  const body = bodyMaker();
  const t0 = performance.now();
  let i = 0;
  while (i < total && !stop) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * data.rate) + 1);
    for (; i < due; i++) {
      const b = body(i, osloTimestamp(new Date()), `${data.prefix}${i}`);
      sentAt[i] = epochNow();
      publisher.publishNoWait(data.exchange, data.routingKey, b);
    }
    await sleep(1);
  }
  await publisher.flush();
  await publisher.close();
  const sent = sentAt.slice(0, i);
  parentPort!.postMessage(sent, [sent.buffer]);
}

async function bare(data: Extract<IsolationWorkerData, { role: 'bare' }>): Promise<void> {
  const conn = await amqp.connect(data.url);
  const channel = await conn.createChannel();
  // Durable (ISOLATION_BENCH_BARE=durable): stored as the synchronizer's queue is, persistent
  // messages written to disk; deleted when it stops.
  const { queue } = data.durable ? await channel.assertQueue('iso-bare', { durable: true }) : await channel.assertQueue('', { exclusive: true, durable: false });
  await channel.bindQueue(queue, data.exchange, data.routingKey);
  await channel.prefetch(1000);
  const receivedAt = new Float64Array(data.rate * data.maxSeconds);
  // The publisher names each notification's instance `${prefix}${i}`: found in the body's bytes
  // (the oslo envelope holds the message as a JSON string, whose quotes are escaped).
  const mark = Buffer.from(data.prefix);
  await channel.consume(queue, (m) => {
    if (m === null) return;
    const at = epochNow();
    const start = m.content.indexOf(mark);
    if (start >= 0) {
      let i = 0;
      for (let k = start + mark.length; k < m.content.length; k++) {
        const c = m.content[k]!;
        if (c < 48 || c > 57) break;
        i = i * 10 + (c - 48);
      }
      if (i < receivedAt.length && receivedAt[i] === 0) receivedAt[i] = at;
    }
    channel.ack(m);
  });
  parentPort!.postMessage('up');
  parentPort!.once('message', () => {
    void (data.durable ? channel.deleteQueue(queue).then(() => conn.close()) : conn.close()).finally(() => parentPort!.postMessage(receivedAt, [receivedAt.buffer]));
  });
}

const data = workerData as IsolationWorkerData | undefined;
if (data?.role === 'openstack') void openstack(data);
else if (data?.role === 'publisher') void publisher(data);
else if (data?.role === 'bare') void bare(data);
