/**
 * `diff` benchmark: two consecutive snapshots of N Nova servers (1 % changed in the second) through
 * normalizeEntity + diffAgainstBaseline, against a naive pipeline that object-hashes every raw
 * record with object-hash's defaults, in the same run. Also the heap the baseline retains per
 * entity (raw records not kept).
 *
 * Then the same at 1,000,000 (one round; no naive run), with the records as the Nova source keeps
 * them (pickServer, applied as each page arrives), next to 100,000 made the same way:
 * `rateVs100k` is the 1M rate over that 100k rate. DIFF_BENCH_BIG=0 leaves the 1M row out.
 */
import objectHash from 'object-hash';
import { from, lastValueFrom, tap } from 'rxjs';
import { baselineSteps, type BaselineState } from '../../operators/diffAgainstBaseline.js';
import { normalizeEntity } from '../../operators/normalizeEntity.js';
import type { Observation, SnapshotObservation } from '../../src/model.js';
import { readFixture } from '../support/fixtures.js';
import { type ApiServer, pickServer, serverDraft } from '../../sources/openstack/nova.js';
import type { Bench, BenchRow } from './run.js';

export type Server = ApiServer & Record<string, unknown>;

const SIZES = [1_000, 10_000, 100_000];
const ROUNDS = 5;

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run the benchmarks with node --expose-gc (npm run bench does)');
  collect();
  collect();
}

const template: Server = readFixture<{ servers: Server[] }>('wire', 'real-openstack', 'api', 'api-servers-detail-all-tenants.json').servers[0]!;

/** Server i of {@link makeServers}. */
function makeServer(i: number, changed: boolean): Server {
  const hex = i.toString(16).padStart(12, '0');
  const host = `compute-${i % 200}`;
  return {
    ...structuredClone(template),
    id: `0ca13c88-108b-4f84-a588-${hex}`,
    name: `vm-${i}`,
    tenant_id: `c5859a3ceb7840c9b49519c58e01b4${(i % 50).toString(16).padStart(2, '0')}`,
    'OS-EXT-SRV-ATTR:host': host,
    'OS-EXT-SRV-ATTR:hypervisor_hostname': host,
    status: changed ? 'SHUTOFF' : 'ACTIVE',
    'OS-EXT-STS:vm_state': changed ? 'stopped' : 'active',
  };
}

/** N distinct servers shaped like the real API's, spread over 200 hosts and 50 projects. */
export function makeServers(n: number, changedEvery = 0): Server[] {
  const servers: Server[] = new Array<Server>(n);
  for (let i = 0; i < n; i++) servers[i] = makeServer(i, changedEvery > 0 && i % changedEvery === 0);
  return servers;
}

/** The same servers as the Nova source holds them during a poll: only what its mapping reads. */
export function makePickedServers(n: number, changedEvery = 0): Server[] {
  const servers: Server[] = new Array<Server>(n);
  for (let i = 0; i < n; i++) servers[i] = pickServer(makeServer(i, changedEvery > 0 && i % changedEvery === 0)) as Server;
  return servers;
}

function snapshot(records: Server[], at: string): SnapshotObservation<Server> {
  return { kind: 'snapshot', source: 'nova', types: ['nova.instance'], at, records };
}

async function ours(first: Server[], second: Server[]): Promise<{ ms: number; state: BaselineState; events: number }> {
  const observations: Observation<Server>[] = [snapshot(first, '2026-11-25T12:00:00Z'), snapshot(second, '2026-11-25T12:00:30Z')];
  let events = 0;
  const start = performance.now();
  const { state } = await lastValueFrom(
    from(observations).pipe(
      normalizeEntity(serverDraft),
      baselineSteps(),
      tap((s) => (events += s.events.length)),
    ),
  );
  return { ms: performance.now() - start, state, events };
}

/**
 * Runs our pipeline and weighs the heap while its baseline is still held (the raw records
 * dropped); returns only numbers, so the baseline is garbage once this returns.
 */
async function runAndWeigh(first: Server[], second: Server[]): Promise<{ ms: number; events: number; size: number; heapWithBaseline: number }> {
  const { ms, state, events } = await ours(first, second);
  first.length = 0;
  second.length = 0;
  gc();
  return { ms, events, size: state.entities.size, heapWithBaseline: process.memoryUsage().heapUsed };
}

