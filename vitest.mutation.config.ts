import { defineConfig, mergeConfig } from 'vitest/config';
import unit from './vitest.unit.config.js';

/**
 * What Stryker runs for each mutant (stryker.config.mjs): the unit tests without the property
 * tests. Those run thousands of cases each (seconds per mutant, and timeouts on a loaded box),
 * which made a mutation run take hours; they still run in every `npm test`. The score is then
 * that of the example tests alone: a stricter measure, not a looser one.
 */
export default mergeConfig(
  unit,
  defineConfig({
    test: {
      exclude: ['**/node_modules/**', '**/*.property.test.ts'],
      // Not `isolate: false`, though it made runs about four times faster: modules then keep
      // their state (normalizeEntity's caches, the hash buffer) from one mutant's run to the
      // next, and a run reported a mutant that its test kills as surviving (docs/testing.md).
    },
  }),
);
