/**
 * The warm standby: every instance folds the cluster's stream back into its own baseline, so the
 * instance that takes a lease over starts with the state the old owner published, and its first
 * snapshot emits only what really changed.
 *
 * | message of the cluster's exchange      | observation (folded in without events)             |
 * |----------------------------------------|----------------------------------------------------|
 * | `<type>.create`, `.update`, `.replay`  | change upsert of the entity, at its observation time |
 * | `<type>.delete`                        | change delete of the entity, at its observation time |
 * | published by this instance             | acked and skipped (already in the baseline)        |
 * | `cluster.hello` of another instance    | acked; `onHello` (the holders replay their sources' entities) |
 * | `synced`, `resync`, not the synchronizer's | acked and skipped                              |
 *
 * Each instance has its own queue `<cluster>.mirror.<instance>` bound to the exchange with `#`; it
 * expires 10 minutes after its consumer left (a restarted instance with the same id and a
 * state.dir catches up on what it missed). A message is acked once its observation settled (with
 * a state.dir: persisted), so a crash re-folds at worst.
 */
import { EMPTY, type Observable, mergeMap, of } from 'rxjs';
import { type BrokerOptions, amqpConsume$ } from '../amqp.js';
import type { Logger } from '../log.js';
import type { Entity, Observation } from '../model.js';
import { INSTANCE_HEADER, readClusterEvent } from './stream.js';

export const MIRROR_EXPIRES_MS = 10 * 60_000;

export interface MirrorOptions {
  broker: BrokerOptions;
  exchange: string;
  queue: string;
  instance: string;
  log: Logger;
  /** The mirror's queue is bound and consumed (again): say hello so that the holders replay. */
  onUp?: () => void;
  /** Another instance said hello: it needs the current state of the sources held here. */
  onHello?: (instance: string) => void;
}

/** Routing key of the message an instance sends once its mirror is consuming. */
export const HELLO_ROUTING_KEY = 'cluster.hello';

export interface MirrorStats {
  connected: boolean;
  /** Messages of other instances folded into the baseline. */
  folded: number;
  /** Messages of this instance, skipped. */
  own: number;
}

/** The observation source name the mirror's changes carry (entities keep their own `source`). */
export const MIRROR_SOURCE = 'cluster';

/** An entity as it came over the wire, with the fields the baseline relies on made whole. */
function wholeEntity(e: Entity): Entity {
  const { raw: _raw, ...rest } = e;
  return {
    ...rest,
    parents: Array.isArray(e.parents) ? e.parents : [],
    children: Array.isArray(e.children) ? e.children : [],
    attributes: typeof e.attributes === 'object' && e.attributes !== null ? e.attributes : {},
  };
}

export function createMirror(options: MirrorOptions): { observation$: Observable<Observation>; stats(): MirrorStats } {
  const stats: MirrorStats = { connected: false, folded: 0, own: 0 };
  const { log } = options;
  const observation$ = amqpConsume$({
    endpoints: options.broker.endpoints,
    queue: options.queue,
    durableQueue: true,
    queueArguments: { 'x-expires': MIRROR_EXPIRES_MS },
    // As the amqp sink declares it.
    exchanges: [options.exchange],
    durableExchanges: true,
    bindings: [{ exchange: options.exchange, routingKey: '#' }],
    prefetch: 1000,
    backoff: { initialMs: options.broker.reconnectMs, maxMs: options.broker.maxReconnectMs },
    connectionName: `synchronizer cluster mirror ${options.instance}`,
    tls: options.broker.tls,
  }).pipe(
    mergeMap((signal): Observable<Observation> => {
      if (signal.kind === 'up') {
        stats.connected = true;
        log.info('cluster: mirroring the cluster stream', { queue: options.queue, endpoint: signal.endpoint });
        options.onUp?.();
        return EMPTY;
      }
      if (signal.kind === 'down') {
        stats.connected = false;
        log.warn('cluster: mirror disconnected, retrying', { error: signal.error, retryInMs: signal.retryInMs });
        return EMPTY;
      }
      const d = signal.delivery;
      const headers = d.properties.headers as Record<string, unknown> | undefined;
      if (headers?.[INSTANCE_HEADER] === options.instance) {
        stats.own += 1;
        d.ack();
        return EMPTY;
      }
      if (d.routingKey === HELLO_ROUTING_KEY) {
        d.ack();
        const from = headers?.[INSTANCE_HEADER];
        if (typeof from === 'string') options.onHello?.(from);
        return EMPTY;
      }
      const event = readClusterEvent(d.body, headers);
      if (!event) {
        d.ack();
        return EMPTY;
      }
      stats.folded += 1;
      return of<Observation>({
        kind: 'change',
        source: MIRROR_SOURCE,
        at: event.observedAt,
        action: event.action === 'delete' ? 'delete' : 'upsert',
        record: wholeEntity(event.entity),
        settle: (outcome) => (outcome.ok ? d.ack() : void d.reject(outcome.reason)),
      });
    }),
  );
  return { observation$, stats: () => ({ ...stats }) };
}
