/**
 * `cluster` benchmark, against a private RabbitMQ node (with the consistent-hash plugin) and the
 * local OpenStack, with real CLI processes:
 * 1. Throughput: N versioned `instance.update` notifications (2,000 instances, every message a
 *    change) through a cluster of 1, 2 and 3 instances whose notifications source is partitioned
 *    (6 partitions): from the first publish until a consumer of the cluster's exchange has seen
 *    every resulting event. The router is one instance's work whatever the size, and the broker
 *    carries each message three times (oslo's queue, a partition, the stream): where it
 *    saturates, more instances stop helping.
 * 2. Failover: three instances polling nova every 500 ms; kill -9 of the holder of nova's lease,
 *    then of the next one: the time from the kill to the first poll by another instance.
 *
 * CLUSTER_BENCH_N overrides N (default 20,000).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import amqp from 'amqplib';
import { type ClusterHealth, readClusterEvent } from '../../src/cluster/index.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { novaSample, osloBody, osloTimestamp } from '../support/nova-samples.js';
import { type OpenStackServer, startOpenStackServer } from '../support/openstack-server.js';
import { OsloPublisher } from '../support/oslo-publisher.js';
import { freePort } from '../support/ports.js';
import { RABBITMQ_SERVER, RabbitNode } from '../support/rabbitmq.js';
import { waitFor } from '../support/wait.js';
import type { Bench, BenchRow } from './run.js';

const N = Number(process.env.CLUSTER_BENCH_N ?? 20_000);
const ENTITIES = 2_000;
const PARTITIONS = 6;
const template = novaSample('instance-update.json');

function body(i: number): Buffer {
  const payload = structuredClone(template.payload) as { 'nova_object.data': Record<string, unknown> };
  payload['nova_object.data'].uuid = `178b0921-8f85-4257-88b6-${(i % ENTITIES).toString(16).padStart(12, '0')}`;
  payload['nova_object.data'].display_name = `vm-${i}`;
  return osloBody({ ...template, payload }, { messageId: `m-${i}`, timestamp: osloTimestamp(new Date(Date.UTC(2026, 10, 30, 0, 0, 0, 0) + i)) });
}

/** The repository's CLI (this file runs from dist/test/bench/). */
const BIN = fileURLToPath(new URL('../../../bin/synchronizer.js', import.meta.url));

/** A CLI process: its stderr kept (the last 64 KB) for the waits and for failure messages. */
class Proc {
  readonly child: ChildProcess;
  stderr = '';
  readonly exited: Promise<void>;
  constructor(args: string[]) {
    this.child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-65536)));
    this.exited = new Promise((resolve) => this.child.on('close', () => resolve()));
  }
}

interface Instance {
  cli: Proc;
  listen: string;
}

async function health(i: Instance): Promise<ClusterHealth | undefined> {
  try {
    const res = await fetch(`http://${i.listen}/health`, { signal: AbortSignal.timeout(2000) });
    return ((await res.json()) as { cluster: ClusterHealth }).cluster;
  } catch {
    return undefined;
  }
}

/** Waits until every lease is held by exactly one of `instances` and each counts them all. */
async function settled(instances: Instance[], leases: string[]): Promise<ClusterHealth[]> {
  return waitFor(
    'the leases to settle',
    async () => {
      const hs = await Promise.all(instances.map(health));
      if (hs.some((h) => h?.instances !== instances.length)) return undefined;
      return leases.every((l) => hs.filter((h) => h!.leases[l]).length === 1) ? (hs as ClusterHealth[]) : undefined;
    },
    { timeoutMs: 60_000, everyMs: 200, context: () => instances.map((i) => i.cli.stderr.slice(-2000)).join('\n') },
  );
}

async function startInstances(dir: string, count: number, lines: (listen: string, n: number) => string[]): Promise<Instance[]> {
  const out: Instance[] = [];
  for (let n = 1; n <= count; n++) {
    const listen = `127.0.0.1:${await freePort()}`;
    const file = join(dir, `i${n}-${Date.now()}.yaml`);
    writeFileSync(file, lines(listen, n).join('\n') + '\n');
    out.push({ cli: new Proc(['--config', file]), listen });
  }
  return out;
}

function stop(instances: Instance[]): Promise<unknown> {
  for (const i of instances) i.cli.child.kill('SIGKILL');
  return Promise.all(instances.map((i) => i.cli.exited));
}

