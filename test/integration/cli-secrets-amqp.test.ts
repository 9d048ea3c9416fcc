/**
 * The grep test: the real CLI with known secrets in its config (inline, by ${ENV} and by
 * ${file:}), driven through the failure paths of issue 9 (Keystone refusing the password, a
 * redirect to another origin, an oversized body, a Nagios refusing basic auth, RabbitMQ refusing
 * the transport URL's and the sink's passwords, a YAML error on the secret's line, a missing
 * reference). No secret may appear in stdout, stderr, /health or /metrics.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type OpenStackServer, startOpenStackServer } from '../support/openstack-server.js';
import { waitFor } from '../support/wait.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'synchronizer.js');

const SECRETS = {
  keystone: 'ksSecret7f3a0c',
  neutron: 'nuSecret18e2ab',
  alertmanager: 'amSecret91bd77',
  nagios: 'ngSecretc4d2e0',
  rabbit: 'rmqSecret55e1f',
  sink: 'sinkSecret9d0a',
  yaml: 'yamlSecret3b7c',
};

let os: OpenStackServer;
const servers: Server[] = [];
let dir: string;

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  os = await startOpenStackServer();
  mkdirSync(join(root, '.tmp'), { recursive: true });
  dir = mkdtempSync(join(root, '.tmp', 'cli-secrets-'));
});
afterAll(async () => {
  await os?.close();
  for (const s of servers) await new Promise<void>((ok) => s.close(() => ok()));
  rmSync(dir, { recursive: true, force: true });
});

function run(config: string, env: Record<string, string>): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; stderr: () => string; stop: () => void } {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, config);
  const child = spawn(process.execPath, [bin, '--config', file, '--log', 'debug'], { cwd: dir, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  return { done, stderr: () => stderr, stop: () => child.kill('SIGTERM') };
}

function expectNoSecret(where: string, text: string): void {
  for (const [name, secret] of Object.entries(SECRETS)) {
    expect(text.includes(secret), `${name}'s secret in ${where}`).toBe(false);
    for (const user of ['nagiosadmin', 'admin', 'guest']) {
      expect(text.includes(Buffer.from(`${user}:${secret}`).toString('base64')), `${name}'s basic auth in ${where}`).toBe(false);
    }
  }
}

describe('no secret reaches stdout, stderr, /health or /metrics', () => {
  it('through every failure path of a running service', async () => {
    const rabbitUrl = inject('rabbitUrl');
    if (!rabbitUrl) throw new Error('no RabbitMQ: test/support/global-setup.ts provides rabbitUrl (SYNC_TEST_RABBITMQ=1 when run alone)');
    const rabbitPort = new URL(rabbitUrl).port;
    // Another origin that would gladly take a password: the redirect must never reach it.
    const stolen: string[] = [];
    const thief = await serve((req, res) => {
      req.on('data', (c: Buffer) => stolen.push(c.toString()));
      req.on('end', () => res.writeHead(500).end());
    });
    const redirector = await serve((_req, res) => res.writeHead(307, { location: `${thief}/identity/v3/auth/tokens` }).end());
    const huge = await serve((_req, res) => res.end(JSON.stringify([{ labels: { alertname: 'x'.repeat(10_000) } }])));
    const refusing = await serve((_req, res) => res.writeHead(401, { 'www-authenticate': 'Basic realm="Nagios Access"' }).end('Authorization Required'));
    writeFileSync(join(dir, 'nagios.pass'), `${SECRETS.nagios}\n`);
    const config = `
log: debug
listen: 127.0.0.1:0
sources:
  - name: nova
    use: openstack.nova
    interval: 1h
    requestTimeout: 2s
    auth: {auth_url: "${os.authUrl}", username: admin, password: "\${SYNC_KS_PW}", project_name: admin, user_domain_name: Default, project_domain_name: Default}
  - name: neutron
    use: openstack.neutron
    interval: 1h
    requestTimeout: 2s
    auth: {auth_url: "${redirector}/identity/v3", username: admin, password: ${SECRETS.neutron}, project_name: admin}
  - name: alerts
    use: alertmanager
    url: ${huge}
    username: admin
    password: ${SECRETS.alertmanager}
    maxResponseSize: 1KiB
    interval: 1h
  - name: nagios
    use: nagios
    url: ${refusing}/cgi-bin/nagios4
    username: nagiosadmin
    password: \${file:nagios.pass}
    interval: 1h
  - name: bus
    use: openstack.notifications
    transportUrl: rabbit://guest:\${SYNC_RMQ_PW}@127.0.0.1:${rabbitPort}/
    queue: secrets-test
    reconnectDelay: 5s
sinks:
  - use: stdout
  - use: amqp
    url: amqp://guest:${SECRETS.sink}@127.0.0.1:${rabbitPort}/
    exchange: secrets-test
    reconnectDelay: 5s
`;
    const cli = run(config, { SYNC_KS_PW: SECRETS.keystone, SYNC_RMQ_PW: SECRETS.rabbit });
    const listen = await waitFor('the health listener', () => /"listen":"(127\.0\.0\.1:\d+)"/.exec(cli.stderr())?.[1], { timeoutMs: 20_000, context: cli.stderr });
    type Health = { ok: boolean; sources: Record<string, { status: string; error?: string }> };
    let health: Health | undefined;
    let healthText = '';
    const names = ['nova', 'neutron', 'alerts', 'nagios', 'bus'];
    for (const deadline = Date.now() + 30_000; ; ) {
      healthText = await (await fetch(`http://${listen}/health`)).text();
      health = JSON.parse(healthText) as Health;
      if (names.every((s) => health!.sources[s]?.status === 'down')) break;
      if (Date.now() > deadline) throw new Error(`not every source down: ${healthText}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor('the sink refused', () => /amqp sink: broker unavailable/.test(cli.stderr()), 20_000);
    const metrics = await (await fetch(`http://${listen}/metrics`)).text();
    cli.stop();
    const { stdout, stderr } = await cli.done;

    // The failures are there, and say what failed…
    expect(health!.sources.nova!.error).toMatch(/failed with 401/);
    expect(health!.sources.neutron!.error).toMatch(/redirecting to another origin/);
    expect(health!.sources.alerts!.error).toMatch(/larger than 1024 bytes/);
    expect(health!.sources.nagios!.error).toMatch(/401/);
    expect(health!.sources.bus!.error).toMatch(/ACCESS_REFUSED|refused/i);
    expect(stolen).toEqual([]);
    // … and no secret is anywhere.
    for (const [where, text] of [['stdout', stdout], ['stderr', stderr], ['/health', healthText], ['/metrics', metrics]] as const) expectNoSecret(where, text);
  }, 90_000);

  it('a YAML error on the secret line and a missing reference: refused at start, no secret shown', async () => {
    const bad = run(`sources:\n  - name: mon\n    use: nagios\n    url: http://127.0.0.1:1/\n    username: nagiosadmin\n    password: "${SECRETS.yaml}\n    interval: 1h\n`, {});
    const r1 = await bad.done;
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/is not valid YAML: \w+ at line \d+, column \d+/);
    const missing = run(`sources:\n  - name: mon\n    use: nagios\n    url: http://127.0.0.1:1/\n    username: nagiosadmin\n    password: \${SYNC_NOT_SET_ANYWHERE}\n`, {});
    const r2 = await missing.done;
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/sources\[0\]\.password: references the environment variable SYNC_NOT_SET_ANYWHERE, which is not set/);
    for (const r of [r1, r2]) expectNoSecret('stderr', r.stderr + r.stdout);
  });
});
