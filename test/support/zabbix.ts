import { execFile } from 'node:child_process';
import { chownSync, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, freePortIn } from './ports.js';
import { type RunningProgram, portOpen, startProgram } from './program.js';

const run = promisify(execFile);

const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
export const ZABBIX_SERVER_BIN = process.env.ZABBIX_SERVER_BIN ?? '/usr/sbin/zabbix_server';
const ZABBIX_SENDER_BIN = process.env.ZABBIX_SENDER_BIN ?? '/usr/bin/zabbix_sender';
const SCHEMA_DIR = '/usr/share/zabbix-server-pgsql';
const FRONTEND = '/usr/share/zabbix';

export interface RunningZabbix {
  /** The frontend folder's URL (`api_jsonrpc.php` is below it). */
  url: string;
  /** A JSON-RPC call as Admin (logs in once). */
  call(method: string, params: unknown): Promise<unknown>;
  /** zabbix_sender of one value to a trapper item; resolves once the server processed it. */
  send(host: string, key: string, value: string): Promise<void>;
  stop(): Promise<void>;
}

/** Looks up a system user's uid and gid (the PostgreSQL cluster must not run as root). */
async function ids(user: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no system user ${user}: install the Debian package postgresql (scripts/test.sh does)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * Zabbix 6.0 as the Debian packages run it, privately on loopback, in the lightest arrangement
 * that runs the real API and trapper: a PostgreSQL 15 cluster of its own (trust auth, loopback
 * port) with Zabbix's schema and data loaded (~15 s), `zabbix_server` in the foreground (config
 * cache refreshed every 2 s, few processes) and the frontend copied (hard links) with its own
 * zabbix.conf.php, served by PHP's built-in server. `stop()` ends all three and removes the folder.
 */
