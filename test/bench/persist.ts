/**
 * `persist`: the diff benchmark's work (two snapshots of N Nova servers, 1 % changed in the
 * second, through normalizeEntity and the baseline) done by createSynchronizer with a state store
 * and without one, in the same run: the time until both snapshots are settled (with the store:
 * persisted). Then the time to load the N-entity store at start, and its size on disk (both files);
 * and the time to load it after a crash right after the first snapshot (persist-crash.ts: all of
 * it still in the log, none folded into the table).
 *
 * Rounds alternate store off and on; the figures are medians (this shared machine's speed drifts).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from 'lmdb';
import { Observable } from 'rxjs';
import { serverDraft } from '../../sources/openstack/nova.js';
import type { Settlement, SnapshotObservation } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { openBaselineStore } from '../../src/store/lmdb.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { type Server, makeServers } from './diff.js';
import type { Bench, BenchRow } from './run.js';

const N = 100_000;
const ROUNDS = 3;

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

/** A source that sends the two snapshots; resolves `done` once both are settled. */
function twoSnapshots(first: Server[], second: Server[]): { source: Source<unknown>; done: Promise<void> } {
  let settled = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const settle = (outcome: Settlement): void => {
    if (!outcome.ok) throw new Error(`persist bench: a snapshot was refused: ${outcome.reason}`);
    if (++settled === 2) finish();
  };
  const snapshot = (records: Server[], at: string): SnapshotObservation<Server> => ({ kind: 'snapshot', source: 'nova', types: ['nova.instance'], at, records, settle });
  const signal$ = new Observable<SourceSignal<Server>>((subscriber) => {
    subscriber.next(snapshot(first, '2026-11-25T12:00:00Z'));
    subscriber.next(snapshot(second, '2026-11-25T12:00:30Z'));
  });
  return { source: { name: 'nova', types: ['nova.instance'], signal$, map: serverDraft } as Source<unknown>, done };
}

async function once(dir: string | undefined): Promise<number> {
  const { source, done } = twoSnapshots(makeServers(N), makeServers(N, 100));
  const sync = createSynchronizer({ sources: [source], ...(dir ? { state: { dir } } : {}) });
  let events = 0;
  sync.entity$.subscribe(() => (events += 1));
  const start = performance.now();
  sync.start();
  await done;
  const ms = performance.now() - start;
  await sync.close();
  if (events !== N + N / 100) throw new Error(`persist bench: expected ${N + N / 100} events, got ${events}`);
  return ms;
}

const bench: Bench = {
  name: 'persist',
  title: `two snapshots of ${N} Nova servers (1 % changed) through createSynchronizer with the LMDB state store and without, until settled; then loading the store (medians of ${ROUNDS})`,
  async run(): Promise<BenchRow[]> {
    const memory: number[] = [];
    const stored: number[] = [];
    const loads: number[] = [];
    const crashLoads: number[] = [];
    let foldedAtCrash = 0;
    let bytes = 0;
    await once(undefined); // JIT warm-up
    for (let round = 0; round < ROUNDS; round++) {
      memory.push(await once(undefined));
      const dir = mkdtempSync(join(tmpdir(), 'sync-persist-'));
      try {
        stored.push(await once(dir));
        // Both files: the folded table and the log (whose freed pages LMDB keeps for reuse).
        bytes = statSync(join(dir, 'baseline.mdb')).size + statSync(join(dir, 'log.mdb')).size;
        const start = performance.now();
        const store = openBaselineStore(dir);
        const { state } = store.load();
        loads.push(performance.now() - start);
        await store.close();
        if (state.entities.size !== N) throw new Error(`persist bench: loaded ${state.entities.size} entities, expected ${N}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const crashed = mkdtempSync(join(tmpdir(), 'sync-persist-crash-'));
      try {
        const child = spawnSync(process.execPath, [fileURLToPath(new URL('./persist-crash.js', import.meta.url)), crashed, String(N)], { stdio: ['ignore', 'ignore', 'inherit'] });
        if (child.signal !== 'SIGKILL') throw new Error(`persist bench: the crash child ended with ${child.status ?? child.signal}, not SIGKILL`);
        // What the fold had put in the table before the kill (0: the whole snapshot is in the log).
        const table = open({ path: join(crashed, 'baseline.mdb'), maxDbs: 8 });
        foldedAtCrash = Math.max(foldedAtCrash, table.openDB({ name: 'entities', encoding: 'json' }).getCount());
        await table.close();
        const start = performance.now();
        const store = openBaselineStore(crashed);
        const { state } = store.load();
        crashLoads.push(performance.now() - start);
        await store.close();
        if (state.entities.size !== N) throw new Error(`persist bench: loaded ${state.entities.size} entities after the crash, expected ${N}`);
      } finally {
        rmSync(crashed, { recursive: true, force: true });
      }
    }
    const entitiesPerSec = Math.round((2 * N) / (median(stored) / 1000));
    const memoryEntitiesPerSec = Math.round((2 * N) / (median(memory) / 1000));
    return [
      {
        bench: 'persist',
        n: N,
        entitiesPerSec,
        memoryEntitiesPerSec,
        ratio: Number((entitiesPerSec / memoryEntitiesPerSec).toFixed(2)),
        loadMs: Math.round(median(loads)),
        loadAfterCrashMs: Math.round(median(crashLoads)),
        foldedAtCrash,
        bytesPerEntity: Math.round(bytes / N),
      },
    ];
  },
};
export default bench;
