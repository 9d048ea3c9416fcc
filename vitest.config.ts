import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration suites share one RabbitMQ node and one build; two cores are enough for two forks.
    pool: 'forks',
    maxWorkers: 2,
    // `--coverage` (scripts/test.sh): per-folder floors at the figures measured when they were set
    // (2026-11-30: a shuffled full run), rounded down to a whole percent because paths that depend
    // on timing (reconnects, retries) vary by a few tenths between runs. Coverage only goes up:
    // raise a floor when a change raises its figure, never lower one.
    coverage: {
      provider: 'v8',
      include: ['operators/**/*.ts', 'src/**/*.ts', 'sources/**/*.ts'],
      reporter: ['text-summary', 'json-summary'],
      reportsDirectory: 'coverage',
      thresholds: {
        'operators/**/*.ts': { lines: 97, branches: 91, functions: 98, statements: 96 },
        'src/**/*.ts': { lines: 87, branches: 78, functions: 82, statements: 84 },
        'sources/**/*.ts': { lines: 95, branches: 79, functions: 94, statements: 91 },
      },
    },
  },
});
