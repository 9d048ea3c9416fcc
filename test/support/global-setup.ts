import { execFile } from 'node:child_process';
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

/** Builds dist/ (the CLI tests run the real built CLI), without blocking the event loop. */
function build(): Promise<void> {
  const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root }, (error, stdout, stderr) => {
      if (error) reject(new Error(`tsc -p tsconfig.build.json failed:\n${stdout}${stderr}`));
      else resolve();
    });
  });
}

/**
 * Once per test run: build dist/ and start one RabbitMQ node, at the same time. The broker starts
 * for every run, whichever files it selects, so that every file passes alone (a guess from the
 * file names went wrong for cli.test.ts); SYNC_TEST_RABBITMQ=0 leaves it off, and the tests that
 * need it then fail saying so.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const wanted = process.env.SYNC_TEST_RABBITMQ !== '0';
  // scripts/test.sh builds once for its several runs.
  const [built, started] = await Promise.allSettled([process.env.SYNC_TEST_BUILT === '1' ? undefined : build(), wanted ? RabbitNode.start({ name: 'vitest', plugins: ['rabbitmq_consistent_hash_exchange'] }) : undefined]);
  const broker = started.status === 'fulfilled' ? started.value : undefined;
  if (built.status === 'rejected') {
    await broker?.dispose();
    throw built.reason;
  }
  if (started.status === 'rejected') throw started.reason;
  project.provide('rabbitUrl', broker?.url ?? '');
  return async () => {
    await broker?.dispose();
  };
}
