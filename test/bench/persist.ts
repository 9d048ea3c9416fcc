/**
 * `persist`: the diff benchmark's work (two snapshots of N Nova servers, 1 % changed in the
 * second, through normalizeEntity and the baseline) done by createSynchronizer with a state store
 * and without one, in the same run: the time until both snapshots are settled (with the store:
 * persisted). Then the time to load the N-entity store at start, and its size on disk (both files);
 * and the time to load it after a crash right after the first snapshot (persist-crash.ts: all of
 * it still in the log, none folded into the table).
 *
 * Rounds alternate store off and on; the figures are medians (this shared machine's speed drifts).
 * With /proc, also the ratio in main-thread CPU and the most CPU other processes took during a
 * timed round (`otherCoresMax`): a wall ratio is only as good as the box was quiet.
 *
 * PERSIST_BENCH_PROFILE=PREFIX writes a CPU profile of the main thread for each timed round,
 * PREFIX-memory-R.cpuprofile and PREFIX-store-R.cpuprofile (read them with
 * scripts/cpuprofile-diff.mjs); the profiler's own cost is in both, so compare the two, not the
 * rates of a profiled run. Every timed round starts from a collected heap (PERSIST_BENCH_NO_GC=1: not).
 * PERSIST_BENCH_DEBUG=1 prints each timed round's start and end on stderr
 * (ms since the process started, as `--trace-gc` counts them).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
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
/**
 * Rounds of each kind (store off, store on; alternating). Five, not three: one in-memory round's
 * main-thread CPU ranged 1,010–1,570 ms within a single run on a quiet box (docs/store.md,
 * "Session 9"), so a median of three moved the ratio by ±0.1 from run to run. Both sides get them.
 */
const ROUNDS = 5;

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

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run the benchmarks with node --expose-gc (npm run bench does)');
  collect();
  collect();
}

/** Clock ticks to ms (USER_HZ is 100 on Linux). */
const TICK_MS = 10;

/**
 * CPU time so far, in ms: this process's main thread, and the whole machine's busy time (every
 * core, every process), from /proc; undefined where there is no /proc. Wall times mean little
 * when processes outside the benchmark lock (a typecheck) take a core during some rounds: these
 * say how much of the box the rounds had.
 */
function cpuNow(): { main: number; box: number } | undefined {
  try {
    const task = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = task.slice(task.lastIndexOf(')') + 2).split(' ');
    const cpu = readFileSync('/proc/stat', 'utf8').slice(0, 200).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system (idle iowait) irq softirq steal
    const busy = cpu[0]! + cpu[1]! + cpu[2]! + cpu[5]! + cpu[6]! + cpu[7]!;
    return { main: (Number(f[11]) + Number(f[12])) * TICK_MS, box: busy * TICK_MS };
  } catch {
    return undefined;
  }
}

/** One round's figures: wall time; main-thread CPU; CPU the rest of the machine used meanwhile (other processes), in cores. */
interface Round {
  ms: number;
  mainCpuMs?: number;
  otherCores?: number;
}

/** With PERSIST_BENCH_PROFILE: profiles this thread until the returned function writes `file`. */
async function profile(file: string | undefined): Promise<() => Promise<void>> {
  if (!file) return async () => {};
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

async function once(dir: string | undefined, profileFile?: string): Promise<Round> {
  const { source, done } = twoSnapshots(makeServers(N), makeServers(N, 100));
  const sync = createSynchronizer({ sources: [source], ...(dir ? { state: { dir } } : {}) });
  let events = 0;
  sync.entity$.subscribe(() => (events += 1));
  // Each round from a collected heap, as the diff benchmark's: without it a round paid for the
  // garbage of the rounds and loads before it (traced: a major GC started by V8's external-memory
  // trigger in whichever round crossed it, 0.2–2 s of main-thread marking and collection in that
  // round alone; docs/store.md, "Session 8"). PERSIST_BENCH_NO_GC=1 measures without it.
  if (!process.env.PERSIST_BENCH_NO_GC) gc();
  const stopProfile = await profile(profileFile);
  const cpu0 = cpuNow();
  const process0 = process.cpuUsage();
  const start = performance.now();
  sync.start();
  await done;
  const ms = performance.now() - start;
  const cpu1 = cpuNow();
  if (process.env.PERSIST_BENCH_DEBUG) process.stderr.write(`persist round ${dir ? 'store' : 'memory'}: ${start.toFixed(0)}–${(start + ms).toFixed(0)} ms\n`);
  const own = process.cpuUsage(process0);
  await stopProfile();
  await sync.close();
  if (events !== N + N / 100) throw new Error(`persist bench: expected ${N + N / 100} events, got ${events}`);
  if (!cpu0 || !cpu1) return { ms };
  const others = cpu1.box - cpu0.box - (own.user + own.system) / 1000;
  return { ms, mainCpuMs: cpu1.main - cpu0.main, otherCores: Math.max(0, others) / ms };
}

const bench: Bench = {
  name: 'persist',
  title: `two snapshots of ${N} Nova servers (1 % changed) through createSynchronizer with the LMDB state store and without, until settled; then loading the store (medians of ${ROUNDS})`,
  async run(): Promise<BenchRow[]> {
    const memory: Round[] = [];
    const stored: Round[] = [];
    const loads: number[] = [];
    const crashLoads: number[] = [];
    let foldedAtCrash = 0;
    let bytes = 0;
    await once(undefined); // JIT warm-up
    const profiles = process.env.PERSIST_BENCH_PROFILE;
    for (let round = 0; round < ROUNDS; round++) {
      memory.push(await once(undefined, profiles && `${profiles}-memory-${round}.cpuprofile`));
      const dir = mkdtempSync(join(tmpdir(), 'sync-persist-'));
      try {
        stored.push(await once(dir, profiles && `${profiles}-store-${round}.cpuprofile`));
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
    const entitiesPerSec = Math.round((2 * N) / (median(stored.map((r) => r.ms)) / 1000));
    const memoryEntitiesPerSec = Math.round((2 * N) / (median(memory.map((r) => r.ms)) / 1000));
    const cpu = (rounds: Round[]): number[] => rounds.flatMap((r) => (r.mainCpuMs === undefined ? [] : [r.mainCpuMs]));
    const others = [...memory, ...stored].flatMap((r) => (r.otherCores === undefined ? [] : [r.otherCores]));
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
        // The same ratio in main-thread CPU (medians): what other processes on the box do not change.
        ...(cpu(stored).length > 0 ? { mainCpuRatio: Number((median(cpu(memory)) / median(cpu(stored))).toFixed(2)) } : {}),
        // The most CPU other processes took during one timed round, in cores (of the box's): a
        // wall ratio measured while this was high says little.
        ...(others.length > 0 ? { otherCoresMax: Number(Math.max(...others).toFixed(2)) } : {}),
      },
    ];
  },
};
export default bench;
