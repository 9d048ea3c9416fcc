import { defineConfig } from 'vitest/config';

/**
 * The unit tests alone (test/unit): no RabbitMQ, no build, no global setup. Stryker runs these
 * for every mutant (stryker.config.mjs); `npx vitest run -c vitest.unit.config.ts` runs them too.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    testTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
