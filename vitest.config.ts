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
  },
});
