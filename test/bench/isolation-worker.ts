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
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { osloTimestamp } from '../support/nova-samples.js';
import { startOpenStackServer } from '../support/openstack-server.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { body } from './amqp.js';

export type IsolationWorkerData =
  | { role: 'openstack'; servers: number }
  | { role: 'publisher'; url: string; exchange: string; routingKey: string; rate: number; maxSeconds: number; prefix: string };

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

const data = workerData as IsolationWorkerData | undefined;
if (data?.role === 'openstack') void openstack(data);
else if (data?.role === 'publisher') void publisher(data);
