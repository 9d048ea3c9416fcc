/**
 * The Dockerfile, built and run when a working docker is at hand: the container runs as a non-root
 * user, its HEALTHCHECK (/livez) turns healthy, and /readyz answers through the published port.
 * Without docker (or its daemon) the test is skipped with a notice naming what is missing.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { root } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);

function dockerMissing(): string | undefined {
  try {
    execFileSync('sh', ['-c', 'command -v docker'], { stdio: 'ignore' });
  } catch {
    return 'the docker command (not installed)';
  }
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    return 'a running docker daemon (`docker info` fails: cannot connect to the daemon)';
  }
  return undefined;
}

const missing = dockerMissing();
if (missing) console.warn(`SKIPPED Dockerfile build-and-run test: missing ${missing}`);

describe.skipIf(missing !== undefined)('Dockerfile', () => {
  const tag = `synchronizer-test:${process.pid}`;
  let container: string | undefined;
  afterAll(async () => {
    if (container) await run('docker', ['rm', '-f', container]).catch(() => undefined);
    await run('docker', ['rmi', '-f', tag]).catch(() => undefined);
  });

  it('builds, runs as non-root, turns healthy on /livez, and is ready on the published port', { timeout: 600_000 }, async () => {
    await run('docker', ['build', '-t', tag, '.'], { cwd: root, maxBuffer: 64 << 20 });
    container = (await run('docker', ['run', '-d', '-p', '127.0.0.1::9464', '--health-interval', '1s', tag])).stdout.trim();
    const user = (await run('docker', ['exec', container, 'id', '-u'])).stdout.trim();
    expect(user).not.toBe('0');
    const health = await waitFor('the container to be healthy', async () => {
      const status = (await run('docker', ['inspect', '--format', '{{.State.Health.Status}}', container!])).stdout.trim();
      return status === 'healthy' ? status : status === 'unhealthy' ? `unhealthy` : undefined;
    }, 120_000);
    expect(health).toBe('healthy');
    const port = (await run('docker', ['port', container, '9464/tcp'])).stdout.trim().split('\n')[0]!;
    expect(port).toMatch(/^127\.0\.0\.1:\d+$/);
    const ready = await fetch(`http://${port}/readyz`);
    expect(ready.status).toBe(200);
  });
});
