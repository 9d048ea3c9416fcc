import { describe, it } from 'vitest';
import { checkMeaning, checkPreparedSteps, checkSteps } from '../support/baseline-model-checks.js';

/**
 * The reference-model comparisons of baseline-model.property.test.ts, with a fixed seed and a few
 * hundred runs: the share of them a mutation run can afford for each mutant (the property tests
 * are left out of it, docs/testing.md "How a run works"). Fixed, so that a mutant is judged on the
 * same sequences every time; the property tests go on drawing new ones in every `npm test`.
 */
const SEED = 16;

describe('the baseline against its reference model, a fixed sample', () => {
  it('emits the same events, step by step, and ends in the same entities and tombstones', () => {
    checkSteps({ seed: SEED, numRuns: 120 });
  });

  it('steps a snapshot prepared in slices, amid other observations, exactly as the model says', () => {
    checkPreparedSteps({ seed: SEED, numRuns: 120 });
  });

  it('in time order (tombstones expiring all through), the same events and tombstones after every step', () => {
    checkSteps({ seed: SEED, numRuns: 120 }, { timeline: true });
    checkPreparedSteps({ seed: SEED, numRuns: 120 }, { timeline: true });
  });

  it('agrees with the model on sameMeaning, entityHash and changedFields', () => {
    checkMeaning({ seed: SEED, numRuns: 300 });
  });
});
