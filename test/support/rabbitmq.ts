/**
 * A private RabbitMQ node for tests and benchmarks, from the Debian package `rabbitmq-server`,
 * started without systemd (../shared/notes/components.md): free loopback ports, its own data and
 * log dirs, its own HOME (Erlang cookie) and its own epmd on a private port bound to 127.0.0.1.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export { freePort };
import { setTimeout as sleep } from 'node:timers/promises';

const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';
export { SERVER as RABBITMQ_SERVER };

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    const done = (open: boolean): void => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** A process is gone when /proc has no entry for it or it is a zombie (PID 1 here never reaps). */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name (which may itself hold spaces).
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

const PREFIX = 'sync-rabbit-';

/**
 * Removes what earlier runs that were killed before their teardown left behind: for a node dir
 * whose owning process is gone, its beam.smp and epmd (found by their HOME, which is that dir)
 * are killed by pid and the dir removed. Nodes of live runs are left alone.
 */
function reapStaleNodes(): void {
  const base = tmpdir();
  const stale = readdirSync(base)
    .filter((d) => d.startsWith(PREFIX))
    .map((d) => join(base, d))
    .filter((dir) => {
      try {
        return processGone(Number(readFileSync(join(dir, 'owner.pid'), 'utf8')));
      } catch {
        return false;
      }
    });
  if (stale.length === 0) return;
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (stale.some((dir) => env.includes(`HOME=${dir}`))) process.kill(Number(entry), 'SIGKILL');
    } catch {
      // gone, or not ours to read
    }
  }
  for (const dir of stale) rmSync(dir, { recursive: true, force: true });
}

export interface RabbitOptions {
  /** Node name prefix; a random suffix keeps parallel runs apart. */
  name?: string;
  /** How long to wait for readiness, ms (default 60 s: the node takes 6–9 s on an idle box). */
  startTimeoutMs?: number;
}

/** A running private node. `url` is an amqp:// URL with guest/guest on loopback. */
export class RabbitNode {
  readonly dir: string;
  readonly nodeName: string;
  private child: ChildProcess | undefined;
  private beamPid: number | undefined;
  private output = '';

  private constructor(
    readonly port: number,
    readonly distPort: number,
    readonly epmdPort: number,
    name: string,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), PREFIX));
    writeFileSync(join(this.dir, 'owner.pid'), String(process.pid));
    this.nodeName = `${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}@localhost`;
    writeFileSync(join(this.dir, 'rabbitmq.conf'), ['loopback_users.guest = true', 'disk_free_limit.absolute = 10MB', 'log.console = false', ''].join('\n'));
    writeFileSync(join(this.dir, 'enabled_plugins'), '[].\n');
    writeFileSync(join(this.dir, 'rabbitmq-env.conf'), '');
  }

  /** Starts a node on free ports and waits until it accepts AMQP connections. */
  static async start(options: RabbitOptions = {}): Promise<RabbitNode> {
    if (!existsSync(SERVER)) {
      throw new Error(`${SERVER} not found: install the Debian package rabbitmq-server (scripts/test.sh does)`);
    }
    reapStaleNodes();
    const node = new RabbitNode(await freePort(), await freePort(), await freePort(), options.name ?? 'synctest');
    await node.boot(options.startTimeoutMs ?? 60_000);
    return node;
  }

  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}/`;
  }

  /** The oslo-style transport_url of this node. */
  get transportUrl(): string {
    return `rabbit://guest:guest@127.0.0.1:${this.port}/`;
  }

  private env(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: 'C.UTF-8',
      HOME: this.dir,
      RABBITMQ_NODENAME: this.nodeName,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      ERL_EPMD_PORT: String(this.epmdPort),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      RABBITMQ_MNESIA_BASE: join(this.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(this.dir, 'log'),
      RABBITMQ_CONFIG_FILE: join(this.dir, 'rabbitmq.conf'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(this.dir, 'enabled_plugins'),
      RABBITMQ_PID_FILE: join(this.dir, 'rabbitmq.pid'),
      RABBITMQ_CONF_ENV_FILE: join(this.dir, 'rabbitmq-env.conf'),
    };
  }

  private async boot(timeoutMs: number): Promise<void> {
    this.output = '';
    const child = spawn(SERVER, [], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString()).slice(-8000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let exited: number | null | undefined;
    child.once('exit', (code) => (exited = code));
    const deadline = Date.now() + timeoutMs;
    // The AMQP port opens at the very end of the boot, so it is the readiness signal.
    while (!(await portOpen(this.port))) {
      if (exited !== undefined) throw new Error(`rabbitmq-server exited with ${exited} before it was ready:\n${this.output}`);
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`rabbitmq-server not ready on 127.0.0.1:${this.port} after ${timeoutMs} ms:\n${this.output}`);
      }
      await sleep(200);
    }
    const pidFile = join(this.dir, 'rabbitmq.pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : child.pid;
    this.beamPid = Number.isInteger(pid) && pid! > 0 ? pid : child.pid;
  }

  /** SIGTERM to beam.smp, then waits until the process is gone and the port is closed. */
  async stop(timeoutMs = 30_000): Promise<void> {
    const pids = [this.beamPid, this.child?.pid].filter((p): p is number => p !== undefined);
    for (const pid of new Set(pids)) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + timeoutMs;
    while (pids.some((p) => !processGone(p)) || (await portOpen(this.port, 200))) {
      if (Date.now() > deadline) {
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
        break;
      }
      await sleep(100);
    }
    this.child = undefined;
    this.beamPid = undefined;
  }

  /** Stops and starts the same node (same data dir: durable queues and persistent messages survive). */
  async restart(timeoutMs = 60_000): Promise<void> {
    await this.stop();
    await this.boot(timeoutMs);
  }

  /** Stops the node and its epmd, and removes its files. */
  async dispose(): Promise<void> {
    await this.stop();
    try {
      // epmd outlives the node; ours listens on a private port, so this kills only ours.
      execFileSync('epmd', ['-port', String(this.epmdPort), '-kill'], { stdio: 'ignore', env: { ...process.env, ERL_EPMD_PORT: String(this.epmdPort) } });
    } catch {
      // not running
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
