/**
 * The service's Prometheus metrics, exposed with prom-client: the default process and Node.js
 * metrics, and the synchronizer's own, read from the hub's public API (entity$, metrics(),
 * health(), snapshot()) and from the `onObserved` hook.
 *
 * | metric                                               | type      | labels               | from                            |
 * |------------------------------------------------------|-----------|----------------------|---------------------------------|
 * | synchronizer_events_total                            | counter   | type, action         | entity$                         |
 * | synchronizer_entities                                | gauge     | type                 | snapshot() at scrape            |
 * | synchronizer_tombstones                              | gauge     |                      | metrics()                       |
 * | synchronizer_observations_total                      | counter   | source               | metrics()                       |
 * | synchronizer_invalid_records_total                   | counter   | source               | metrics()                       |
 * | synchronizer_poll_duration_seconds                   | histogram | source               | snapshot: emit time - its `at`  |
 * | synchronizer_source_last_success_timestamp_seconds   | gauge     | source               | last snapshot emitted           |
 * | synchronizer_source_up, synchronizer_source_failures | gauge     | source               | health()                        |
 * | synchronizer_notifications_{consumed,rejected,dead_lettered}_total | counter | source | notification sources' stats |
 * | synchronizer_publish_to_emit_seconds                 | histogram | source               | change: emit time - its `at`    |
 * | synchronizer_delivery_to_emit_seconds                | histogram | source               | change: emit time - `receivedAt` |
 * | synchronizer_sink_backlog_events                     | gauge     |                      | metrics().backlog               |
 * | synchronizer_sink_unconfirmed_messages               | gauge     | sink                 | the sinks' stats()              |
 * | synchronizer_consumer_resyncs_total                  | counter   |                      | metrics()                       |
 * | synchronizer_callback_errors_total                   | counter   |                      | metrics()                       |
 * | synchronizer_clock_skew_corrections_total            | counter   |                      | metrics()                       |
 *
 * Label values are source names, sink names and entity types: never URLs (they may hold
 * credentials).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Subscription } from 'rxjs';
import { type EntityEvent, type Observation, receivedNow } from './model.js';
import type { Source } from './source.js';
import type { Synchronizer } from './synchronizer.js';

/** What a notification source counts (sources/openstack/notifications.ts `stats`). */
interface NotificationCounts {
  acked: number;
  rejected: number;
  deadLettered?: number;
}

function notificationStats(source: Source<unknown>): NotificationCounts | undefined {
  const stats = (source as { stats?: unknown }).stats;
  if (typeof stats !== 'object' || stats === null) return undefined;
  const s = stats as Partial<NotificationCounts>;
  return typeof s.acked === 'number' && typeof s.rejected === 'number' ? (s as NotificationCounts) : undefined;
}

/** A sink as the metrics see it: a name for its label, and what it holds unconfirmed. */
export interface MeteredSink {
  name: string;
  stats?(): { unconfirmed: number; setAside?: number };
}

export interface ServiceMetrics {
  readonly registry: Registry;
  /** Give to createSynchronizer's `onObserved`. */
  observed(observation: Observation, events: readonly EntityEvent[]): void;
  /** Starts counting events (subscribes to entity$); unsubscribe to stop. */
  attach(sync: Synchronizer): Subscription;
  /** The exposition, as served on /metrics. */
  text(): Promise<string>;
  readonly contentType: string;
}

/** Seconds between an observation's `at` and now; undefined when `at` is not a time. */
function secondsSince(at: string, now: number): number | undefined {
  const t = Date.parse(at);
  return Number.isNaN(t) ? undefined : Math.max(0, (now - t) / 1000);
}

/**
 * Creates the registry of one service. Each service has its own (never prom-client's global one),
 * so two services in one process, or tests, do not mix their counts.
 */
