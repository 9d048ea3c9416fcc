import { describe, expect, it } from 'vitest';
import { type BaselineState, applyObservation, emptyBaseline, prepareSnapshot } from '../../operators/diffAgainstBaseline.js';
import type { EntityEvent, SnapshotObservation } from '../../src/model.js';
import { entity, snapshot, t, upsert } from '../support/entities.js';

/**
 * The change log that prepared snapshots read (prepareSnapshot) is dropped past 200,000 entries, so
 * that it does not grow without end while changes stream in: a preparation that started before the
 * drop no longer knows what changed, and its step must visit every record. 200,000 changes take
 * about a second, so this file is apart from the quick mutation tests (it runs after them).
 */

const brief = (e: EntityEvent): string => `${e.action} ${e.entity.key} ${e.entity.state}${e.changed ? ' [' + e.changed.join(',') + ']' : ''}`;

describe('diffAgainstBaseline: a preparation and the change log dropped', () => {
  it('ignores a preparation made before 200,000 changes dropped the log, and reads one made after it', () => {
    const [a, aOff, b] = [entity('a'), entity('a', 'SHUTOFF'), entity('b')];
    const prepare = (state: BaselineState, s: SnapshotObservation): void => {
      while (!prepareSnapshot(state, s, 10)) continue;
    };
    let state: BaselineState = applyObservation(emptyBaseline(), snapshot(t(0), [a, b])).state;
    // Read whole while the baseline holds a as the snapshot has it: nothing to write.
    const first = snapshot(t(100), [a, b]);
    prepare(state, first);
    // Then a notification older than the snapshot changes a, and 200,000 more changes (the same
    // entity b, unchanged) fill the log past its limit: the entry that named a is dropped.
    state = applyObservation(state, upsert(t(50), aOff)).state;
    const bAgain = upsert(t(50), b);
    for (let i = 0; i < 200_000; i++) state = applyObservation(state, bAgain).state;
    // The snapshot, newer, sets a back.
    let step = applyObservation(state, first);
    expect(step.events.map(brief)).toEqual(['update nova.instance:a ACTIVE [state]']);
    // A preparation started after the drop reads the new log from where it stood.
    const second = snapshot(t(200), [a, b]);
    prepare(step.state, second);
    step = applyObservation(step.state, upsert(t(150), aOff));
    expect(step.events.map(brief)).toEqual(['update nova.instance:a SHUTOFF [state]']);
    expect(applyObservation(step.state, second).events.map(brief)).toEqual(['update nova.instance:a ACTIVE [state]']);
  });
});
