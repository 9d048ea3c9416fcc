import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { sleep } from './wait.js';

/** A program a test started: its last output and a stop that waits for it to exit. */
export interface RunningProgram {
  child: ChildProcess;
  /** The last 8 KB of stdout and stderr, for failure messages. */
  output(): string;
  readonly exited: boolean;
  stop(): Promise<void>;
}

/**
 * Spawns `bin` and waits until `ready()` says so (polled every 100 ms, up to `timeoutMs`). Fails
 * naming the Debian package when the binary is missing, and with the program's output when it
 * exits or is not ready in time. `stop()` sends SIGTERM to its process group, then SIGKILL after 5 s.
 */
export async function startProgram(
  bin: string,
  args: readonly string[],
  options: { pkg: string; ready: () => Promise<boolean>; timeoutMs?: number; spawn?: SpawnOptions },
): Promise<RunningProgram> {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: install the Debian package ${options.pkg} (scripts/test.sh does)`);
  // Its own process group, so that stop() also ends the workers it forks (php -S workers,
  // zabbix_server's processes), which would otherwise outlive it.
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options.spawn });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // the group is gone already
    }
  };
  const stop = async (): Promise<void> => {
    if (!exited) {
      signalGroup('SIGTERM');
      const killer = setTimeout(() => signalGroup('SIGKILL'), 5000);
      await exit;
      clearTimeout(killer);
    }
    // Workers still alive after their parent (php -S) go with the group.
    signalGroup('SIGTERM');
  };
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    if (exited) throw new Error(`${bin} exited before it was ready: ${out}`);
    if (await options.ready().catch(() => false)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${bin} not ready after ${options.timeoutMs ?? 30_000} ms: ${out}`);
    }
    await sleep(100);
  }
  return {
    child,
    output: () => out,
    get exited() {
      return exited;
    },
    stop,
  };
}

/** Whether `url` answers 2xx. */
export async function answers(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  return res.ok;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}
