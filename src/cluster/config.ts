/**
 * The `cluster:` block of the service config: several instances of one config share a RabbitMQ,
 * hold one lease per source there, publish their events to the cluster's exchange and mirror it.
 */
import { hostname } from 'node:os';
import { type BrokerOptions, readBrokerOptions } from '../amqp.js';
import type { OptionReader } from '../options.js';

export interface ClusterOptions extends BrokerOptions {
  /** The cluster's name: prefix of its queues, and its exchange's name unless `exchange` says otherwise. */
  name: string;
  /** This instance's id (config `instance`, else `<host name>-<pid>`): in logs, /health, metrics and every message. */
  instance: string;
  /** The exchange every instance publishes its events to, and mirrors (default: `name`). */
  exchange: string;
  /** AMQP heartbeat of the lease connection, seconds (default 10): how soon the broker frees a silent holder's leases. */
  heartbeatSeconds: number;
  /** How often a free lease is tried and the holder's link is checked, ms (default 1 s). */
  leaseRetryMs: number;
  /** Sources that run on every instance, without a lease (a webhook behind a load balancer). */
  everywhere: string[];
  /** Fold the other instances' events into this one's baseline (default true). */
  mirror: boolean;
  /** Notifications sources spread over the instances by entity (consistent-hash exchange). */
  partitioned: string[];
  /** Partitions of each of them (default 4): at most this many instances share one's work. */
  partitions: number;
}

/** Names of queues and exchanges: what RabbitMQ takes, short of `amq.` (reserved). */
const NAME = /^[A-Za-z0-9_.:-]{1,200}$/;

/** `<host name>-<pid>`: unique among the instances running now, which is what the leases need. */
export function defaultInstanceId(): string {
  return `${hostname()}-${process.pid}`;
}

/** Reads and checks `cluster:`; a bad field is refused with its path (`cluster.transportUrl`…). */
export function readClusterOptions(read: OptionReader): ClusterOptions {
  const broker = readBrokerOptions(read, 'transportUrl');
  const name = read.string('name', 'synchronizer');
  if (!NAME.test(name) || name.startsWith('amq.')) read.fail('name', `expected letters, digits, - _ . : (not starting with amq.), got ${JSON.stringify(name)}`);
  const exchange = read.string('exchange', name);
  if (!NAME.test(exchange) || exchange.startsWith('amq.')) read.fail('exchange', `expected an exchange name of letters, digits, - _ . : (not starting with amq.), got ${JSON.stringify(exchange)}`);
  const instance = read.string('instance', defaultInstanceId());
  if (!NAME.test(instance)) read.fail('instance', `expected letters, digits, - _ . : (it names a queue), got ${JSON.stringify(instance)}`);
  const heartbeat = read.duration('heartbeat', 10_000);
  if (heartbeat < 2000 || heartbeat % 1000 !== 0) read.fail('heartbeat', `expected whole seconds, at least 2s (AMQP heartbeats are in seconds), got ${heartbeat} ms`);
  const leaseRetryMs = read.duration('leaseRetry', 1000);
  if (leaseRetryMs < 100) read.fail('leaseRetry', `must be at least 100ms, got ${leaseRetryMs} ms`);
  if (leaseRetryMs * 2 > heartbeat) read.fail('leaseRetry', `must be at most half the heartbeat (${heartbeat} ms): the holder checks its link that often`);
  const everywhere = read.stringList('everywhere', []);
  const mirror = read.boolean('mirror', true);
  const partitioned = read.stringList('partitioned', []);
  const partitions = read.number('partitions', 4, { min: 1, integer: true });
  if (partitions > 64) read.fail('partitions', `at most 64 (a queue and a lease each), got ${partitions}`);
  for (const name of partitioned) {
    if (everywhere.includes(name)) read.fail('partitioned', `${JSON.stringify(name)} is also in everywhere: a source is either partitioned or run everywhere`);
  }
  return { ...broker, name, exchange, instance, heartbeatSeconds: heartbeat / 1000, leaseRetryMs, everywhere, mirror, partitioned, partitions };
}
