/**
 * The Dockerfile, built and run: the container runs as a non-root user with its config at
 * /etc/synchronizer and a state volume, its HEALTHCHECK (/livez) turns healthy, /readyz answers,
 * and its events come out on stdout. The daemon is the environment's or a private one
 * (test/support/docker.ts); the Node.js base image is node:20-bookworm-slim when the daemon holds
 * it, else one made from the Debian mirror by scripts/docker-base.sh (nothing is pulled from a
 * registry). Without a daemon the test is skipped with a notice naming what is missing.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { root } from '../support/cli.js';
import { type Docker, dockerMissing, startDocker } from '../support/docker.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

const missing = dockerMissing();
if (missing) console.warn(`SKIPPED Dockerfile build-and-run test: missing ${missing}`);

const TAG = 'synchronizer-test:latest';
const LOCAL_BASE = 'synchronizer-base:node20';

describe.skipIf(missing !== undefined)('Dockerfile', () => {
  let d: Docker;
  let container: string | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'synchronizer-docker-'));
  beforeAll(async () => {
    d = await startDocker();
  }, 900_000);
  afterAll(async () => {
    if (container) await d.docker(['rm', '-f', container]).catch(() => undefined);
    // The image stays tagged: the next run's build reuses its layers. Older builds go.
    await d?.docker(['image', 'prune', '-f']).catch(() => undefined);
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('builds, runs as non-root, turns healthy on /livez, is ready on loopback and prints events', { timeout: 1_200_000 }, async () => {
    let base = 'node:20-bookworm-slim';
    if (!(await d.docker(['image', 'inspect', base]).then(() => true, () => false))) {
      base = LOCAL_BASE;
      if (!(await d.docker(['image', 'inspect', base]).then(() => true, () => false))) {
        await promisify(execFile)('bash', [join(root, 'scripts', 'docker-base.sh'), base], { env: d.env, maxBuffer: 16 << 20 });
      }
    }
    // The build's containers use the host's network (a private daemon has no bridge) to reach npm.
    await d.docker(['build', '--network', 'host', '--build-arg', `NODE_IMAGE=${base}`, '-t', TAG, '.'], { cwd: root });
    const volumes = JSON.parse(await d.docker(['image', 'inspect', '--format', '{{json .Config.Volumes}}', TAG])) as Record<string, unknown>;
    expect(Object.keys(volumes)).toEqual(['/var/lib/synchronizer']);

    // The image's example config, listening on a free loopback port of the host's network.
    const port = await freePort();
    const config = join(dir, 'synchronizer.yaml');
    writeFileSync(config, readFileSync(join(root, 'deploy', 'docker', 'synchronizer.yaml'), 'utf8').replace(/^listen: .*$/m, `listen: 127.0.0.1:${port}`));
    container = (
      await d.docker(['run', '-d', '--network', 'host', '--health-interval', '1s', '-e', `SYNCHRONIZER_LIVEZ_URL=http://127.0.0.1:${port}/livez`, '-v', `${config}:/etc/synchronizer/synchronizer.yaml:ro`, TAG])
    ).trim();
    expect((await d.docker(['exec', container, 'id', '-u'])).trim()).not.toBe('0');
    const health = await waitFor(
      'the container to be healthy',
      async () => {
        const status = (await d.docker(['inspect', '--format', '{{.State.Health.Status}}', container!])).trim();
        return status === 'healthy' || status === 'unhealthy' ? status : undefined;
      },
      { timeoutMs: 120_000, context: () => `logs: ${container}` },
    );
    expect(health).toBe('healthy');
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) });
    expect(ready.status).toBe(200);
    // The example topology's events, one JSON line each, on the container's stdout.
    const logs = await d.docker(['logs', container]);
    const events = logs.split('\n').filter((l) => l.startsWith('{"action"')).map((l) => JSON.parse(l) as { action: string; entity: { type: string } });
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.action === 'create')).toBe(true);
  });
});