export async function startZabbix(): Promise<RunningZabbix> {
  for (const [bin, pkg] of [
    [join(PG_BIN, 'initdb'), 'postgresql'],
    [ZABBIX_SERVER_BIN, 'zabbix-server-pgsql'],
    [join(FRONTEND, 'api_jsonrpc.php'), 'zabbix-frontend-php'],
    ['/usr/bin/php', 'php-cli'],
    [ZABBIX_SENDER_BIN, 'zabbix-sender'],
  ] as const) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: install the Debian package ${pkg} (scripts/test.sh does)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'zabbix-'));
  await chmod(dir, 0o755);
  const programs: RunningProgram[] = [];
  const stop = async (): Promise<void> => {
    for (const p of programs.reverse()) await p.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // PostgreSQL refuses to run as root: its cluster belongs to the postgres user.
    const pg = join(dir, 'pg');
    await mkdir(pg);
    const root = userInfo().uid === 0;
    const owner = root ? await ids('postgres') : undefined;
    if (owner) chownSync(pg, owner.uid, owner.gid);
    await run(join(PG_BIN, 'initdb'), ['-D', pg, '-A', 'trust', '-U', 'zabbix', '-E', 'UTF8', '--no-sync'], owner ? { uid: owner.uid, gid: owner.gid } : {});
    const pgPort = await freePort();
    programs.push(
      await startProgram(join(PG_BIN, 'postgres'), ['-D', pg, '-h', '127.0.0.1', '-p', String(pgPort), '-k', pg, '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'], {
        pkg: 'postgresql',
        spawn: owner ? { uid: owner.uid, gid: owner.gid } : {},
        ready: async () => (await run(join(PG_BIN, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(pgPort)]).then(() => true)),
      }),
    );
    const psql = `${join(PG_BIN, 'psql')} -q -h 127.0.0.1 -p ${pgPort} -U zabbix -v ON_ERROR_STOP=1`;
    await run('sh', ['-c', `${psql} -d postgres -c 'CREATE DATABASE zabbix'`]);
    // images.sql.gz too: data.sql.gz's default map refers to its icons. One transaction per file (-1): far fewer commits.
    for (const file of ['schema.sql.gz', 'images.sql.gz', 'data.sql.gz']) {
      await run('sh', ['-c', `zcat ${join(SCHEMA_DIR, file)} | ${psql} -1 -d zabbix >/dev/null`], { maxBuffer: 16 * 1024 * 1024 });
    }

    const trapperPort = await freePortIn(20000, 32000);
    const serverConf = join(dir, 'zabbix_server.conf');
    await writeFile(
      serverConf,
      [
        'DBHost=127.0.0.1',
        `DBPort=${pgPort}`,
        'DBName=zabbix',
        'DBUser=zabbix',
        'ListenIP=127.0.0.1',
        `ListenPort=${trapperPort}`,
        'LogType=console',
        `PidFile=${join(dir, 'zabbix_server.pid')}`,
        `SocketDir=${dir}`,
        'AllowRoot=1',
        // New hosts and items reach the trapper after a config sync: every 2 s instead of 60.
        'CacheUpdateFrequency=2',
        // Few processes: the box is shared.
        'StartPollers=1',
        'StartPollersUnreachable=1',
        'StartPreprocessors=1',
        'StartTrappers=1',
        'StartPingers=0',
        'StartDiscoverers=0',
        'StartHTTPPollers=0',
        'StartLLDProcessors=1',
        'StartAlerters=1',
        'StartReportWriters=0',
        '',
      ].join('\n'),
    );
    programs.push(
      await startProgram(ZABBIX_SERVER_BIN, ['-f', '-c', serverConf], {
        pkg: 'zabbix-server-pgsql',
        // Listening on the trapper port means its configuration cache is loaded.
        ready: () => portOpen(trapperPort),
        timeoutMs: 60_000,
      }),
    );

    // The frontend reads /etc/zabbix/zabbix.conf.php: a copy of it (hard links) reads ours.
    const frontend = join(dir, 'frontend');
    await run('cp', ['-al', FRONTEND, frontend]);
    const configFile = join(dir, 'zabbix.conf.php');
    await writeFile(
      configFile,
      `<?php
$DB['TYPE'] = 'POSTGRESQL';
$DB['SERVER'] = '127.0.0.1';
$DB['PORT'] = '${pgPort}';
$DB['DATABASE'] = 'zabbix';
$DB['USER'] = 'zabbix';
$DB['PASSWORD'] = '';
$DB['SCHEMA'] = '';
$DB['ENCRYPTION'] = false;
$DB['KEY_FILE'] = '';
$DB['CERT_FILE'] = '';
$DB['CA_FILE'] = '';
$DB['VERIFY_HOST'] = false;
$DB['CIPHER_LIST'] = '';
$DB['VAULT_URL'] = '';
$DB['VAULT_DB_PATH'] = '';
$DB['VAULT_TOKEN'] = '';
$DB['DOUBLE_IEEE754'] = true;
$ZBX_SERVER = '127.0.0.1';
$ZBX_SERVER_PORT = '${trapperPort}';
$ZBX_SERVER_NAME = 'synchronizer tests';
$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
`,
    );
    const configClass = join(frontend, 'include/classes/core/CConfigFile.php');
    const source = await readFile(configClass, 'utf8');
    await unlink(configClass); // a hard link to the package's file: replace, never edit
    await writeFile(configClass, source.replace("'/etc/zabbix/zabbix.conf.php'", JSON.stringify(configFile).replace(/"/g, "'")));
    const phpPort = await freePort();
    const url = `http://127.0.0.1:${phpPort}`;
    let auth: string | undefined;
    let id = 0;
    const rpc = async (method: string, params: unknown, withAuth = true): Promise<unknown> => {
      const res = await fetch(`${url}/api_jsonrpc.php`, {
        method: 'POST',
        headers: { 'content-type': 'application/json-rpc' },
        body: JSON.stringify({ jsonrpc: '2.0', method, params, id: ++id, ...(withAuth && auth ? { auth } : {}) }),
        signal: AbortSignal.timeout(20_000),
      });
      const doc = (await res.json()) as { result?: unknown; error?: { message: string; data: string } };
      if (doc.error) throw new Error(`${method}: ${doc.error.message} ${doc.error.data}`);
      return doc.result;
    };
    programs.push(
      await startProgram('/usr/bin/php', ['-S', `127.0.0.1:${phpPort}`, '-t', frontend], {
        pkg: 'php-cli',
        spawn: { env: { ...process.env, PHP_CLI_SERVER_WORKERS: '2' } },
        ready: async () => (await rpc('apiinfo.version', [], false)) !== undefined,
      }),
    );
    auth = (await rpc('user.login', { username: 'Admin', password: 'zabbix' }, false)) as string;
    return {
      url,
      call: (method, params) => rpc(method, params),
      send: async (host, key, value) => {
        // Refused ("processed: 0; failed: 1") until the server's configuration cache knows the item.
        const deadline = Date.now() + 30_000;
        for (;;) {
          const { stdout } = await run(ZABBIX_SENDER_BIN, ['-z', '127.0.0.1', '-p', String(trapperPort), '-s', host, '-k', key, '-o', value]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
          if (/processed: 1;/.test(stdout)) return;
          if (Date.now() > deadline) throw new Error(`zabbix_sender ${host} ${key} ${value}: not processed after 30 s: ${stdout}`);
          await new Promise((r) => setTimeout(r, 500));
        }
      },
      stop,
    };
  } catch (e) {
    const output = programs.map((p) => p.output()).join('\n');
    await stop();
    throw new Error(`starting Zabbix failed: ${e instanceof Error ? e.message : String(e)}\n${output.slice(-3000)}`);
  }
}
