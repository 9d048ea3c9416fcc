import { describe, expect, it } from 'vitest';
import { applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { toEntity } from '../../operators/normalizeEntity.js';
import type { Observation } from '../../src/model.js';
import { BaselineModel } from '../support/baseline-model.js';
import { checkDroppedRecords, checkMeaning, checkPreparedSteps, checkSteps } from '../support/baseline-model-checks.js';
import { t } from '../support/entities.js';

describe('the baseline against its reference model (test/support/baseline-model.ts)', () => {
  it('emits the same events, step by step, and ends in the same entities and tombstones', () => {
    checkSteps({ numRuns: 1500 });
  });

  it('a snapshot prepared in slices while other observations are applied steps exactly as the model says', () => {
    checkPreparedSteps({ numRuns: 3000 });
  });

  it('in time order, a few late (the clock moves step by step, tombstones expire all through): the same events and tombstones after every step', () => {
    checkSteps({ numRuns: 1500 }, { timeline: true });
  });

  it('in time order, each snapshot prepared in slices amid the steps before it: the same events and tombstones after every step', () => {
    checkPreparedSteps({ numRuns: 1500 }, { timeline: true });
  });

  it('a record dropped as a no-op once read is made again exactly for a step that needs it (a key touched since)', () => {
    checkDroppedRecords({ numRuns: 1500 });
  });

  it('by default a tombstone holds ten minutes (the model and the implementation, with no options)', () => {
    const a = toEntity({ type: 'nova.instance', id: 'a', state: 'ACTIVE' }, 'bus', t(0));
    const at = (s: number, action: 'upsert' | 'delete', record = a): Observation => ({ kind: 'change', source: 'bus', action, at: t(s), record });
    // Deleted at 0; the clock moves to 9.5 min; a notification stamped before the deletion arrives late.
    const late = [at(0, 'upsert'), at(1, 'delete'), at(570, 'upsert', { ...a, key: 'nova.instance:b', id: 'b' }), at(0.5, 'upsert')];
    const model = new BaselineModel({ now: () => Date.parse(t(600)) });
    let state = emptyBaseline();
    const events: string[] = [];
    for (const o of late) {
      model.apply(o);
      const step = applyObservation(state, o);
      events.push(...step.events.map((e) => `${e.action} ${e.entity.id}`));
      state = step.state;
    }
    expect(events).toEqual(['create a', 'delete a', 'create b']);
    expect([...state.tombstones.keys()]).toEqual(['nova.instance:a']);
    expect([...model.tombstones.keys()]).toEqual(['nova.instance:a']);
  });

  it('sameMeaning, entityHash and changedFields agree with the model on any two entities', () => {
    checkMeaning({ numRuns: 3000 });
  });
});
