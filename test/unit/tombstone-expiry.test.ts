import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BaselineState, applyObservation, emptyBaseline, restoreBaseline } from '../../operators/diffAgainstBaseline.js';
import type { Observation } from '../../src/model.js';
import { BaselineModel } from '../support/baseline-model.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';

/**
 * Tombstone expiry pops a queue of tombstones by time (operators/diffAgainstBaseline.ts,
 * `TombstoneQueue`) instead of reading every tombstone. The reference model's checks
 * (baseline-model.property.test.ts) hold a handful of keys; these hold many, so the queue is deep,
 * and reduce one state twice, as a pure reducer allows.
 */

const sorted = (m: Iterable<[string, number]>): [string, number][] => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
const NOW = Date.parse(t(10_000));

describe('tombstone expiry', () => {
  it('drops exactly the tombstones the model drops, step by step, with many keys deleted again and again', () => {
    // Deletions and upserts of 60 keys at times that mostly move forward (a few late ones), and
    // snapshots of another type that only move the clock.
    const arbStep = fc.record({ dt: fc.integer({ min: -3, max: 6 }), id: fc.integer({ min: 0, max: 59 }), kind: fc.constantFrom('delete', 'delete', 'upsert', 'clock') });
    fc.assert(
      fc.property(fc.array(arbStep, { minLength: 1, maxLength: 200 }), fc.constantFrom(5_000, 10_000, 30_000), (steps, tombstoneMs) => {
        const model = new BaselineModel({ tombstoneMs, now: () => NOW });
        let state: BaselineState = emptyBaseline();
        let time = 0;
        steps.forEach(({ dt, id, kind }, i) => {
          time = Math.max(0, time + dt);
          const e = entity(`i${id}`);
          const o: Observation = kind === 'clock' ? snapshot(t(time), [], ['nova.host']) : kind === 'delete' ? remove(t(time), e) : upsert(t(time), e);
          model.apply(o);
          state = applyObservation(state, o, { tombstoneMs, now: () => NOW }).state;
          expect(sorted(state.tombstones), `tombstones after step #${i}`).toEqual(sorted(model.tombstones));
        });
      }),
      { numRuns: 300 },
    );
  });

  it('an older state reduced again expires its own tombstones, not those of the state reduced first', () => {
    const a = entity('a');
    const b = entity('b');
    const options = { tombstoneMs: 10_000 };
    let s: BaselineState = emptyBaseline();
    // a deleted at 1; b, never seen, at 5: tombstones only, the entities stay as they are.
    for (const o of [upsert(t(0), a), remove(t(1), a), remove(t(5), b)]) s = applyObservation(s, o, options).state;
    const clockTo = (state: BaselineState, s: number): BaselineState => applyObservation(state, snapshot(t(s), [], ['nova.host']), options).state;
    expect(sorted(clockTo(s, 12).tombstones)).toEqual([[b.key, Date.parse(t(5))]]);
    // The same state reduced again (same entities, its own tombstones): a expires again, b stays.
    expect(sorted(clockTo(s, 12).tombstones)).toEqual([[b.key, Date.parse(t(5))]]);
    expect(sorted(clockTo(s, 16).tombstones)).toEqual([]);
  });

  it('a restored baseline (the state store) expires the tombstones it was restored with', () => {
    // Stored in no particular order of time (the store reads them by key).
    const keys = Array.from({ length: 50 }, (_, i) => [`nova.instance:r${i}`, Date.parse(t((i * 17) % 50))] as [string, number]);
    const restored = restoreBaseline({ entities: emptyBaseline().entities, tombstones: emptyBaseline().tombstones.withMutations((m) => void keys.forEach(([k, v]) => m.set(k, v))), syncedAt: emptyBaseline().syncedAt, clock: Date.parse(t(49)) });
    const options = { tombstoneMs: 10_000 };
    // The clock a second at a time: the horizon passes one tombstone at each step.
    let state = restored;
    for (let now = 50; now <= 61; now++) {
      state = applyObservation(state, snapshot(t(now), [], ['nova.host']), options).state;
      expect(sorted(state.tombstones), `at t(${now})`).toEqual(sorted(keys.filter(([, at]) => at >= Date.parse(t(now - 10)))));
    }
    expect(state.tombstones.size).toBe(0);
    // Latest first (a map of up to eight keys keeps their order): the oldest is last.
    const few = Array.from({ length: 8 }, (_, i) => [`nova.instance:f${i}`, Date.parse(t(7 - i))] as [string, number]);
    const fewRestored = restoreBaseline({ ...restored, tombstones: emptyBaseline().tombstones.withMutations((m) => void few.forEach(([k, v]) => m.set(k, v))), clock: Date.parse(t(7)) });
    expect(sorted(applyObservation(fewRestored, snapshot(t(14), [], ['nova.host']), options).state.tombstones)).toEqual(sorted(few.filter(([, at]) => at >= Date.parse(t(4)))));
  });
});
