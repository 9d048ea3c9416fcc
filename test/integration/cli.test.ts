import { randomUUID } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import amqp from 'amqplib';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import type { EntityEvent } from '../../src/model.js';
import { Cli, CliRun, root } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

const run = new CliRun();
afterEach(() => run.cleanup());
const workdir = (): string => run.workdir();
const cli = (...args: string[]): Cli => run.cli(...args);

const brief = (e: EntityEvent): string => `${e.action} ${e.entity.key} ${e.entity.state}`;

describe('synchronizer CLI', () => {
  it('prints create, update and delete lines as the static file is edited, and stops cleanly on SIGTERM', async () => {
    const dir = workdir();
    const topology = join(dir, 'topology.yaml');
    writeFileSync(
      topology,
      'entities:\n  - { type: nova.host, id: compute-1, state: up }\n  - { type: nova.instance, id: vm-1, state: active, parents: [{ type: nova.host, id: compute-1 }] }\n',
    );
    writeFileSync(join(dir, 'synchronizer.yaml'), 'log: warn\nsources:\n  - name: topology\n    use: static\n    file: ./topology.yaml\n    debounce: 50ms\n');
    const c = cli('--config', join(dir, 'synchronizer.yaml'));
    expect((await c.waitFor(2)).map(brief)).toEqual(['create nova.host:compute-1 UP', 'create nova.instance:vm-1 ACTIVE']);
    const first = c.events[1]!;
    expect(first).toMatchObject({
      origin: 'snapshot',
      entity: { type: 'nova.instance', id: 'vm-1', parents: [{ type: 'nova.host', id: 'compute-1' }], children: [], source: 'topology', attributes: {} },
    });
    expect(Object.keys(first)).toEqual(['action', 'origin', 'entity', 'hash']);
    expect(Object.keys(first.entity)).toEqual(['key', 'type', 'id', 'state', 'parents', 'children', 'observedAt', 'source', 'attributes']);

    // An editor's save: write a new file and rename it over the old one.
    writeFileSync(join(dir, 'topology.yaml.new'), 'entities:\n  - { type: nova.instance, id: vm-1, state: shutoff, parents: [{ type: nova.host, id: compute-1 }] }\n');
    renameSync(join(dir, 'topology.yaml.new'), topology);
    const after = await c.waitFor(4);
    expect(after.slice(2).map(brief).sort()).toEqual(['delete nova.host:compute-1 UP', 'update nova.instance:vm-1 SHUTOFF']);
    expect(after.find((e) => e.action === 'update')!.changed).toEqual(['state']);

    // A broken edit is reported and deletes nothing.
    writeFileSync(topology, 'entities: [ {{ nope');
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(c.events).toHaveLength(4);
    expect(c.stderr).toContain('not valid YAML');

    c.child.kill('SIGTERM');
    expect(await c.exited).toBe(0);
  });

  it('refuses an invalid config at start with the path of the bad field', async () => {
    const dir = workdir();
    const cases: Array<[string, RegExp]> = [
      ['sources:\n  - name: t\n    use: static\n    file: ./x.yaml\n    debounce: soon\n', /sources\[0\]\.debounce: expected a duration such as 30s, 500ms or 5m, got "soon"/],
      ['sources:\n  - name: t\n    use: static\n    file: ./x.yaml\n    intervall: 5s\n', /sources\[0\]\.intervall: is not a known option here/],
      ['sources:\n  - name: t\n    use: statik\n', /sources\[0\]\.use: unknown source "statik"/],
      ['sources:\n  - name: a\n    use: static\n    file: x\n  - name: a\n    use: static\n    file: y\n', /sources\[1\]\.name: "a" is already the name of another source/],
      ['sources:\n  - name: am\n    use: alertmanager\n    url: http://127.0.0.1:9093\n    interval: 0\n', /sources\[0\]\.interval: must be more than 0/],
      ['log: loud\nsources: []\n', /log: expected one of debug, info, warn, error, silent, got "loud"/],
      ['sources:\n  - name: p\n    use: ./not-a-plugin.js\n', /sources\[0\]\.use: .*not-a-plugin\.js does not implement the source contract/],
      ['sources:\n  - name: t\n    use: static\n    file: x\nsinks:\n  - use: stdout\n  - use: amqp\n    url: http://u:secret@127.0.0.1/\n', /sinks\[1\]\.url: unsupported scheme "http:"/],
      ['sources:\n  - name: t\n    use: static\n    file: x\nsinks:\n  - use: amqp\n    url: amqp://127.0.0.1/\n    exchange: amq.topic\n', /sinks\[0\]\.exchange: expected an exchange name/],
    ];
    writeFileSync(join(dir, 'not-a-plugin.js'), 'export default { hello: "world" };\n');
    // All at once: nine CLI starts one after another take most of the timeout on a busy machine.
    const runs = cases.map(([config], i) => {
      writeFileSync(join(dir, `bad-${i}.yaml`), config);
      return cli('--config', join(dir, `bad-${i}.yaml`));
    });
    for (const [i, c] of runs.entries()) {
      expect(await c.exited).toBe(2);
      expect(c.stderr).toMatch(cases[i]![1]);
      expect(c.stderr).toMatch(/^synchronizer: invalid config /);
      expect(c.events).toEqual([]);
    }
    // Nine CLI starts: a bound for a busy machine (each waits on its own exit, no fixed sleep).
  }, 120_000);

  it('loads a plugin by module path (the documented example) and runs it like a built-in source', async () => {
    const c = cli('--config', join(root, 'docs', 'examples', 'plugin.yaml'), '--log', 'warn');
    const events = await c.waitFor(4);
    expect(events.map(brief)).toEqual([
      'create hosts.entry:localhost PRESENT',
      'create hosts.entry:controller-1 PRESENT',
      'create hosts.entry:keystone PRESENT',
      'create hosts.entry:compute-1 PRESENT',
    ]);
    expect(events[3]!.entity).toMatchObject({ source: 'hosts', attributes: { ip: '10.0.0.21' } });
  });

  it('serves health and Prometheus metrics when `listen` is set', async () => {
    const dir = workdir();
    writeFileSync(join(dir, 'topology.yaml'), 'entities:\n  - { type: nova.host, id: compute-1, state: up }\n');
    writeFileSync(join(dir, 'synchronizer.yaml'), 'listen: 127.0.0.1:0\nsources:\n  - name: topology\n    use: static\n    file: ./topology.yaml\n  - name: missing\n    use: static\n    file: ./nowhere/x.yaml\n');
    const c = cli('--config', join(dir, 'synchronizer.yaml'));
    await c.waitFor(1);
    const listen = /"msg":"serving health and metrics","listen":"([^"]+)"/.exec(c.stderr)?.[1];
    expect(listen).toMatch(/^127\.0\.0\.1:\d+$/);
    const metrics = await (await fetch(`http://${listen}/metrics`)).text();
    expect(metrics).toContain('synchronizer_events_total{type="nova.host",action="create"} 1');
    expect(metrics).toContain('synchronizer_entities{type="nova.host"} 1');
    expect(metrics).toContain('synchronizer_source_up{source="topology"} 1');
    expect(metrics).toContain('synchronizer_source_up{source="missing"} 0');
    const health = await fetch(`http://${listen}/health`);
    expect(health.status).toBe(503);
    const body = (await health.json()) as { ok: boolean; sources: Record<string, { status: string; error?: string }> };
    expect(body.ok).toBe(false);
    expect(body.sources.topology!.status).toBe('up');
    expect(body.sources.missing!.status).toBe('down');
  });

  it('publishes to RabbitMQ with `use: amqp` beside stdout, and waits for the confirms on SIGTERM', async () => {
    const url = inject('rabbitUrl');
    if (!url) throw new Error('no RabbitMQ: test/support/global-setup.ts provides rabbitUrl');
    const dir = workdir();
    const exchange = `cli-${randomUUID()}`;
    const connection = await amqp.connect(url);
    try {
      const channel = await connection.createChannel();
      await channel.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
      const { queue } = await channel.assertQueue('', { exclusive: true });
      await channel.bindQueue(queue, exchange, '#');
      const keys: string[] = [];
      await channel.consume(queue, (m) => m && keys.push(m.fields.routingKey), { noAck: true });
      writeFileSync(join(dir, 'topology.yaml'), 'entities:\n  - { type: nova.host, id: compute-1, state: up }\n  - { type: nova.instance, id: vm-1, state: active }\n');
      const config = `sources:\n  - name: topology\n    use: static\n    file: ./topology.yaml\nsinks:\n  - use: stdout\n  - use: amqp\n    url: ${url}\n    exchange: ${exchange}\n    types: [nova.instance]\n`;
      writeFileSync(join(dir, 'synchronizer.yaml'), config);
      const c = cli('--config', join(dir, 'synchronizer.yaml'));
      expect((await c.waitFor(2)).map(brief)).toEqual(['create nova.host:compute-1 UP', 'create nova.instance:vm-1 ACTIVE']);
      await waitFor('two messages on the exchange', () => keys.length >= 2, 10_000);
      // Attached before the first snapshot: an empty replay, then the change.
      expect(keys).toEqual(['synced', 'nova.instance.create']);
      c.child.kill('SIGTERM');
      expect(await c.exited).toBe(0);
      expect(c.stderr).toContain('amqp sink: publishing');
      expect(c.stderr).not.toContain('unconfirmed messages');
      expect(c.stderr).not.toContain('guest:guest');
    } finally {
      await connection.close();
    }
  });

  it('/health answers 200 with every source up', async () => {
    const dir = workdir();
    writeFileSync(join(dir, 'topology.yaml'), 'entities:\n  - { type: nova.host, id: compute-1, state: up }\n');
    writeFileSync(join(dir, 'synchronizer.yaml'), 'listen: 127.0.0.1:0\nsources:\n  - name: topology\n    use: static\n    file: ./topology.yaml\n');
    const c = cli('--config', join(dir, 'synchronizer.yaml'));
    await c.waitFor(1);
    const listen = /"msg":"serving health and metrics","listen":"([^"]+)"/.exec(c.stderr)?.[1];
    // The source reports up once its file was read: the event above came after that.
    const health = await fetch(`http://${listen}/health`);
    expect(health.status).toBe(200);
    const body = (await health.json()) as { ok: boolean; sources: Record<string, { status: string }> };
    expect(body).toMatchObject({ ok: true, sources: { topology: { status: 'up' } } });
  });

  it('--check accepts a valid config and exits 0 without starting; refuses a bad one with exit 2 and the field', async () => {
    const dir = workdir();
    writeFileSync(join(dir, 'topology.yaml'), 'entities:\n  - { type: nova.host, id: compute-1, state: up }\n');
    writeFileSync(join(dir, 'good.yaml'), 'sources:\n  - name: topology\n    use: static\n    file: ./topology.yaml\n');
    const good = cli('--config', join(dir, 'good.yaml'), '--check');
    expect(await good.exited).toBe(0);
    expect(good.stderr).toContain('good.yaml is valid (1 sources)');
    expect(good.events).toEqual([]); // checked, not run: the static source emitted nothing
    writeFileSync(join(dir, 'bad.yaml'), 'sources:\n  - name: topology\n    use: static\n    file: ./topology.yaml\n    interval: soon\n');
    const bad = cli('--config', join(dir, 'bad.yaml'), '--check');
    expect(await bad.exited).toBe(2);
    expect(bad.stderr).toMatch(/invalid config .*bad\.yaml: sources\[0\]\.(interval|file)/);
  });

  it('runs the documented library example as written', async () => {
    const { execFile } = await import('node:child_process');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [join(root, 'docs', 'examples', 'library.mjs')], { cwd: root }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
    );
    expect(out).toContain('instance web-1 ACTIVE');
    expect(out).toContain('hosts synced: 0');
    expect(out).toContain("volumes: [ 'db-data → 9b3e6c0d-2f41-4a8b-b7f5-0e6a9d8c7b22' ]");
  });

  it('runs the bundled demo as `npm start` does, and a config named by SYNCHRONIZER_CONFIG', async () => {
    const c = cli('--config', join(root, 'docs', 'examples', 'demo.yaml'), '--log', 'warn');
    const events = await c.waitFor(8);
    expect(events.every((e) => e.action === 'create' && e.entity.source === 'topology')).toBe(true);
    c.child.kill('SIGINT');
    expect(await c.exited).toBe(0);

    const fromEnv = run.cliWithEnv({ ...process.env, SYNCHRONIZER_CONFIG: join(root, 'docs', 'examples', 'demo.yaml') }, '--log', 'warn');
    expect((await fromEnv.waitFor(8)).map((e) => e.entity.key)).toEqual(events.map((e) => e.entity.key));
    fromEnv.child.kill('SIGTERM');
    expect(await fromEnv.exited).toBe(0);
  });

  it('exits 2 with a clear message when given no config at all; --version prints the package version', async () => {
    const { SYNCHRONIZER_CONFIG: _ignored, ...env } = process.env;
    const bare = run.cliWithEnv(env);
    expect(await bare.exited).toBe(2);
    expect(bare.stderr).toMatch(/^synchronizer: no config: pass --config FILE or set SYNCHRONIZER_CONFIG\n/);
    expect(bare.events).toEqual([]);

    const v = run.cliWithEnv(env, '--version');
    expect(await v.exited).toBe(0);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(v.stdout).toBe(`synchronizer ${pkg.version}\n`);
  });

  it('logs a failing source\'s error with its stack and its cause\'s at debug, and the message alone at info', async () => {
    // An "API" that hangs up on every request: the poll fails with an HttpError caused by ECONNRESET.
    const hangUp = createServer((req) => req.socket.destroy());
    await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
    try {
      const dir = workdir();
      const { port } = hangUp.address() as AddressInfo;
      writeFileSync(join(dir, 'synchronizer.yaml'), `sources:\n  - name: alerts\n    use: alertmanager\n    url: http://127.0.0.1:${port}\n    timeout: 5s\n    backoff: 100ms\n`);
      const down = async (level: string): Promise<Record<string, unknown>> => {
        const c = cli('--config', join(dir, 'synchronizer.yaml'), '--log', level);
        const line = await waitFor(`"source is down" at --log ${level}`, () => /^\{.*"msg":"source is down".*$/m.exec(c.stderr)?.[0], { context: () => c.stderr });
        c.child.kill('SIGTERM');
        await c.exited;
        return JSON.parse(line) as Record<string, unknown>;
      };
      const debug = await down('debug');
      expect(debug.error).toMatch(new RegExp(`^alerts: GET http://127\\.0\\.0\\.1:${port}/api/v2/alerts failed: ECONNRESET`));
      // Where it was thrown (the HTTP transport), then what caused it (the socket's error).
      expect(debug.errorStack).toMatch(/^HttpError: alerts: GET .* failed: ECONNRESET\n\s+at .*http\.js/);
      expect(debug.errorStack).toMatch(/\ncaused by: Error: ECONNRESET: socket hang up\n\s+at /);
      const info = await down('info');
      expect(info.error).toBe(debug.error);
      expect(info).not.toHaveProperty('errorStack');
    } finally {
      await new Promise<void>((resolve) => hangUp.close(() => resolve()));
    }
  });

  it('keeps an error\'s stack in the log at debug level, not above', () => {
    const lines: string[] = [];
    const error = new Error('boom');
    createLogger('debug', (l) => lines.push(l)).error('failed', { error });
    createLogger('info', (l) => lines.push(l)).error('failed', { error });
    const [debug, info] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(debug).toMatchObject({ msg: 'failed', error: 'boom' });
    expect(String(debug!.errorStack)).toMatch(/^Error: boom\n\s+at /);
    expect(info).toMatchObject({ msg: 'failed', error: 'boom' });
    expect(info).not.toHaveProperty('errorStack');
  });
});
