/**
 * A private RabbitMQ node for tests and benchmarks, from the Debian package `rabbitmq-server`,
 * started without systemd (../shared/notes/components.md): free loopback ports, its own data and
 * log dirs, its own HOME (Erlang cookie) and its own epmd on a private port bound to 127.0.0.1.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as amqpConnect } from 'amqplib';
import { AddressInUse, freePort, onFreePort, saysAddressInUse } from './ports.js';

export { freePort };

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

/**
 * True when an AMQP 0-9-1 broker completes the handshake at `url` (connection.open-ok), within
 * `timeoutMs`: something else accepting on the port does not count.
 */
export async function amqpAnswers(url: string, timeoutMs = 5000): Promise<boolean> {
  const attempt = amqpConnect(url, { timeout: timeoutMs });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
  try {
    const connection = await Promise.race([attempt, timedOut]);
    if (connection === undefined) {
      // Close it should it still open late.
      attempt.then((c) => c.close()).catch(() => undefined);
      return false;
    }
    await connection.close();
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
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
  /** How long to wait for readiness, ms (default 120 s: the node takes 6–9 s on an idle box, far more on a busy one). */
  startTimeoutMs?: number;
  /**
   * Also listen for amqps on a loopback port (`tlsPort`, `tlsUrl`) with these PEM files; with
   * `verifyPeer`, clients that present a certificate must have one signed by `ca`.
   */
  tls?: { ca: string; cert: string; key: string; verifyPeer?: boolean; requireClientCert?: boolean };
  /** More rabbitmq.conf lines (limits such as `max_message_size = 262144`). */
  config?: string[];
  /** Plugins enabled at boot (their enabled_plugins file), e.g. `rabbitmq_consistent_hash_exchange`. */
  plugins?: string[];
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
    options: RabbitOptions = {},
    /** The amqps port when started with `tls`. */
    readonly tlsPort?: number,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), PREFIX));
    writeFileSync(join(this.dir, 'owner.pid'), String(process.pid));
    this.nodeName = `${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}@localhost`;
    const tls = options.tls;
    const tlsLines =
      tls && tlsPort !== undefined
        ? [
            `listeners.ssl.default = 127.0.0.1:${tlsPort}`,
            `ssl_options.cacertfile = ${tls.ca}`,
            `ssl_options.certfile = ${tls.cert}`,
            `ssl_options.keyfile = ${tls.key}`,
            `ssl_options.verify = ${tls.verifyPeer ? 'verify_peer' : 'verify_none'}`,
            `ssl_options.fail_if_no_peer_cert = ${tls.requireClientCert ? 'true' : 'false'}`,
          ]
        : [];
    writeFileSync(join(this.dir, 'rabbitmq.conf'), ['loopback_users.guest = true', 'disk_free_limit.absolute = 10MB', 'log.console = false', ...tlsLines, ...(options.config ?? []), ''].join('\n'));
    writeFileSync(join(this.dir, 'enabled_plugins'), `[${(options.plugins ?? []).join(',')}].\n`);
    writeFileSync(join(this.dir, 'rabbitmq-env.conf'), '');
  }

  /**
   * Starts a node on free ports and waits until it completes an AMQP handshake; when one of its
   * ports was taken before the node bound it, starts again on others.
   */
  static async start(options: RabbitOptions = {}): Promise<RabbitNode> {
    if (!existsSync(SERVER)) {
      throw new Error(`${SERVER} not found: install the Debian package rabbitmq-server (scripts/test.sh does)`);
    }
    reapStaleNodes();
    return onFreePort(async (port, distPort, epmdPort, tlsPort) => {
      const node = new RabbitNode(port!, distPort!, epmdPort!, options.name ?? 'synctest', options, options.tls ? tlsPort : undefined);
      try {
        await node.boot(options.startTimeoutMs ?? 120_000);
      } catch (e) {
        await node.dispose();
        throw e;
      }
      return node;
    }, options.tls ? 4 : 3);
  }

  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}/`;
  }

  /** amqps:// URL of the TLS listener (started with `tls`). */
  get tlsUrl(): string {
    if (this.tlsPort === undefined) throw new Error('this node was started without tls');
    return `amqps://guest:guest@127.0.0.1:${this.tlsPort}/`;
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
    // Ready when the broker itself answers an AMQP handshake (the port opens at the very end of
    // the boot; another program on the port would not complete one), and its amqps port is open.
    while (!(await portOpen(this.port)) || !(await amqpAnswers(this.url)) || (this.tlsPort !== undefined && !(await portOpen(this.tlsPort)))) {
      if (exited !== undefined) {
        if (saysAddressInUse(this.output + this.logs())) throw new AddressInUse('rabbitmq-server', this.port, this.output);
        throw new Error(`rabbitmq-server exited with ${exited} before it was ready:\n${this.output}`);
      }
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

  /**
   * Runs `rabbitmqctl` against this node (its HOME holds the cookie, its epmd port finds it), e.g.
   * `close_connection`; resolves with its stdout. About a second of CPU per call: keep it rare.
   */
  ctl(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile('/usr/lib/rabbitmq/bin/rabbitmqctl', ['-n', this.nodeName, ...args], { env: this.env(), timeout: 60_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`rabbitmqctl ${args.join(' ')}: ${error.message}\n${stdout}${stderr}`));
        else resolve(stdout);
      });
    });
  }

  /** The node's log files (the console log is off), for the reason of a failed boot. */
  private logs(): string {
    const dir = join(this.dir, 'log');
    try {
      return readdirSync(dir)
        .map((f) => readFileSync(join(dir, f), 'utf8'))
        .join('\n');
    } catch {
      return '';
    }
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