/** The naive pipeline: object-hash (defaults: SHA-1 over its own serialisation) of each raw record. */
function naive(first: Server[], second: Server[]): { ms: number; events: number } {
  const start = performance.now();
  const baseline = new Map<string, string>();
  let events = 0;
  for (const records of [first, second]) {
    const seen = new Set<string>();
    for (const r of records) {
      const hash = objectHash(r);
      seen.add(r.id);
      if (baseline.get(r.id) !== hash) {
        baseline.set(r.id, hash);
        events++;
      }
    }
    for (const id of baseline.keys()) if (!seen.has(id)) baseline.delete(id), events++;
  }
  return { ms: performance.now() - start, events };
}

/** One run on picked records: its rate and the heap its baseline retains per entity. */
async function pickedRun(n: number): Promise<{ entitiesPerSec: number; heapBytesPerEntity: number }> {
  const first = makePickedServers(n);
  const second = makePickedServers(n, 100);
  gc();
  const { ms, events, size, heapWithBaseline } = await runAndWeigh(first, second);
  if (events !== n + n / 100 || size !== n) throw new Error(`diff bench (${n}, picked): expected ${n + n / 100} events and ${n} entities, got ${events} and ${size}`);
  gc();
  return { entitiesPerSec: Math.round((2 * n) / (ms / 1000)), heapBytesPerEntity: (heapWithBaseline - process.memoryUsage().heapUsed) / n };
}

async function big(): Promise<BenchRow> {
  const n = 1_000_000;
  await ours(makePickedServers(2000), makePickedServers(2000, 100));
  const small: number[] = [];
  for (let round = 0; round < 3; round++) small.push((await pickedRun(100_000)).entitiesPerSec);
  const run = await pickedRun(n);
  const rate100k = median(small);
  return {
    bench: 'diff',
    n,
    records: 'picked',
    entitiesPerSec: run.entitiesPerSec,
    picked100kEntitiesPerSec: rate100k,
    rateVs100k: Number((run.entitiesPerSec / rate100k).toFixed(2)),
    heapBytesPerEntity: Math.round(run.heapBytesPerEntity),
  };
}

const bench: Bench = {
  name: 'diff',
  title: 'two snapshots of N Nova servers (1 % changed) through normalizeEntity + diffAgainstBaseline vs object-hash of raw records; then 1,000,000 picked records vs 100,000',
  async run() {
    const rows: BenchRow[] = [];
    for (const n of SIZES) {
      // Warm up the JIT on a small run so the first size isn't penalised.
      await ours(makeServers(2000), makeServers(2000, 100));
      // The median of ROUNDS runs, each on fresh records: one run is at the mercy of a busy core.
      const times: number[] = [];
      const heaps: number[] = [];
      const expected = n + n / 100;
      for (let round = 0; round < ROUNDS; round++) {
        const first = makeServers(n);
        const second = makeServers(n, 100);
        gc();
        const { ms, events, size, heapWithBaseline } = await runAndWeigh(first, second);
        if (events !== expected) throw new Error(`diff bench: expected ${expected} events, got ${events}`);
        if (size !== n) throw new Error('diff bench: baseline size mismatch');
        gc();
        // What the baseline retains: the heap while it was held, minus the heap once it is gone.
        heaps.push((heapWithBaseline - process.memoryUsage().heapUsed) / n);
        times.push(ms);
      }
      // Medians: a round may be slowed by a busy core, or weighed while V8 still holds a garbage
      // object graph somewhere (seen as a near-zero or doubled figure on a single round).
      const ms = median(times);
      const heapBytesPerEntity = median(heaps);
      const rawFirst = makeServers(n);
      const rawSecond = makeServers(n, 100);
      const naiveRun = naive(rawFirst, rawSecond);
      if (naiveRun.events !== expected) throw new Error(`naive bench: expected ${expected} events, got ${naiveRun.events}`);
      const entitiesPerSec = Math.round((2 * n) / (ms / 1000));
      const naiveEntitiesPerSec = Math.round((2 * n) / (naiveRun.ms / 1000));
      rows.push({
        bench: 'diff',
        n,
        entitiesPerSec,
        naiveEntitiesPerSec,
        speedup: Number((entitiesPerSec / naiveEntitiesPerSec).toFixed(1)),
        heapBytesPerEntity: Math.round(heapBytesPerEntity),
      });
    }
    if (process.env.DIFF_BENCH_BIG !== '0') rows.push(await big());
    return rows;
  },
};
export default bench;
