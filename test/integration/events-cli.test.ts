import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { EntityEvent } from '../../src/model.js';
import { waitFor } from '../support/wait.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'events-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the documented events example, through the real CLI', () => {
  it('takes a POST with the token from the environment and prints the event on stdout', async () => {
    // The example as documented, on a port of the OS's choosing.
    const config = join(dir, 'events.yaml');
    writeFileSync(config, readFileSync(join(root, 'docs', 'examples', 'events.yaml'), 'utf8').replace('127.0.0.1:9097', '127.0.0.1:0'));
    const child = spawn(process.execPath, [join(root, 'bin', 'synchronizer.js'), '--config', config], { env: { ...process.env, SYNC_EVENTS_TOKEN: 's3cret' } });
    try {
      const events: EntityEvent[] = [];
      let stderr = '';
      createInterface({ input: child.stdout }).on('line', (line) => events.push(JSON.parse(line) as EntityEvent));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const listen = await waitFor('the listen log line', () => /"msg":"listening for pushes",(?:"source":"doctor",)?"listen":"([^"]+)"/.exec(stderr)?.[1], { context: () => stderr });
      const post = (token: string) =>
        fetch(`http://${listen}/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify([{ type: 'doctor.host', id: 'compute-1', state: 'down' }]),
        });
      expect((await post('wrong')).status).toBe(401);
      const res = await post('s3cret');
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ applied: 1, results: [{ index: 0, action: 'upsert', key: 'doctor.host:compute-1' }] });
      await waitFor('the event line', () => events.length > 0, { context: () => stderr });
      expect(events[0]).toMatchObject({ action: 'create', origin: 'notification', entity: { key: 'doctor.host:compute-1', state: 'DOWN', source: 'doctor' } });
      expect(stderr).not.toContain('s3cret');
    } finally {
      child.kill('SIGTERM');
    }
  });
});
