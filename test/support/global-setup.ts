import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { RabbitNode } from './rabbitmq.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

declare module 'vitest' {
  interface ProvidedContext {
    /** amqp:// URL of the run's private RabbitMQ node ('' when this run did not start one). */
    rabbitUrl: string;
  }
}

/**
 * Whether this run needs the broker: always for a full run or a folder; for a run limited to
 * named test files, only when one of them is a RabbitMQ test (a broker costs ~6 s of CPU to boot
 * on a shared box). SYNC_TEST_RABBITMQ=1/0 forces it on/off.
 */
function wantsBroker(): boolean {
  const forced = process.env.SYNC_TEST_RABBITMQ;
  if (forced !== undefined) return forced !== '0';
  const filters = process.argv.slice(2).filter((a) => !a.startsWith('-') && !['run', 'watch', 'dev', 'related'].includes(a));
  return filters.length === 0 || filters.some((f) => /notification|amqp|rabbit/i.test(f) || (!f.includes('.test') && f.includes('/')));
}

/** Once per test run: build dist/ (the CLI tests run the real built CLI) and start one RabbitMQ node. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  execFileSync(process.execPath, [fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url)), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
  const broker = wantsBroker() ? await RabbitNode.start({ name: 'vitest' }) : undefined;
  project.provide('rabbitUrl', broker?.url ?? '');
  return async () => {
    await broker?.dispose();
  };
}
