/**
 * `expiry` benchmark: what tombstone expiry costs the steps it falls in. Deletions arrive at
 * 1,000/s (notifications of instances deleted, each a tombstone) with the default window of 10
 * minutes. Until session 9 expiry read every tombstone in the step whose time entered a new tenth
 * of the window; now each step drops what is due. Measured: the step that enters a new tenth, when
 * nothing is old enough to expire (60,000 tombstones, the `isolation` benchmark's minute of polls,
 * and 600,000) and in the steady state of the window (600,000 tombstones, a tenth of them expired
 * by the steps of that tenth: `expiredInCrossing` says how many in that one step); and the steps
 * of one deletion each (p50, p99), which now also drop what became due. Medians of ROUNDS; one
 * process, nothing else in it.
 */
import { type BaselineState, DEFAULT_TOMBSTONE_MS, applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import type { ChangeObservation } from '../../src/model.js';
import type { Bench, BenchRow } from './run.js';

const RATE = 1_000;
const WINDOW = DEFAULT_TOMBSTONE_MS;
const TENTH = WINDOW / 10;
const ROUNDS = 5;
const ORIGIN = Date.UTC(2026, 0, 1);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const median = (values: number[]): number => percentile(values, 50);

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run the benchmarks with node --expose-gc (npm run bench does)');
  collect();
}

let serial = 0;

/** A deletion notification of an instance the baseline does not hold, at `ms` after the origin. */
function deletion(ms: number): ChangeObservation {
  const id = `${(serial++).toString(16).padStart(8, '0')}-8e3b-4b4e-9d3c-5f0a2c7e1b6d`;
  const at = new Date(ORIGIN + ms).toISOString();
  return {
    kind: 'change',
    source: 'bus',
    action: 'delete',
    at,
    record: { key: `nova.instance:${id}`, type: 'nova.instance', id, state: 'DELETED', parents: [], children: [], observedAt: at, source: 'bus', attributes: {} },
  };
}

/** Deletions at RATE from `from` ms up to (not including) `to`: the state after them, and each step's time in µs. */
function deleteBetween(state: BaselineState, from: number, to: number): { state: BaselineState; stepUs: number[] } {
  const stepUs: number[] = [];
  // Within one tenth (the last ms before `to` at the latest): until session 9, no expiry in these steps.
  for (let ms = from; ms < to; ms += 1_000 / RATE) {
    const o = deletion(ms);
    const t0 = performance.now();
    state = applyObservation(state, o).state;
    stepUs.push((performance.now() - t0) * 1_000);
  }
  return { state, stepUs };
}

/** The step of one deletion at `ms`, the first of a new tenth: its time in ms, and what it expired. */
function crossing(state: BaselineState, ms: number): { state: BaselineState; ms: number; expired: number } {
  const before = state.tombstones.size;
  gc();
  const t0 = performance.now();
  const next = applyObservation(state, deletion(ms)).state;
  const took = performance.now() - t0;
  return { state: next, ms: took, expired: before + 1 - next.tombstones.size };
}

const bench: Bench = {
  name: 'expiry',
  title: 'tombstone expiry: deletions at 1,000/s, 10-minute window; the step entering a new tenth of it, and each deletion\'s',
  async run(): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    // A minute of deletions (60,000), then five tenths crossed with nothing old enough.
    {
      let { state, stepUs } = deleteBetween(emptyBaseline(), 0, TENTH);
      const steps: number[] = [];
      let expired = 0;
      for (let r = 1; r <= ROUNDS; r++) {
        const c = crossing(state, r * TENTH + r);
        state = c.state;
        steps.push(c.ms);
        expired += c.expired;
      }
      rows.push({ bench: 'expiry', tombstones: TENTH, expiredInCrossing: expired, crossingStepMs: median(steps), crossingStepMaxMs: Math.max(...steps), deletionStepP50Us: median(stepUs), deletionStepP99Us: percentile(stepUs, 99) });
    }
    // Ten minutes of deletions (600,000), then: a crossing with nothing old enough; then, tenth
    // after tenth, a tenth more deletions and the crossing (the oldest tenth expired by then).
    {
      let { state, stepUs } = deleteBetween(emptyBaseline(), 0, WINDOW);
      const none: number[] = [];
      // Just inside the window: the oldest are WINDOW − 1 old, none expires.
      const c = crossing(state, WINDOW);
      state = c.state;
      none.push(c.ms);
      rows.push({ bench: 'expiry', tombstones: state.tombstones.size, expiredInCrossing: c.expired, crossingStepMs: c.ms, crossingStepMaxMs: c.ms, deletionStepP50Us: median(stepUs), deletionStepP99Us: percentile(stepUs, 99) });
      const steps: number[] = [];
      const expired: number[] = [];
      let end = WINDOW + 1;
      stepUs = [];
      for (let r = 1; r <= ROUNDS; r++) {
        const more = deleteBetween(state, end, WINDOW + r * TENTH);
        const c2 = crossing(more.state, WINDOW + r * TENTH + 1);
        state = c2.state;
        end = WINDOW + r * TENTH + 2;
        steps.push(c2.ms);
        expired.push(c2.expired);
        stepUs.push(...more.stepUs);
      }
      rows.push({ bench: 'expiry', tombstones: state.tombstones.size, expiredInCrossing: median(expired), crossingStepMs: median(steps), crossingStepMaxMs: Math.max(...steps), deletionStepP50Us: median(stepUs), deletionStepP99Us: percentile(stepUs, 99) });
    }
    return rows;
  },
};

export default bench;
