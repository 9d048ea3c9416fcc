/**
 * How a big snapshot shares the event loop with the push path. Its records are normalized, then
 * read against the baseline (prepareSnapshot), in slices with a pause for I/O between two; only
 * then does it take its turn in the baseline, whose step is left with what the snapshot writes.
 * Meanwhile notifications, webhooks, AMQP heartbeats and HTTP probes are served between slices.
 * Per source and in order: what a source observes after a big snapshot waits for it.
 */
import type { MonoTypeOperatorFunction } from 'rxjs';
import { concatEach } from '../../operators/concatEach.js';
import { type BaselineState, type PrepareOptions, prepareSnapshot } from '../../operators/diffAgainstBaseline.js';
import { SLICE_CHECK, type SliceOptions, sliceEnd } from '../../operators/normalizeEntity.js';
import type { EntityType, Observation, SnapshotObservation } from '../model.js';
import { turnBudget } from '../pause.js';

/**
 * Records (or index entries) per slice at most. About 1–5 ms of work on a loaded 2-core machine
 * (docs/architecture.md, "Big snapshots"): short enough for a 10 ms p99 of the push path.
 */
export const SLICE_RECORDS = 1000;

// Shared with the transport's streamed reads (src/pause.ts).
export { SLICE_MS, pauseForIo } from '../pause.js';

/** The hub's slices take their time from the process's budget per turn, shared with the transport's reads. */
export const HUB_SLICES: SliceOptions = { records: SLICE_RECORDS, deadline: turnBudget.deadline, pause: turnBudget.pause, release: turnBudget.release };

/** The hub's snapshots are its own (normalizeEntity made their records): no-ops are dropped once read. */
// Stryker disable next-line ObjectLiteral,BooleanLiteral: memory only: records kept are stepped alike (and those as normalized are dropped before)
const OWNED: PrepareOptions = { drop: true };
const AS_NORMALIZED: PrepareOptions = { arriving: true, drop: true };

/**
 * The hook that reads a big snapshot's records against the baseline (`state()`, the reducer's
 * latest) as normalizeEntity makes them, in the same slices (its `prepare` option): a record
 * found to be a no-op is dropped at once (prepareSnapshot), so the entities of a poll that
 * changed nothing die young instead of surviving, promoted, until the step. Only a snapshot
 * that reaches the baseline as it is: one with an inactive type is copied on the way (onlyActive
 * in hub/intake.ts), and its preparation would be another's; preparedInSlices prepares the rest.
 */
export function preparingAsNormalized(state: () => BaselineState | undefined, active: (type: EntityType) => boolean): (normalized: SnapshotObservation) => void {
  return (normalized) => {
    const now = state();
    if (now === undefined || !normalized.types.every(active)) return;
    // The records just normalized, and as many again of any left behind (a preparation started
    // again reads from the first): the slice's clock is looked at after each run.
    // Stryker disable next-line ArithmeticOperator: the budget only sets how much one call reads
    prepareSnapshot(now, normalized, 2 * SLICE_CHECK, AS_NORMALIZED);
  };
}

/**
 * Prepares each snapshot of more than `slice.records` records against the baseline as it is
 * slice after slice (`state()`), then emits it; anything else passes at once (unless a snapshot
 * before it is still being prepared).
 */
export function preparedInSlices(state: () => BaselineState, slice: SliceOptions = HUB_SLICES): MonoTypeOperatorFunction<Observation> {
  return concatEach((o: Observation, out) => {
    if (o.kind !== 'snapshot' || o.records.length <= slice.records) {
      out.next(o);
      return undefined;
    }
    return (async () => {
      const now = slice.now ?? (() => performance.now());
      const step = slice.ms === undefined && slice.deadline === undefined ? slice.records : Math.min(slice.records, SLICE_CHECK);
      // A shared budget already spent when the snapshot comes: its first slice waits its turn.
      let pause = slice.deadline !== undefined && now() >= slice.deadline();
      let denied = pause;
      for (;;) {
        if (pause) {
          await slice.pause(denied);
          if (out.closed) return;
        }
        pause = true;
        denied = false;
        const deadline = sliceEnd(slice, now);
        let read = 0;
        let complete: boolean;
        do {
          complete = prepareSnapshot(state(), o, step, OWNED);
          read += step;
        } while (!complete && read < slice.records && now() < deadline);
        if (complete) break;
      }
      out.next(o);
      // After the step (which ran in this turn): only a budget left after it goes to another.
      slice.release?.();
    })();
  });
}
