/**
 * Crash safety with the real CLI: kill -9 at seeded random moments while polls (a local OpenStack)
 * and notifications (a real RabbitMQ) flow, restart on the same state.dir, and compare what a
 * consumer of every emitted line holds with the truth. Re-emitted events are allowed (at least
 * once) and counted; a lost change, a missing or an extra entity is not. A third of the kills
 * land as a line comes out, and the server it created is deleted while the process is down: the
 * ghost an emit-before-write order leaves (this test failed with 4 ghosts on that order).
 * Runs in every `npm test`: 60–75 s of test time at load average ~20 on the shared 2-core box.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp, { type ChannelModel } from 'amqplib';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createSources, parseConfig } from '../../src/config.js';
import { entityHash } from '../../src/hash.js';
import type { EntityEvent } from '../../src/model.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { type Cli, CliRun } from '../support/cli.js';
import { osloBody, osloTimestamp } from '../support/nova-samples.js';
import { type OpenStackServer, serverId, startOpenStackServer } from '../support/openstack-server.js';
import { sleep, waitFor } from '../support/wait.js';

const KILLS = 20;
const SEED = Number(process.env.SYNC_CRASH_SEED ?? 20261130);

/** mulberry32: a small seeded PRNG, so a failing run can be repeated with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const run = new CliRun();
let os: OpenStackServer | undefined;
let connection: ChannelModel | undefined;
afterEach(async () => {
  run.cleanup();
  await os?.close();
  await connection?.close().catch(() => undefined);
});

describe('kill -9 with state.dir, polls and notifications', () => {
  it(`loses no change over ${KILLS} seeded kills (seed ${SEED})`, async (ctx) => {
    const url = inject('rabbitUrl');
    if (!url) ctx.skip(true, 'no RabbitMQ for this run (rabbitmq-server missing?)');
    const random = prng(SEED);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    os = await startOpenStackServer({ servers: 30 });
    const tag = randomUUID().slice(0, 8);
    const [exchange, queue] = [`cinder-${tag}`, `sync-crash-${tag}`];
    connection = await amqp.connect(url, { noDelay: true });
    const channel = await connection.createConfirmChannel();
    await channel.assertExchange(exchange, 'topic', { durable: false, autoDelete: false });
    // The synchronizer's queue exists before the first notification, as in a deployment (the
    // first runs may be killed before they declare it).
    await channel.assertQueue(queue, { durable: true, autoDelete: false });
    await channel.bindQueue(queue, exchange, 'notifications.info');

    const dir = run.workdir('crash-');
    const config = join(dir, 'synchronizer.yaml');
    const novaEntry = { name: 'nova', use: 'openstack.nova', interval: '150ms', region: 'RegionOne', auth: os.auth };
    writeFileSync(
      config,
      [
        'log: info',
        'state: { dir: ./state }',
        'sources:',
        `  - ${JSON.stringify(novaEntry)}`,
        `  - { name: bus, use: openstack.notifications, transportUrl: "${url}", exchanges: [${exchange}], topics: [notifications], queue: ${queue}, prefetch: 20 }`,
        '',
      ].join('\n'),
    );

    // The world: servers on the local OpenStack; volumes known only from their notifications.
    const volumes = new Map<string, string>();
    let nextServer = 1000;
    let nextVolume = 0;
    let clock = Date.now();
    const notify = (eventType: string, id: string, status: string): void => {
      clock = Math.max(Date.now(), clock + 1);
      const payload = { volume_id: id, display_name: id, status, size: 1, tenant_id: 'p1' };
      channel.publish(exchange, 'notifications.info', osloBody({ event_type: eventType, payload, publisher_id: 'volume.host1' }, { messageId: randomUUID(), timestamp: osloTimestamp(new Date(clock)) }), {
        contentType: 'application/json',
        deliveryMode: 2,
      });
    };
    const addServer = (): void => {
      os!.state.servers.push({ ...structuredClone(pick(os!.state.servers)), id: serverId(nextServer), name: `vm-${nextServer++}` });
    };
    const change = (): void => {
      const servers = os!.state.servers;
      const op = random();
      if (op < 0.15 && servers.length > 5) servers.splice(Math.floor(random() * servers.length), 1);
      else if (op < 0.3) addServer();
      else if (op < 0.5) {
        const s = pick(servers);
        s['OS-EXT-STS:vm_state'] = s['OS-EXT-STS:vm_state'] === 'stopped' ? 'active' : 'stopped';
      } else if (op < 0.7 || volumes.size === 0) {
        const id = `vol-${tag}-${nextVolume++}`;
        volumes.set(id, 'available');
        notify('volume.create.end', id, 'available');
      } else if (op < 0.85) {
        const id = pick([...volumes.keys()]);
        const status = volumes.get(id) === 'available' ? 'in-use' : 'available';
        volumes.set(id, status);
        notify('volume.update.end', id, status);
      } else {
        const id = pick([...volumes.keys()]);
        volumes.delete(id);
        notify('volume.delete.end', id, 'deleted');
      }
    };

    // The consumer: applies every line of every run, in order; counts lines that changed nothing.
    const held = new Map<string, EntityEvent>();
    let lines = 0;
    let reemitted = 0;
    let torn = 0;
    /** Events the CLI says it emitted again from its outbox at start. */
    let outboxEvents = 0;
    let runsWithEvents = 0;
    let runsStarted = 0;
    const consume = (cli: Cli, from: number): number => {
      for (const e of cli.events.slice(from)) {
        lines += 1;
        const before = held.get(e.entity.key);
        if (e.action === 'delete') {
          if (!before) reemitted += 1;
          held.delete(e.entity.key);
        } else {
          if (before?.hash === e.hash) reemitted += 1;
          held.set(e.entity.key, e);
        }
      }
      return cli.events.length;
    };

    const started = Date.now();
    for (let k = 0; k < KILLS; k++) {
      const cli = run.cli('--config', config);
      // Kill at a random moment: a few while it starts, most once it runs (its sources started),
      // while polls and notifications are going through.
      if (random() < 0.8) {
        while (!cli.stderr.includes('"synchronizer started"')) {
          change();
          await sleep(20 + random() * 120);
          if ((await Promise.race([cli.exited, sleep(0).then(() => 'running')])) !== 'running') throw new Error(`the CLI exited: ${cli.stderr}`);
        }
      }
      const killAt = Date.now() + random() * 1000;
      while (Date.now() < killAt) {
        change();
        await sleep(20 + random() * 120);
      }
      // A third of the kills land right as a line comes out: its step was written, its outbox entry
      // may still be there (the moment that left ghosts before the outbox, and the one that
      // re-emits).
      let printed: number | undefined;
      if (random() < 0.35) {
        printed = cli.events.length;
        const until = Date.now() + 3000;
        addServer();
        while (cli.events.length === printed && Date.now() < until) await sleep(1);
      }
      cli.child.kill('SIGKILL');
      // And the world changes back while it is down: a server whose create just came out is
      // deleted (before the outbox, the next run never knew it, and never reported the delete).
      if (printed !== undefined) {
        for (const e of cli.events.slice(printed)) {
          const servers = os!.state.servers;
          const i = servers.findIndex((s) => e.action === 'create' && e.entity.type === 'nova.instance' && s.id === e.entity.id);
          if (i >= 0 && servers.length > 5) servers.splice(i, 1);
        }
      }
      await cli.exited;
      torn += cli.torn.length;
      for (const m of cli.stderr.matchAll(/"msg":"state: events emitted again[^\n]*?"events":(\d+)/g)) outboxEvents += Number(m[1]);
      if (cli.events.length > 0) runsWithEvents += 1;
      if (cli.stderr.includes('"synchronizer started"')) runsStarted += 1;
      consume(cli, 0);
      expect(cli.stderr).not.toMatch(/"level":"error"/);
    }
    await channel.waitForConfirms();

    // The last run: no more changes; it must converge on the truth.
    const truth = createSynchronizer({ sources: createSources((await parseConfig({ sources: [novaEntry], sinks: [] }, dir)).sources) });
    truth.start();
    const expectedNova = async (): Promise<Map<string, string>> => {
      await waitFor('a fresh poll of the truth', () => truth.snapshot(['nova.instance']).length === os!.state.servers.length);
      return new Map(truth.snapshot().map((e) => [e.key, entityHash(e)]));
    };
    const last = run.cli('--config', config);
    let seen = 0;
    const compare = async (): Promise<string[]> => {
      seen = consume(last, seen);
      const want = await expectedNova();
      const problems: string[] = [];
      for (const [key, hash] of want) if (held.get(key)?.hash !== hash) problems.push(`${held.has(key) ? 'stale' : 'missing'} ${key}`);
      for (const [id, status] of volumes) if (held.get(`cinder.volume:${id}`)?.entity.state !== status.toUpperCase()) problems.push(`volume ${id}: want ${status}, hold ${held.get(`cinder.volume:${id}`)?.entity.state}`);
      for (const key of held.keys()) if (!want.has(key) && !volumes.has(key.replace(/^cinder\.volume:/, ''))) problems.push(`extra ${key}`);
      return problems;
    };
    let problems: string[] = [];
    const deadline = Date.now() + 60_000;
    for (;;) {
      problems = await compare();
      if (problems.length === 0 || Date.now() > deadline) break;
      await sleep(300);
    }
    truth.stop();
    await waitFor('the last run to have started', () => last.stderr.includes('"synchronizer started"'), 30_000);
    last.child.kill('SIGTERM');
    expect(await last.exited).toBe(0);
    consume(last, seen);
    for (const m of last.stderr.matchAll(/"msg":"state: events emitted again[^\n]*?"events":(\d+)/g)) outboxEvents += Number(m[1]);
    expect(problems).toEqual([]);
    expect(held.size).toBeGreaterThan(30);
    // Most kills must hit a running process, or this test proves little.
    expect(runsWithEvents).toBeGreaterThanOrEqual(KILLS / 2);
    // The figure the issue asks for: events a restart emitted again (allowed: at least once).
    console.log(`crash test: seed ${SEED}, ${KILLS} kills (${runsStarted} once started, ${runsWithEvents} after some output) in ${Math.round((Date.now() - started) / 1000)} s, ${lines} lines, ${reemitted} re-emitted (no change for the consumer; ${outboxEvents} events emitted again from the outbox), ${torn} torn lines, ${held.size} entities, ${volumes.size} volumes`);
  }, 300_000);
});
