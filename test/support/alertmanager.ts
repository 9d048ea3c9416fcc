import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

/** The Debian package's binary (prometheus-alertmanager 0.25). */
export const ALERTMANAGER_BIN = process.env.ALERTMANAGER_BIN ?? '/usr/bin/prometheus-alertmanager';

export interface RunningAlertmanager {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** POST /api/v2/alerts. */
  post(alerts: unknown[]): Promise<void>;
  /** POST /api/v2/silences; resolves with the silence id. */
  silence(matchers: { name: string; value: string }[], minutes?: number): Promise<string>;
  stop(): Promise<void>;
}

async function request(url: string, init?: RequestInit): Promise<Response> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url} failed with ${res.status}: ${await res.text()}`);
  return res;
}

/**
 * Starts a private Alertmanager on a loopback port: its own storage dir and config, gossip off
 * (`--cluster.listen-address=` empty, else it listens on 0.0.0.0:9094), ready when `/-/ready`
 * answers 200 (~0.3 s). `config` replaces its alertmanager.yml (e.g. a webhook receiver). `stop()`
 * ends it and removes its folder.
 */
export async function startAlertmanager(options: { config?: string } = {}): Promise<RunningAlertmanager> {
  if (!existsSync(ALERTMANAGER_BIN)) throw new Error(`${ALERTMANAGER_BIN} is missing: install the Debian package prometheus-alertmanager (scripts/test.sh does)`);
  const dir = await mkdtemp(join(tmpdir(), 'alertmanager-'));
  const config = join(dir, 'alertmanager.yml');
  // By default one receiver that sends nowhere: the test reads the API, not notifications.
  await writeFile(config, options.config ?? 'route:\n  receiver: none\nreceivers:\n  - name: none\n');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    ALERTMANAGER_BIN,
    [`--config.file=${config}`, `--storage.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=', '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const stop = async (): Promise<void> => {
    if (!gone) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (gone) {
      await stop();
      throw new Error(`${ALERTMANAGER_BIN} exited before it was ready: ${stderr}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${ALERTMANAGER_BIN} not ready on ${url} after 15 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    post: async (alerts) => {
      await request(`${url}/api/v2/alerts`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(alerts) });
    },
    silence: async (matchers, minutes = 60) => {
      const now = Date.now();
      const res = await request(`${url}/api/v2/silences`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          matchers: matchers.map((m) => ({ ...m, isRegex: false, isEqual: true })),
          startsAt: new Date(now).toISOString(),
          endsAt: new Date(now + minutes * 60_000).toISOString(),
          createdBy: 'synchronizer tests',
          comment: 'test',
        }),
      });
      return ((await res.json()) as { silenceID: string }).silenceID;
    },
    stop,
  };
}
