/**
 * The cluster, as the service composes it: the leases (src/cluster/lease.ts) gate the sources,
 * the amqp sink publishes this instance's events to the cluster's exchange stamped with the
 * instance and the observation time (src/cluster/stream.ts), and the mirror folds the other
 * instances' events back into the baseline (src/cluster/mirror.ts).
 *
 *   lease of S held ──▶ S runs here ──▶ baseline ──▶ cluster sink ──▶ exchange ──▶ every other instance's mirror
 */
import { type Observable, type Subscription, asyncScheduler, distinctUntilChanged, of, switchMap } from 'rxjs';
import type { NotificationOptions } from '../../sources/openstack/notifications.js';
import type { SourceEntry } from '../config.js';
import type { Logger } from '../log.js';
import type { Observation } from '../model.js';
import { createAmqpSink, sinkMessage } from '../sinks/amqp.js';
import type { Sink } from '../sinks/index.js';
import type { Source } from '../source.js';
import type { SyncItem, Synchronizer } from '../synchronizer.js';
import type { ClusterOptions } from './config.js';
import { type LeaseStatus, createLeases } from './lease.js';
import { partitionLeases, partitionedNotifications } from './partition.js';
import { HELLO_ROUTING_KEY, type MirrorStats, createMirror } from './mirror.js';
import { INSTANCE_HEADER, OBSERVED_AT_HEADER } from './stream.js';

export { readClusterOptions, defaultInstanceId, type ClusterOptions } from './config.js';
export { applyClusterEvent, readClusterEvent, emptyClusterView, INSTANCE_HEADER, OBSERVED_AT_HEADER, type ClusterEvent, type ClusterView, type ClusterEventOutcome } from './stream.js';
export { leaseQueue, presenceQueue } from './lease.js';

/** What /health shows of the cluster. */
export interface ClusterHealth extends LeaseStatus {
  name: string;
  instance: string;
  mirror?: MirrorStats;
}

export interface Cluster {
  readonly instance: string;
  /**
   * The source, run only while this instance holds its lease (as it is, when it runs everywhere);
   * a partitioned notifications source is rebuilt from its config entry's options.
   */
  lease(source: Source<unknown>, entry?: SourceEntry): Source<unknown>;
  /** The other instances' events, for createSynchronizer's `mirror` (undefined with `mirror: false`). */
  readonly mirror$: Observable<Observation> | undefined;
  /** The sink that publishes this instance's events to the cluster's exchange. */
  readonly sink: Sink;
  start(): void;
  stop(): Promise<void>;
  health(): ClusterHealth;
}

/**
 * A source gated by its lease: subscribed while `held$` is true, unsubscribed (the poll stops) the
 * moment it turns false; while not held it reports itself up (another instance runs it).
 *
 * ```
 * held$:   f----t---------f----t---
 * signal$: u----(source.signal$)u----(source.signal$ again)
 * ```
 */
export function leasedSource<R>(source: Source<R>, held$: Observable<boolean>): Source<R> {
  const standby = of({ kind: 'health' as const, status: 'up' as const });
  return { ...source, signal$: held$.pipe(distinctUntilChanged(), switchMap((held) => (held ? source.signal$ : standby))) };
}

export function createCluster(options: ClusterOptions, sourceNames: readonly string[], log: Logger): Cluster {
  const { instance } = options;
  for (const name of options.everywhere) {
    if (!sourceNames.includes(name)) throw new Error(`cluster.everywhere names ${JSON.stringify(name)}, which is not a configured source`);
  }
  const leased = sourceNames.filter((n) => !options.everywhere.includes(n)).flatMap((n) => (options.partitioned.includes(n) ? partitionLeases(n, options.partitions) : [n]));
  let sync: Synchronizer | undefined;
  /** A hello is owed to the cluster: the mirror (re)started and may have missed what was published before. */
  let helloOwed = false;
  const sayHello = (): void => {
    if (helloOwed && leases.publish(options.exchange, HELLO_ROUTING_KEY, Buffer.from(JSON.stringify({ kind: 'hello', instance })), { [INSTANCE_HEADER]: instance })) helloOwed = false;
  };
  /** Another instance joined: the current state of every source held here goes out as replay items. */
  const replayTo = (other: string): void => {
    if (!sync) return;
    const held = Object.entries(leases.status().leases).filter(([, h]) => h).map(([s]) => s);
    let sent = 0;
    for (const entity of sync.snapshot()) {
      if (!held.includes(entity.source)) continue;
      const m = sinkMessage({ kind: 'replay', entity });
      if (leases.publish(options.exchange, m.routingKey, m.body, { [INSTANCE_HEADER]: instance, [OBSERVED_AT_HEADER]: entity.observedAt })) sent += 1;
    }
    if (held.length > 0) log.info('cluster: replayed the held sources for a new instance', { to: other, sources: held, entities: sent });
  };
  const leases = createLeases({ broker: options, cluster: options.name, instance, sources: leased, heartbeatSeconds: options.heartbeatSeconds, retryMs: options.leaseRetryMs, log, exchange: options.exchange, onUp: sayHello });
  const mirror = options.mirror
    ? createMirror({
        broker: options,
        exchange: options.exchange,
        queue: `${options.name}.mirror.${instance}`,
        instance,
        log,
        onUp: () => {
          helloOwed = true;
          sayHello();
        },
        onHello: replayTo,
      })
    : undefined;
  const stamp = (item: SyncItem): Record<string, unknown> => {
    switch (item.kind) {
      case 'event':
        return { [INSTANCE_HEADER]: instance, [OBSERVED_AT_HEADER]: sync?.observedAt(item.event) ?? item.event.entity.observedAt };
      case 'replay':
        return { [INSTANCE_HEADER]: instance, [OBSERVED_AT_HEADER]: item.entity.observedAt };
      default:
        return { [INSTANCE_HEADER]: instance };
    }
  };
  const publisher = createAmqpSink({ ...options, exchange: options.exchange, stamp, connectionName: `synchronizer cluster sink ${instance}` }, log.child({ sink: 'cluster' }));
  const sink: Sink = {
    attach(s): Subscription {
      sync = s;
      return publisher.attach(s);
    },
    close: async () => publisher.close?.(),
    stats: () => publisher.stats(),
  };
  return {
    instance,
    lease(source, entry) {
      if (options.partitioned.includes(source.name) && entry) {
        return partitionedNotifications(entry.options as NotificationOptions, { name: source.name, log: log.child({ source: source.name }), scheduler: asyncScheduler }, { name: options.name, partitions: options.partitions, held$: (lease) => leases.held$(lease) }) as Source<unknown>;
      }
      return leased.includes(source.name) ? leasedSource(source, leases.held$(source.name)) : source;
    },
    mirror$: mirror?.observation$,
    sink,
    start: () => leases.start(),
    stop: () => leases.stop(),
    health: () => ({ name: options.name, instance, ...leases.status(), ...(mirror ? { mirror: mirror.stats() } : {}) }),
  };
}
