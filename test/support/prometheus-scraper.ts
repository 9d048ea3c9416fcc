import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { sleep } from './wait.js';

/** The Debian package's binaries (prometheus 2.42). */
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
export const PROMTOOL_BIN = process.env.PROMTOOL_BIN ?? '/usr/bin/promtool';

/** What is missing to run a real Prometheus, or undefined when it is there. */
export function prometheusMissing(): string | undefined {
  const absent = [PROMETHEUS_BIN, PROMTOOL_BIN].filter((b) => !existsSync(b));
  return absent.length ? `${absent.join(' and ')} (Debian package prometheus; scripts/test.sh installs it)` : undefined;
}

/** `promtool check metrics` over an exposition: its exit code and what it printed. */
export function promtoolCheck(exposition: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(PROMTOOL_BIN, ['check', 'metrics'], (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
    child.stdin?.end(exposition);
  });
}

export interface RunningPrometheus {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** GET /api/v1/<path>: the `data` of a success answer. */
  api<T>(path: string): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Starts a private Prometheus on a loopback port scraping `target` (`host:port`) every second:
 * its own data dir and config; ready when `/-/ready` answers 200. `stop()` ends it and removes its folder.
 */
export async function startPrometheus(target: string): Promise<RunningPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-'));
  const config = join(dir, 'prometheus.yml');
  await writeFile(config, `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: synchronizer\n    static_configs:\n      - targets: ['${target}']\n`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(PROMETHEUS_BIN, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let gone = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => (gone = true));
  const stop = async (): Promise<void> => {
    if (!gone) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (gone) {
      await stop();
      throw new Error(`${PROMETHEUS_BIN} exited before it was ready: ${stderr}`);
    }
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${PROMETHEUS_BIN} not ready on ${url} after 30 s: ${stderr}`);
    }
    await sleep(100);
  }
  return {
    url,
    async api<T>(path: string): Promise<T> {
      const res = await fetch(`${url}/api/v1/${path}`, { signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as { status: string; data: T; error?: string };
      if (body.status !== 'success') throw new Error(`GET /api/v1/${path}: ${body.error ?? res.status}`);
      return body.data;
    },
    stop,
  };
}
