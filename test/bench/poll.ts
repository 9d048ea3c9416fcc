/**
 * `poll`: (1) one full Nova poll cycle of 10,000 servers (the source limited to nova.instance, so it reads
 * the same pages as the bare loop; Keystone token cached; fetch of every page +
 * parse + normalize + diff into an empty baseline, through createSynchronizer) against a bare axios
 * loop fetching the same pages from the same local server in the same run.
 *
 * Rounds alternate a bare fetch and a cycle. The ratio is the median of each round's cycle / bare:
 * this shared machine's speed drifts by more than the gap measured, and a pair run back to back
 * sees the same machine.
 *
 * (2) A big single response: Alertmanager's alert list with 100,000 and 1,000,000 alerts shaped
 * as the recorded one, served by a local server in a worker thread, read by the HTTP transport
 * streamed (`getEach`, each alert checked as the source does, then dropped) and parsed whole
 * (`get`, then the same check), with the peak growth of this thread's heap while it was read
 * (sampled every 2 ms and after the parse) and the rate. Records are not kept in either, so the
 * figure is what the transport holds. An alert is about 530 B, so a million are 531 MB, just
 * under the longest string V8 makes (2^29 - 24 characters): the whole-body path cannot read
 * an answer much longer than that at all. `POLL_BENCH=big` runs (2) alone.
 */
import { once } from 'node:events';
import { getHeapStatistics } from 'node:v8';
import { Worker } from 'node:worker_threads';
import axios from 'axios';
import { parseAlert } from '../../sources/alertmanager.js';
import { createHttpClient } from '../../src/http.js';
import { createSources, parseConfig } from '../../src/config.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { startOpenStackServer } from '../support/openstack-server.js';
import type { BigResponseWorkerData } from './big-response-worker.js';
import type { Bench, BenchRow } from './run.js';

const N = 10_000;
const ROUNDS = 21;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with node --expose-gc (npm run bench does)');
  collect();
}

/** One read of an answer of `n` alerts, streamed or whole: its rate and the heap it took at its peak. */
async function bigResponse(n: number, how: 'streamed' | 'whole'): Promise<BenchRow> {
  const worker = new Worker(new URL('./big-response-worker.js', import.meta.url), { workerData: { n } satisfies BigResponseWorkerData });
  const [{ url, bytes }] = (await once(worker, 'message')) as [{ url: string; bytes: number }];
  try {
    const http = createHttpClient({ baseUrl: url, timeoutMs: 600_000, retries: 0, maxResponseBytes: how === 'whole' ? 2 ** 31 : undefined });
    const where = `bench: GET ${url}/alerts`;
    gc();
    const base = getHeapStatistics().used_heap_size;
    let peak = base;
    const sample = (): void => {
      peak = Math.max(peak, getHeapStatistics().used_heap_size);
    };
    const timer = setInterval(sample, 2);
    let count = 0;
    const started = performance.now();
    if (how === 'streamed') {
      await http.getEach('/alerts', {
        select: '[*]',
        each: (a, [i]) => {
          parseAlert(a, i as number, where);
          count += 1;
          return undefined;
        },
      });
    } else {
      const doc = await http.get<unknown[]>('/alerts');
      sample();
      for (let i = 0; i < doc.length; i++) parseAlert(doc[i], i, where);
      count = doc.length;
      sample();
    }
    const ms = performance.now() - started;
    clearInterval(timer);
    if (count !== n) throw new Error(`read ${count} alerts of ${n}`);
    return {
      bench: 'poll',
      response: 'alertmanager',
      how,
      n,
      mb: Math.round(bytes / 1e6),
      ms: Math.round(ms),
      alertsPerSec: Math.round(n / (ms / 1000)),
      mbPerSec: Math.round(bytes / 1e6 / (ms / 1000)),
      peakHeapGrowthMB: Math.round((peak - base) / 1e6),
    };
  } finally {
    worker.postMessage('stop');
    await once(worker, 'exit');
  }
}

async function bigRows(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const [n, how] of [[100_000, 'streamed'], [1_000_000, 'streamed'], [100_000, 'whole'], [1_000_000, 'whole']] as const) {
    // A whole read that cannot be done (out of string length or heap) is a result too.
    rows.push(await bigResponse(n, how).catch((e: unknown): BenchRow => ({ bench: 'poll', response: 'alertmanager', how, n, error: e instanceof Error ? e.message.slice(0, 200) : String(e) })));
  }
  return rows;
}

const bench: Bench = {
  name: 'poll',
  title: `one Nova poll cycle of ${N} servers in pages of 1000 vs a bare axios loop over the same pages (medians of ${ROUNDS} rounds; ratio: median of each round's cycle/bare); then one Alertmanager answer of 100,000 to 1,000,000 alerts read streamed vs parsed whole (peak heap growth, rate)`,
  async run(): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    if (process.env.POLL_BENCH === 'big') return bigRows();
    const os = await startOpenStackServer({ servers: N, novaMaxLimit: 1000 });
    try {
      const config = await parseConfig({ sources: [{ name: 'nova', use: 'openstack.nova', types: ['nova.instance'], interval: '1h', timeout: '60s', region: 'RegionOne', auth: os.auth }], sinks: [] }, process.cwd());

      const cycle = async (): Promise<number> => {
        const sync = createSynchronizer({ sources: createSources(config.sources) });
        let count = 0;
        const started = performance.now();
        await new Promise<void>((resolve, reject) => {
          sync.entity$.subscribe((e) => {
            if (e.entity.type === 'nova.instance') count += 1;
            if (count === N) resolve();
          });
          sync.health$.subscribe((h) => {
            if (h.nova?.status === 'down') reject(new Error(`poll failed: ${h.nova.error}`));
          });
          sync.start();
        });
        const ms = performance.now() - started;
        sync.stop();
        return ms;
      };

      const token = (await axios.post(`${os.authUrl}/auth/tokens`, { auth: { identity: { methods: ['password'], password: { user: { name: os.username, domain: { name: 'Default' }, password: os.password } } }, scope: { project: { name: 'admin', domain: { name: 'Default' } } } } })).headers['x-subject-token'] as string;
      const bare = async (): Promise<number> => {
        const started = performance.now();
        let url: string | undefined = `${os.url}/compute/v2.1/servers/detail?all_tenants=1`;
        let total = 0;
        while (url) {
          const page: { data: { servers: unknown[]; servers_links?: { rel: string; href: string }[] } } = await axios.get(url, { headers: { 'X-Auth-Token': token } });
          total += page.data.servers.length;
          url = page.data.servers_links?.find((l) => l.rel === 'next')?.href;
        }
        if (total !== N) throw new Error(`bare loop saw ${total} servers`);
        return performance.now() - started;
      };

      // Warm up both paths (JIT, sockets, the shared Keystone token).
      await cycle();
      await bare();
      const cycles: number[] = [];
      const bares: number[] = [];
      const ratios: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const b = await bare();
        const c = await cycle();
        bares.push(b);
        cycles.push(c);
        ratios.push(c / b);
      }
      rows.push({ bench: 'poll', n: N, cycleMs: Math.round(median(cycles)), bareFetchMs: Math.round(median(bares)), ratio: Number(median(ratios).toFixed(2)) });
    } finally {
      await os.close();
    }
    rows.push(...(await bigRows()));
    return rows;
  },
};

export default bench;