async function throughput(node: RabbitNode, dir: string, count: number): Promise<number> {
  const name = `b${count}`;
  const exchange = `${name}nova`;
  const instances = await startInstances(dir, count, (listen, n) => [
    'log: info',
    `listen: ${listen}`,
    'sinks: []',
    'cluster:',
    `  transportUrl: ${node.transportUrl}`,
    `  name: ${name}`,
    `  instance: ${name}-i${n}`,
    '  partitioned: [bus]',
    `  partitions: ${PARTITIONS}`,
    'sources:',
    '  - name: bus',
    '    use: openstack.notifications',
    `    transportUrl: ${node.transportUrl}`,
    `    exchanges: [${exchange}]`,
    '    topics: [versioned_notifications]',
    `    queue: ${name}.synchronizer`,
    '    prefetch: 500',
  ]);
  const connection = await amqp.connect(node.url);
  try {
    await settled(instances, ['bus', ...Array.from({ length: PARTITIONS }, (_, k) => `bus.p${k}`)]);
    const channel = await connection.createChannel();
    await channel.assertExchange(name, 'topic', { durable: true, autoDelete: false });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, name, 'nova.instance.*');
    await channel.prefetch(1000);
    let seen = 0;
    let done: () => void = () => undefined;
    const all = new Promise<void>((resolve) => (done = resolve));
    await channel.consume(queue, (m) => {
      if (!m) return;
      if (readClusterEvent(m.content, m.properties.headers as Record<string, unknown>)?.action === 'update' || m.fields.routingKey.endsWith('.create')) seen += 1;
      channel.ack(m);
      if (seen >= N) done();
    });
    // The router's queue exists once its holder consumes; publish only then.
    await waitFor('the router', () => instances.some((i) => i.cli.stderr.includes('"msg":"cluster: routing notifications to the partitions"')), 30_000);
    const publisher = await OsloPublisher.connect(node.url);
    await publisher.declare(exchange, 'versioned_notifications.info');
    const started = performance.now();
    for (let i = 0; i < N; i++) {
      if (!publisher.publishNoWait(exchange, 'versioned_notifications.info', body(i))) await new Promise((r) => setImmediate(r));
      if (i % 1000 === 999) await publisher.flush();
    }
    await publisher.flush();
    await publisher.close();
    await Promise.race([all, new Promise((_, reject) => setTimeout(() => reject(new Error(`cluster of ${count}: ${seen} of ${N} events after 300 s`)), 300_000))]);
    return N / ((performance.now() - started) / 1000);
  } finally {
    await connection.close().catch(() => undefined);
    await stop(instances);
  }
}

async function failovers(node: RabbitNode, os: OpenStackServer, dir: string): Promise<{ instances: number; failoverMs: number }[]> {
  const instances = await startInstances(dir, 3, (listen, n) => [
    'log: warn',
    `listen: ${listen}`,
    'sinks: []',
    'cluster:',
    `  transportUrl: ${node.transportUrl}`,
    '  name: bf',
    `  instance: bf-i${n}`,
    'sources:',
    '  - name: nova',
    '    use: openstack.nova',
    '    interval: 500ms',
    '    region: RegionOne',
    `    auth: ${JSON.stringify(os.auth)}`,
  ]);
  const out: { instances: number; failoverMs: number }[] = [];
  try {
    let live = instances;
    for (const size of [3, 2]) {
      const hs = await settled(live, ['nova']);
      const holder = live[hs.findIndex((h) => h.leases.nova)]!;
      const polls = os.requestsTo('/servers/detail').length;
      await waitFor('two polls by the holder', () => os.requestsTo('/servers/detail').length >= polls + 2, 15_000);
      const tokens = new Set(os.requestsTo('/servers/detail').slice(-2).map((r) => r.token));
      holder.cli.child.kill('SIGKILL');
      const killed = Date.now();
      const first = await waitFor('a poll by another instance', () => os.requestsTo('/servers/detail').find((r) => r.at >= killed && !tokens.has(r.token)), { timeoutMs: 60_000, everyMs: 10 });
      out.push({ instances: size, failoverMs: first.at - killed });
      live = live.filter((i) => i !== holder);
    }
  } finally {
    await stop(instances);
  }
  return out;
}

const bench: Bench = {
  name: 'cluster',
  title: `notifications/s through a cluster of 1, 2, 3 CLI instances (${N} messages, ${PARTITIONS} partitions), and kill -9 → first poll by another instance`,
  needs: 'rabbitmq-server (with its rabbitmq_consistent_hash_exchange plugin), the built CLI',
  missing: () => (existsSync(RABBITMQ_SERVER) ? undefined : `${RABBITMQ_SERVER} (Debian package rabbitmq-server)`),
  async run() {
    const node = await RabbitNode.start({ name: 'bench-cluster', plugins: ['rabbitmq_consistent_hash_exchange'] });
    const os = await startOpenStackServer({ servers: 100 });
    const dir = mkdtempSync(join(tmpdir(), 'bench-cluster-'));
    try {
      const rows: BenchRow[] = [];
      const failover = await failovers(node, os, dir);
      for (const count of [1, 2, 3]) {
        const msgsPerSec = await throughput(node, dir, count);
        const f = failover.find((x) => x.instances === count);
        rows.push({ bench: 'cluster', instances: count, msgsPerSec: Math.round(msgsPerSec), ...(f ? { failoverMs: f.failoverMs } : {}) });
      }
      return rows;
    } finally {
      await os.close();
      await node.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
export default bench;
