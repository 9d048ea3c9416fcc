/**
 * Three real CLI instances of one cluster on one real RabbitMQ (started here, with the
 * consistent-hash plugin) and the local OpenStack serving the fixtures. Bounded and event-driven:
 * every wait is on a log line, a /health answer or a fixture server request, each with a deadline;
 * the whole file takes about 40–60 s on an idle box (the broker's boot is 6–9 s of it).
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterHealth, type ClusterView, applyClusterEvent, emptyClusterView, readClusterEvent } from '../../src/cluster/index.js';
import { type Cli, CliRun } from '../support/cli.js';
import { type OpenStackServer, startOpenStackServer } from '../support/openstack-server.js';
import { novaSample, osloBody, osloTimestamp } from '../support/nova-samples.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { freePort } from '../support/ports.js';
import { RabbitNode } from '../support/rabbitmq.js';
import { waitFor } from '../support/wait.js';

const run = new CliRun();
let broker: RabbitNode;
let os: OpenStackServer | undefined;
let consumer: ChannelModel | undefined;

beforeAll(async () => {
  broker = await RabbitNode.start({ name: 'cluster', plugins: ['rabbitmq_consistent_hash_exchange'] });
}, 180_000);
afterAll(async () => {
  await broker?.dispose();
});
afterEach(async () => {
  run.cleanup();
  await consumer?.close().catch(() => undefined);
  consumer = undefined;
  await os?.close();
  os = undefined;
});

interface Instance {
  id: string;
  cli: Cli;
  listen: string;
}

/** A consumer of the cluster's stream: one queue bound to the exchange, applied with the consumer's rule. */
async function followStream(exchange: string): Promise<{ view: ClusterView; dropped: { stale: number; duplicate: number }; messages: { instance: string; action: string; key: string; name: string | undefined }[] }> {
  consumer = await amqp.connect(broker.url);
  const channel: Channel = await consumer.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, exchange, '#');
  const view = emptyClusterView();
  const dropped = { stale: 0, duplicate: 0 };
  const messages: { instance: string; action: string; key: string; name: string | undefined }[] = [];
  await channel.consume(queue, (m) => {
    if (!m) return;
    const e = readClusterEvent(m.content, m.properties.headers as Record<string, unknown>);
    if (e) {
      messages.push({ instance: e.instance, action: e.action, key: e.entity.key, name: e.entity.name });
      const outcome = applyClusterEvent(view, e);
      if (!outcome.applied) dropped[outcome.reason] += 1;
    }
    channel.ack(m);
  });
  return { view, dropped, messages };
}

