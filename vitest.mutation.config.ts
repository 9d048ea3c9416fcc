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
      // Modules shared between test files (`isolate: false`): each file no longer re-imports
      // amqplib, axios, lmdb, the Kubernetes client… (about 1 s a file, most of a mutant's
      // run). Our own modules are still fresh for every file (test/support/fresh-modules.ts), so
      // no state — normalizeEntity's caches, the hash buffer — outlives one mutant's run.
      isolate: false,
      setupFiles: ['test/support/fresh-modules.ts'],
    },
  }),
);
