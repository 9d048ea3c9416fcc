import { type ChildProcess, spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, constants, existsSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AddressInUse, onFreePort, saysAddressInUse } from './ports.js';

/** Debian's nagios4 + nagios4-cgi + apache2. */
export const NAGIOS_BIN = '/usr/sbin/nagios4';
export const APACHE_BIN = '/usr/sbin/apache2';
const CGI_DIR = '/usr/lib/cgi-bin/nagios4';
const MODULES = '/usr/lib/apache2/modules';

export interface RunningNagios {
  /** The cgi-bin folder: `http://127.0.0.1:<port>/cgi-bin/nagios4`. */
  url: string;
  /** Authorized for all hosts and services. */
  admin: { username: string; password: string };
  /** Authenticated but in no authorized_for_* list: the CGIs answer 200 with empty lists. */
  viewer: { username: string; password: string };
  /** Writes external commands to the command FIFO (`PROCESS_SERVICE_CHECK_RESULT;…`), stamped now. */
  command(...lines: string[]): void;
  /** ms from spawning Nagios and Apache to statusjson.cgi listing the hosts. */
  startMs: number;
  stop(): Promise<void>;
}

/**
 * The objects of the test Nagios: passive-only checks, so only the test moves their states. One
 * host (with its nova-compute service) per test that changes states, so tests run in any order.
 */
// The command is our own so the test needs no monitoring-plugins package (a Recommends only).
export const NAGIOS_HOSTS = ['compute-1.example', 'compute-2.example', 'compute-3.example'] as const;
const OBJECTS = `
define command {
  command_name           synchronizer-test-noop
  command_line           /bin/true
}
${NAGIOS_HOSTS.map(
  (host) => `define host {
  use                    linux-server
  host_name              ${host}
  address                127.0.0.1
  check_command          synchronizer-test-noop
  active_checks_enabled  0
  passive_checks_enabled 1
  max_check_attempts     1
}
define service {
  use                    local-service
  host_name              ${host}
  service_description    nova-compute
  check_command          synchronizer-test-noop
  active_checks_enabled  0
  passive_checks_enabled 1
  max_check_attempts     1
}
`,
).join('')}`;

function stopChild(child: ChildProcess, exited: Promise<void>, isGone: () => boolean): Promise<void> {
  // The whole group: Nagios's check workers and Apache's CGI children go with their parent.
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  // A parent that exited on its own may have left its group behind: signalled above, nothing to wait for.
  if (isGone()) return Promise.resolve();
  const killer = setTimeout(() => signal('SIGKILL'), 5000);
  return exited.finally(() => clearTimeout(killer));
}

function run(bin: string, args: string[]): { child: ChildProcess; exited: Promise<void>; gone: () => boolean; output: () => string } {
  // Own process group: Nagios signals its whole group when it stops, which must not be the test runner's.
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let gone = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    gone = true;
  });
  return { child, exited, gone: () => gone, output: () => out };
}

/**
 * Starts a private Nagios Core 4 (foreground, own nagios.cfg with every path in a temp folder,
 * status written every second) and Apache serving its CGIs with basic auth on a loopback port.
 * Ready when statusjson.cgi lists the test host. `stop()` ends both and removes the folder.
 */
