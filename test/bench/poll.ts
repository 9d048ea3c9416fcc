/**
 * `poll`: one full Nova poll cycle of 10,000 servers (the source limited to nova.instance, so it reads
 * the same pages as the bare loop; Keystone token cached; fetch of every page +
 * parse + normalize + diff into an empty baseline, through createSynchronizer) against a bare axios
 * loop fetching the same pages from the same local server in the same run.
 *
 * Rounds alternate a bare fetch and a cycle. The ratio is the median of each round's cycle / bare:
 * this shared machine's speed drifts by more than the gap measured, and a pair run back to back
 * sees the same machine.
 */
import axios from 'axios';
import { createSources, parseConfig } from '../../src/config.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { startOpenStackServer } from '../support/openstack-server.js';
import type { Bench, BenchRow } from './run.js';

const N = 10_000;
const ROUNDS = 21;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const bench: Bench = {
  name: 'poll',
  title: `one Nova poll cycle of ${N} servers in pages of 1000 vs a bare axios loop over the same pages (medians of ${ROUNDS} rounds; ratio: median of each round's cycle/bare)`,
  async run(): Promise<BenchRow[]> {
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
      return [{ bench: 'poll', n: N, cycleMs: Math.round(median(cycles)), bareFetchMs: Math.round(median(bares)), ratio: Number(median(ratios).toFixed(2)) }];
    } finally {
      await os.close();
    }
  },
};

export default bench;
