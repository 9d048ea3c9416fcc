import { defineConfig, mergeConfig } from 'vitest/config';
import FastestFirst from './test/support/fastest-first.js';
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
      // fuzz.test.ts is property-based too (fast-check, 200 runs per property): seconds per mutant.
      exclude: ['**/node_modules/**', '**/*.property.test.ts', 'test/unit/fuzz.test.ts'],
      // Modules shared between test files (`isolate: false`): each file no longer re-imports
      // amqplib, axios, lmdb, the Kubernetes client… (about 1 s a file, most of a mutant's
      // run). Our own modules are still fresh for every file (test/support/fresh-modules.ts), so
      // no state — normalizeEntity's caches, the hash buffer — outlives one mutant's run.
      isolate: false,
      setupFiles: ['test/support/fresh-modules.ts'],
      // The mutation tests first, then the quickest files: Stryker stops a mutant's run at its first failure.
      sequence: { sequencer: FastestFirst },
    },
  }),
);