export function createServiceMetrics(sync: () => Synchronizer, sources: readonly Source<unknown>[], sinks: readonly MeteredSink[]): ServiceMetrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const seenTypes = new Set<string>();
  const events = new Counter({ name: 'synchronizer_events_total', help: 'Events emitted on entity$, by entity type and action.', labelNames: ['type', 'action'], registers });
  new Gauge({
    name: 'synchronizer_entities',
    help: 'Entities in the baseline, by type.',
    labelNames: ['type'],
    registers,
    collect() {
      const counts = new Map<string, number>();
      // Types that emptied stay at 0 rather than vanish, so a rate or an alert sees the drop.
      for (const type of seenTypes) counts.set(type, 0);
      for (const e of sync().snapshot()) counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
      for (const [type, n] of counts) {
        seenTypes.add(type);
        this.set({ type }, n);
      }
    },
  });
  new Gauge({ name: 'synchronizer_tombstones', help: 'Deleted entities remembered against late notifications.', registers, collect() { this.set(sync().metrics().tombstones); } });

  /** A counter whose value is read from the hub at scrape time. */
  const mirrored = (name: string, help: string, read: () => number): void => {
    new Counter({ name, help, registers, collect() { this.reset(); this.inc(read()); } });
  };
  const mirroredBySource = (name: string, help: string, read: () => Iterable<[string, number]>): void => {
    new Counter({
      name,
      help,
      labelNames: ['source'],
      registers,
      collect() {
        this.reset();
        for (const [source, n] of read()) this.inc({ source }, n);
      },
    });
  };
  mirroredBySource('synchronizer_observations_total', 'Observations that went through the baseline, by source.', () => Object.entries(sync().metrics().observations));
  mirroredBySource('synchronizer_invalid_records_total', 'Records left out as invalid, by source.', () => Object.entries(sync().metrics().invalidRecords));
  const notifications = sources.flatMap((s) => {
    const stats = notificationStats(s);
    return stats ? [[s.name, stats] as const] : [];
  });
  mirroredBySource('synchronizer_notifications_consumed_total', 'Notifications acked after their change went through (or that carried none).', () => notifications.map(([s, n]) => [s, n.acked]));
  mirroredBySource('synchronizer_notifications_rejected_total', 'Notifications refused (bad body or unmappable), dead-lettered or not.', () => notifications.map(([s, n]) => [s, n.rejected]));
  mirroredBySource('synchronizer_notifications_dead_lettered_total', 'Refused notifications copied to the dead-letter exchange.', () => notifications.map(([s, n]) => [s, n.deadLettered ?? 0]));
  mirrored('synchronizer_consumer_resyncs_total', 'Consumers resynchronised after falling behind.', () => sync().metrics().resyncs);
  mirrored('synchronizer_callback_errors_total', 'Consumer callbacks that threw or rejected.', () => sync().metrics().callbackErrors);
  mirrored('synchronizer_clock_skew_corrections_total', 'Observations stamped too far in the future, taken at the local time.', () => sync().metrics().clockSkewCorrections ?? 0);

  const pollDuration = new Histogram({
    name: 'synchronizer_poll_duration_seconds',
    help: 'Time from the start of a successful poll to its snapshot going through the baseline, by source.',
    labelNames: ['source'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers,
  });
  const lastSuccess = new Gauge({ name: 'synchronizer_source_last_success_timestamp_seconds', help: 'Unix time of the last complete snapshot of a source.', labelNames: ['source'], registers });
  const publishToEmit = new Histogram({
    name: 'synchronizer_publish_to_emit_seconds',
    help: 'Time from a notification being published (its timestamp) to its change going through the baseline, by source.',
    labelNames: ['source'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60],
    registers,
  });
  const deliveryToEmit = new Histogram({
    name: 'synchronizer_delivery_to_emit_seconds',
    help: 'Time from a pushed message (AMQP delivery, HTTP push) reaching the process to its change going through the baseline, by source: the synchronizer\'s own part of publish_to_emit.',
    labelNames: ['source'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers,
  });
  new Gauge({
    name: 'synchronizer_source_up',
    help: '1 when the source is up.',
    labelNames: ['source'],
    registers,
    collect() {
      for (const h of Object.values(sync().health())) this.set({ source: h.source }, h.status === 'up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'synchronizer_source_failures',
    help: 'Failures in a row, by source.',
    labelNames: ['source'],
    registers,
    collect() {
      for (const h of Object.values(sync().health())) this.set({ source: h.source }, h.failures);
    },
  });
  new Gauge({ name: 'synchronizer_sink_backlog_events', help: 'Events queued for the sinks and register() consumers, not yet handed to them.', registers, collect() { this.set(sync().metrics().backlog); } });
  new Gauge({
    name: 'synchronizer_sink_unconfirmed_messages',
    help: 'Messages a sink sent that its destination has not confirmed yet, by sink.',
    labelNames: ['sink'],
    registers,
    collect() {
      for (const s of sinks) if (s.stats) this.set({ sink: s.name }, s.stats().unconfirmed);
    },
  });
  new Counter({
    name: 'synchronizer_sink_set_aside_messages_total',
    help: 'Messages a sink gave up on because its destination will never take them (too large, refused), by sink.',
    labelNames: ['sink'],
    registers,
    collect() {
      this.reset();
      for (const s of sinks) if (s.stats) this.inc({ sink: s.name }, s.stats().setAside ?? 0);
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    observed(observation) {
      const now = Date.now();
      const seconds = secondsSince(observation.at, now);
      if (observation.kind === 'snapshot') {
        lastSuccess.set({ source: observation.source }, now / 1000);
        if (seconds !== undefined) pollDuration.observe({ source: observation.source }, seconds);
      } else {
        if (seconds !== undefined) publishToEmit.observe({ source: observation.source }, seconds);
        if (observation.receivedAt !== undefined) deliveryToEmit.observe({ source: observation.source }, Math.max(0, (receivedNow() - observation.receivedAt) / 1000));
      }
    },
    attach: (hub) => hub.entity$.subscribe((e) => events.inc({ type: e.entity.type, action: e.action })),
    text: () => registry.metrics(),
  };
}