export async function startNagios(): Promise<RunningNagios> {
  for (const bin of [NAGIOS_BIN, APACHE_BIN, `${CGI_DIR}/statusjson.cgi`]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: install the Debian packages nagios4 nagios4-cgi apache2 (scripts/test.sh does)`);
  }
  // Apache cannot bind port 0 and say which it got: a port taken before it binds means another try.
  return onFreePort((port) => startOn(port!));
}

async function startOn(port: number): Promise<RunningNagios> {
  const t0 = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'nagios-'));
  for (const d of ['var', 'var/rw', 'var/spool', 'log', 'run']) await mkdir(join(dir, d), { recursive: true });
  const debian = await readFile('/etc/nagios4/nagios.cfg', 'utf8');
  const set: Record<string, string> = {
    log_file: `${dir}/log/nagios.log`,
    object_cache_file: `${dir}/var/objects.cache`,
    precached_object_file: `${dir}/var/objects.precache`,
    status_file: `${dir}/var/status.dat`,
    status_update_interval: '1',
    command_file: `${dir}/var/rw/nagios.cmd`,
    lock_file: `${dir}/var/nagios.lock`,
    temp_file: `${dir}/var/nagios.tmp`,
    temp_path: `${dir}/var`,
    use_syslog: '0',
    check_result_path: `${dir}/var/spool`,
    state_retention_file: `${dir}/var/retention.dat`,
    retain_state_information: '0',
    log_archive_path: `${dir}/log`,
    check_for_updates: '0',
  };
  const lines = debian
    .split('\n')
    // Our own objects only: the sample's active checks would move states on their own.
    .filter((l) => !/^cfg_(dir|file)=/.test(l))
    .map((l) => {
      const key = /^([a-z_]+)=/.exec(l)?.[1];
      return key !== undefined && set[key] !== undefined ? `${key}=${set[key]}` : l;
    });
  for (const f of ['commands', 'contacts', 'timeperiods', 'templates']) lines.push(`cfg_file=/etc/nagios4/objects/${f}.cfg`);
  lines.push(`cfg_file=${dir}/objects.cfg`, `query_socket=${dir}/var/rw/nagios.qh`);
  await writeFile(join(dir, 'nagios.cfg'), lines.join('\n') + '\n');
  await writeFile(join(dir, 'objects.cfg'), OBJECTS);
  const cgi = (await readFile('/etc/nagios4/cgi.cfg', 'utf8')).replace(/^main_config_file=.*$/m, `main_config_file=${dir}/nagios.cfg`).replace(/^use_authentication=.*$/m, 'use_authentication=1');
  await writeFile(join(dir, 'cgi.cfg'), cgi);
  const admin = { username: 'nagiosadmin', password: 'admin-pw' };
  const viewer = { username: 'viewer', password: 'viewer-pw' };
  const htpasswd = [admin, viewer].map((u) => `${u.username}:${execFileSync('openssl', ['passwd', '-apr1', u.password], { encoding: 'utf8' }).trim()}`).join('\n');
  await writeFile(join(dir, 'htpasswd'), htpasswd + '\n');
  await writeFile(
    join(dir, 'httpd.conf'),
    [
      `ServerRoot ${dir}`,
      'ServerName 127.0.0.1',
      `Listen 127.0.0.1:${port}`,
      `PidFile ${dir}/run/httpd.pid`,
      `DefaultRuntimeDir ${dir}/run`,
      `ErrorLog ${dir}/log/httpd-error.log`,
      ...['mpm_prefork', 'authz_core', 'authz_user', 'authn_core', 'authn_file', 'auth_basic', 'alias', 'cgi', 'env'].map((m) => `LoadModule ${m}_module ${MODULES}/mod_${m}.so`),
      // Apache ignores User/Group when not started as root.
      'User nagios',
      'Group nagios',
      `ScriptAlias /cgi-bin/nagios4 ${CGI_DIR}`,
      `<Directory ${CGI_DIR}>`,
      `  SetEnv NAGIOS_CGI_CONFIG ${dir}/cgi.cfg`,
      '  AuthType Basic',
      '  AuthName nagios',
      `  AuthUserFile ${dir}/htpasswd`,
      '  Require valid-user',
      '</Directory>',
    ].join('\n') + '\n',
  );
  // Started as root, Nagios and the CGIs run as the nagios user: it must reach every file here.
  execFileSync('chmod', ['-R', 'a+rwX', dir]);
  chmodSync(dir, 0o777);

  const nagios = run(NAGIOS_BIN, [join(dir, 'nagios.cfg')]);
  const apache = run(APACHE_BIN, ['-f', join(dir, 'httpd.conf'), '-DFOREGROUND']);
  const stop = async (): Promise<void> => {
    await Promise.all([stopChild(nagios.child, nagios.exited, nagios.gone), stopChild(apache.child, apache.exited, apache.gone)]);
    await rm(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}/cgi-bin/nagios4`;
  const authorization = `Basic ${Buffer.from(`${admin.username}:${admin.password}`).toString('base64')}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (nagios.gone() || apache.gone()) {
      const why = `nagios: ${nagios.output()} apache: ${apache.output()}`;
      await stop();
      if (apache.gone() && saysAddressInUse(apache.output())) throw new AddressInUse(APACHE_BIN, port, why);
      throw new Error(`Nagios or Apache exited before ready: ${why}`);
    }
    try {
      const res = await fetch(`${url}/statusjson.cgi?query=hostlist`, { headers: { authorization }, signal: AbortSignal.timeout(1000) });
      if (res.ok && (await res.text()).includes('"compute-1.example"')) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Nagios CGIs not ready on ${url} after 20 s: ${nagios.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const startMs = Date.now() - t0;
  return {
    url,
    admin,
    viewer,
    startMs,
    command: (...commands) => {
      // Non-blocking: with no Nagios reading the FIFO this fails (ENXIO) instead of hanging.
      const fd = openSync(join(dir, 'var/rw/nagios.cmd'), constants.O_WRONLY | constants.O_NONBLOCK);
      try {
        const now = Math.floor(Date.now() / 1000);
        writeSync(fd, commands.map((c) => `[${now}] ${c}\n`).join(''));
      } finally {
        closeSync(fd);
      }
    },
    stop,
  };
}
