import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AddressInUse, onFreePort, saysAddressInUse } from './ports.js';

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
 * (`--cluster.listen-address=` empty, else it listens on 0.0.0.0:9094). Ready when this very
 * Alertmanager answers (`/api/v2/status` shows the config with its own receiver name, ~0.3 s), not
 * when something accepts on the port; a port taken before it binds it means a retry on another.
 * `config` replaces its alertmanager.yml (e.g. a webhook receiver; its first receiver's name is
 * then the readiness mark). `stop()` ends it and removes its folder.
 */
export async function startAlertmanager(options: { config?: string } = {}): Promise<RunningAlertmanager> {
  if (!existsSync(ALERTMANAGER_BIN)) throw new Error(`${ALERTMANAGER_BIN} is missing: install the Debian package prometheus-alertmanager (scripts/test.sh does)`);
  return onFreePort((port) => startOn(port!, options));
}

async function startOn(port: number, options: { config?: string }): Promise<RunningAlertmanager> {
  const dir = await mkdtemp(join(tmpdir(), 'alertmanager-'));
  const config = join(dir, 'alertmanager.yml');
  // By default one receiver that sends nowhere (the test reads the API, not notifications); its
  // name is this instance's own, so readiness can tell it from another program on the port.
  const own = `sync-test-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const receiver = options.config ? (/-\s*name:\s*['"]?([^'"\s]+)/.exec(options.config)?.[1] ?? 'route') : own;
  await writeFile(config, options.config ?? `route:\n  receiver: ${own}\nreceivers:\n  - name: ${own}\n`);
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
      if (saysAddressInUse(stderr)) throw new AddressInUse(ALERTMANAGER_BIN, port, stderr);
      throw new Error(`${ALERTMANAGER_BIN} exited before it was ready: ${stderr}`);
    }
    try {
      const res = await fetch(`${url}/api/v2/status`, { signal: AbortSignal.timeout(1000) });
      if (res.ok && (await res.text()).includes(receiver)) break;
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