async function health(i: Instance): Promise<{ cluster: ClusterHealth }> {
  const res = await fetch(`http://${i.listen}/health`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as { cluster: ClusterHealth };
}

async function entities(i: Instance, type: string): Promise<number> {
  const res = await fetch(`http://${i.listen}/metrics`, { signal: AbortSignal.timeout(5000) });
  const m = new RegExp(`^synchronizer_entities\\{type="${type.replace('.', '\\.')}"\\} (\\d+)$`, 'm').exec(await res.text());
  return m ? Number(m[1]) : 0;
}

/** The two OpenStack poll sources of the failover tests. */
const pollSources = (): string[] => [
  '  - name: nova',
  '    use: openstack.nova',
  '    interval: 300ms',
  '    region: RegionOne',
  `    auth: ${JSON.stringify(os!.auth)}`,
  '  - name: neutron',
  '    use: openstack.neutron',
  '    interval: 300ms',
  '    region: RegionOne',
  `    auth: ${JSON.stringify(os!.auth)}`,
];

async function startCluster(name: string, count: number, sources: string[] = pollSources(), clusterLines: string[] = []): Promise<Instance[]> {
  const dir = run.workdir('cluster-');
  const instances: Instance[] = [];
  for (let n = 1; n <= count; n++) {
    const id = `${name}-i${n}`;
    const listen = `127.0.0.1:${await freePort()}`;
    const file = join(dir, `${id}.yaml`);
    writeFileSync(
      file,
      [
        'log: info',
        `listen: ${listen}`,
        'cluster:',
        `  transportUrl: ${broker.transportUrl}`,
        `  name: ${name}`,
        `  instance: ${id}`,
        '  reconnectDelay: 500ms',
        ...clusterLines,
        'sources:',
        ...sources,
        '',
      ].join('\n'),
    );
    instances.push({ id, cli: run.cli('--config', file), listen });
  }
  return instances;
}

/** The instance whose /health says it holds `source`'s lease, once exactly one does and every instance counts them all. */
async function holderOf(instances: Instance[], source: string, all = instances.length): Promise<Instance> {
  return waitFor(
    `one holder of ${source}`,
    async () => {
      const hs = await Promise.all(instances.map((i) => health(i).catch(() => undefined)));
      if (hs.some((h) => h?.cluster.instances !== all)) return undefined;
      const holders = instances.filter((_, k) => hs[k]!.cluster.leases[source]);
      return holders.length === 1 ? holders[0] : undefined;
    },
    { timeoutMs: 30_000, everyMs: 200, context: () => instances.map((i) => `${i.id}:\n${i.cli.stderr.slice(-3000)}`).join('\n') },
  );
}

/** Observations of `source` that went through the instance's baseline (its /metrics). */
async function observations(i: Instance, source: string): Promise<number> {
  const res = await fetch(`http://${i.listen}/metrics`, { signal: AbortSignal.timeout(5000) });
  const m = new RegExp(`^synchronizer_observations_total\\{source="${source}"\\} (\\d+)$`, 'm').exec(await res.text());
  return m ? Number(m[1]) : 0;
}

const novaKeys = (view: ClusterView): string[] => [...view.entities.keys()].filter((k) => k.startsWith('nova.instance:')).sort();
const serverKeys = (): string[] => os!.state.servers.map((s) => `nova.instance:${s.id as string}`).sort();

describe('a cluster of three CLI instances on one RabbitMQ', () => {
  it('kill -9 of the nova owner: another instance polls within 15 s, warm (no create storm), and the stream holds the truth', async () => {
    os = await startOpenStackServer({ servers: 20 });
    const stream = await followStream('c1');
    const instances = await startCluster('c1', 3);
    const owner = await holderOf(instances, 'nova');
    const others = instances.filter((i) => i !== owner);
    await waitFor('the stream to hold every server', () => novaKeys(stream.view).length === 20, { timeoutMs: 30_000, context: () => owner.cli.stderr.slice(-3000) });
    // The standbys are warm: they folded the owner's events into their baselines.
    await waitFor('the standbys to mirror the 20 instances', async () => (await Promise.all(others.map((i) => entities(i, 'nova.instance')))).every((n) => n === 20), { timeoutMs: 30_000, everyMs: 200 });
    // Only the owner polls nova now: its last three polls carry one token (leases may have moved while the instances started).
    const seen = os.requestsTo('/servers/detail').length;
    await waitFor('three more polls', () => os!.requestsTo('/servers/detail').length >= seen + 3, { timeoutMs: 15_000 });
    const ownerTokens = new Set(os.requestsTo('/servers/detail').slice(-3).map((r) => r.token));
    expect(ownerTokens.size).toBe(1);

    // While nobody polls: one server deleted, one changed. The new owner must report those two only.
    const printed = new Map(instances.map((i) => [i, i.cli.events.length]));
    owner.cli.child.kill('SIGKILL');
    const killedAt = Date.now();
    const before = stream.messages.length;
    const gone = os.state.servers.pop()!;
    const changed = os.state.servers[0]!;
    changed.status = 'SHUTOFF';
    changed['OS-EXT-STS:vm_state'] = 'stopped';

    const firstPoll = await waitFor('a poll by another instance', () => os!.requestsTo('/servers/detail').find((r) => r.at >= killedAt && !ownerTokens.has(r.token)), { timeoutMs: 15_000, everyMs: 50 });
    const failoverMs = firstPoll.at - killedAt;
    expect(failoverMs).toBeLessThanOrEqual(15_000);
    const next = await holderOf(others, 'nova');
    await waitFor('the stream to follow the changes', () => novaKeys(stream.view).length === 19 && stream.view.entities.get(`nova.instance:${changed.id as string}`)?.state === 'SHUTOFF', { timeoutMs: 15_000 });
    // Two more polls of the new owner: anything else it would emit has been emitted.
    const polls = os.requestsTo('/servers/detail').length;
    await waitFor('two more polls', () => os!.requestsTo('/servers/detail').length >= polls + 2, { timeoutMs: 15_000 });
    const after = stream.messages.slice(before).filter((m) => m.key.startsWith('nova.instance:'));
    expect(after.map((m) => `${m.instance} ${m.action} ${m.key}`).sort()).toEqual([`${next.id} delete nova.instance:${gone.id as string}`, `${next.id} update nova.instance:${changed.id as string}`].sort());
    // The new owner's own stdout shows the same two changes, not a create per entity.
    expect(next.cli.events.slice(printed.get(next)).filter((e) => e.entity.type === 'nova.instance').map((e) => e.action).sort()).toEqual(['delete', 'update']);
    expect(novaKeys(stream.view)).toEqual(serverKeys());
    console.info(`cluster failover: kill -9 → first poll by ${next.id} in ${failoverMs} ms; duplicates dropped by the consumer: ${JSON.stringify(stream.dropped)}`);
  }, 150_000);

  it('rabbitmqctl close_connection: the instance stops its sources, another takes them over', async () => {
    os = await startOpenStackServer({ servers: 5 });
    const instances = await startCluster('c2', 3);
    const owner = await holderOf(instances, 'nova');
    const list = await broker.ctl('list_connections', 'pid', 'client_properties', '--quiet', '--no-table-headers');
    const pids = list
      .split('\n')
      .filter((line) => line.includes(`synchronizer cluster c2 ${owner.id}`))
      .map((line) => line.trim().split(/\s+/)[0]!);
    expect(pids).toHaveLength(1);
    const closedAt = Date.now();
    await broker.ctl('close_connection', pids[0]!, 'simulated network loss');
    await waitFor('the owner to stop its sources', () => owner.cli.stderr.includes('"msg":"cluster: leases lost, their sources stopped"'), { timeoutMs: 15_000, context: () => owner.cli.stderr.slice(-3000) });
    const observedByOldOwner = await observations(owner, 'nova');
    const next = await holderOf(instances, 'nova');
    expect(next).not.toBe(owner);
    // The new owner polls; the old one does not any more (it reconnected, and waits as a standby).
    const byNext = await observations(next, 'nova');
    await waitFor('three polls by the new owner', async () => (await observations(next, 'nova')) >= byNext + 3, { timeoutMs: 15_000, everyMs: 100 });
    expect(await observations(owner, 'nova')).toBe(observedByOldOwner);
    expect((await health(owner)).cluster).toMatchObject({ connected: true, leases: { nova: false } });
    console.info(`cluster close_connection: ${owner.id} stopped its sources, ${next.id} took nova over ${Date.now() - closedAt} ms after the close`);
  }, 150_000);

  it('notifications partitioned by entity over the instances: kill -9 of a partition holder loses no message', async () => {
    const exchange = 'c3nova';
    const sources = [
      '  - name: bus',
      '    use: openstack.notifications',
      `    transportUrl: ${broker.transportUrl}`,
      `    exchanges: [${exchange}]`,
      '    topics: [versioned_notifications]',
      '    queue: c3.synchronizer',
      '    prefetch: 20',
    ];
    const stream = await followStream('c3');
    const instances = await startCluster('c3', 3, sources, ['  partitioned: [bus]', '  partitions: 3']);
    const holders = await Promise.all(['bus', 'bus.p0', 'bus.p1', 'bus.p2'].map((lease) => holderOf(instances, lease)));
    // Every partition queue exists and is bound before anything is published (the router's queue is durable).
    await waitFor('the partitions to be consumed', () => instances.filter((i) => /"msg":"consuming notifications"/.test(i.cli.stderr)).length >= 2, { timeoutMs: 30_000, context: () => instances.map((i) => i.cli.stderr.slice(-2000)).join('\n') });
    await waitFor('the router', () => holders[0]!.cli.stderr.includes('"msg":"cluster: routing notifications to the partitions"'), { timeoutMs: 30_000 });

    const template = novaSample('instance-update.json');
    const E = 30;
    const ROUNDS = 10;
    const ids = Array.from({ length: E }, () => randomUUID());
    const publisher = await OsloPublisher.connect(broker.url);
    const publishRound = async (round: number): Promise<void> => {
      for (let e = 0; e < E; e++) {
        const payload = structuredClone(template.payload) as { 'nova_object.data': Record<string, unknown> };
        payload['nova_object.data'].uuid = ids[e];
        payload['nova_object.data'].display_name = `vm-${e}-${round}`;
        publisher.publishNoWait(exchange, 'versioned_notifications.info', osloBody({ ...template, payload }, { messageId: `m-${round}-${e}`, timestamp: osloTimestamp(new Date(Date.UTC(2026, 10, 30, 6, 0, round, e))) }));
      }
      await publisher.flush();
    };
    try {
      await publisher.declare(exchange, 'versioned_notifications.info');
      for (let round = 0; round < 5; round++) await publishRound(round);
      // Mid-stream: the holder of partition 0 dies with what it holds unacked.
      const victim = holders[1]!;
      await waitFor('partition 0 to be working', () => victim.cli.events.length > 0, { timeoutMs: 15_000, everyMs: 5 });
      victim.cli.child.kill('SIGKILL');
      for (let round = 5; round < ROUNDS; round++) await publishRound(round);
    } finally {
      await publisher.close();
    }
    const names = (): string[] => [...stream.view.entities.values()].filter((x) => x.type === 'nova.instance').map((x) => x.name ?? '').sort();
    const expected = Array.from({ length: E }, (_, e) => `vm-${e}-${ROUNDS - 1}`).sort();
    await waitFor('every instance in its last state', () => JSON.stringify(names()) === JSON.stringify(expected), { timeoutMs: 60_000, context: () => `${names().length} entities; ${instances.map((i) => i.cli.stderr.slice(-1500)).join('\n')}` });
    // Not one message lost: every state every entity went through was published to the stream.
    const seen = new Set(stream.messages.filter((m) => m.key.startsWith('nova.instance:')).map((m) => `${m.key} ${m.name}`));
    const missing = ids.flatMap((id, e) => Array.from({ length: ROUNDS }, (_, r) => `nova.instance:${id} vm-${e}-${r}`)).filter((x) => !seen.has(x));
    expect(missing).toEqual([]);
    // In order per entity: one partition, one consumer at a time (a redelivered message may repeat an older state once).
    for (const id of ids) {
      const rounds = stream.messages.filter((m) => m.key === `nova.instance:${id}`).map((m) => Number(m.name!.split('-')[2]));
      expect(rounds.filter((r, k) => k > 0 && r < rounds[k - 1]! && !rounds.slice(0, k).includes(r))).toEqual([]);
    }
    console.info(`cluster partitions: ${E * ROUNDS} notifications, ${stream.messages.length} messages on the stream, consumer dropped ${JSON.stringify(stream.dropped)}`);
  }, 180_000);
});
