/**
 * Notifications spread over the instances by entity: every change of one entity is handled by one
 * instance, in order, and a standby takes a dead instance's partition over. RabbitMQ's
 * consistent-hash exchange (plugin `rabbitmq_consistent_hash_exchange`) does the spreading; the
 * leases (lease.ts) decide who runs each piece.
 *
 * | piece        | lease          | what it does                                                              |
 * |--------------|----------------|---------------------------------------------------------------------------|
 * | router       | `<source>`     | consumes the source's own queue (bound to oslo's exchanges) and copies each message, in order, to `<cluster>.<source>.partitions` with header `x-entity-key` = the entity it is about; acks the original once the broker confirmed the copy. Declares and binds the partition queues itself before it copies anything |
 * | partition k  | `<source>.p<k>`| consumes the durable queue `<cluster>.<source>.p<k>` (bound with weight 1) exactly as the notifications source does: acked once its entity was emitted |
 *
 * The exchange hashes `x-entity-key`, so one entity always lands in one partition queue, in the
 * order the router copied it. A partition holder killed with -9 leaves its unacked messages in its
 * queue: RabbitMQ requeues them, and the instance that takes the partition's lease consumes them.
 * A message the router cannot decode goes to a partition all the same (key `undecodable`), whose
 * consumer refuses it with the reason, as the notifications source always does.
 */
import type { ConfirmChannel } from 'amqplib';
import { EMPTY, Observable, merge, of, switchMap } from 'rxjs';
import { type AmqpDelivery, type AmqpSession, amqpConsume$, keepConnected, openConnection } from '../amqp.js';
import { type Logger, errorMessage } from '../log.js';
import { ENTITY_KEY_HEADER } from '../sinks/amqp.js';
import type { HealthSignal, Source, SourceContext, SourceSignal } from '../source.js';
import { type NotificationOptions, type NotificationRecord, createNotificationSource, decodeNotification, notificationBindings, notificationDraft, routeEvent } from '../../sources/openstack/notifications.js';

/** The consistent-hash exchange of a partitioned source. */
export function partitionExchange(cluster: string, source: string): string {
  return `${cluster}.${source}.partitions`;
}

/** The durable queue of partition `k`. */
export function partitionQueue(cluster: string, source: string, k: number): string {
  return `${cluster}.${source}.p${k}`;
}

/** A consistent-hash exchange's binding key is the queue's weight: every partition weighs 1. */
const PARTITION_WEIGHT = '1';

/** The lease names of a partitioned source: its router, then each partition. */
export function partitionLeases(source: string, partitions: number): string[] {
  return [source, ...Array.from({ length: partitions }, (_, k) => `${source}.p${k}`)];
}

const EXCHANGE_ARGUMENTS = { 'hash-header': ENTITY_KEY_HEADER };
/** How a partition queue is declared, by the router and by the partition's consumer alike. */
const PARTITION_QUEUE = { durable: true, autoDelete: false, exclusive: false } as const;

/** The entity a notification is about (what the partition is chosen by). */
export function notificationKey(body: Buffer): string {
  try {
    const notification = decodeNotification(body);
    const route = routeEvent(notification.eventType);
    if (route === undefined || route.action === 'ignore') return notification.eventType;
    const draft = notificationDraft({ family: route.family, action: route.action, notification });
    return `${draft.type}:${draft.id}`;
  } catch {
    return 'undecodable';
  }
}

interface RouterSession extends AmqpSession {
  channel: ConfirmChannel;
}

/**
 * The router: the source's queue → the partitions' exchange, each original acked once its copy is
 * confirmed. It declares and binds the partition queues (`queues`) before it copies anything: the
 * broker confirms a copy that no queue is bound to receive and drops it, so on a fresh cluster a
 * router that ran before the partitions' consumers had declared their queues lost notifications.
 */
function router$(options: NotificationOptions, name: string, exchange: string, queues: readonly string[], log: Logger): Observable<HealthSignal> {
  return new Observable<HealthSignal>((subscriber) => {
    let channel: ConfirmChannel | undefined;
    const waiting: AmqpDelivery[] = [];
    const forward = (d: AmqpDelivery): void => {
      const ch = channel;
      if (!ch) {
        waiting.push(d);
        return;
      }
      const headers = { ...(d.properties.headers as Record<string, unknown> | undefined), [ENTITY_KEY_HEADER]: notificationKey(d.body) };
      try {
        ch.publish(exchange, d.routingKey, d.body, { persistent: true, contentType: d.properties.contentType as string | undefined, contentEncoding: d.properties.contentEncoding as string | undefined, headers }, (error: unknown) => {
          if (!error) d.ack();
          // Not acked: the router starts over (with backoff) and the broker redelivers the original.
          else subscriber.error(new Error(`${name}: copying a notification to ${exchange} failed: ${errorMessage(error)}`));
        });
      } catch (e) {
        subscriber.error(new Error(`${name}: copying a notification to ${exchange} failed: ${errorMessage(e)}`));
      }
    };
    const stopPublisher = keepConnected<RouterSession>({
      endpoints: options.endpoints,
      backoff: { initialMs: options.reconnectMs, maxMs: options.maxReconnectMs },
      open: async (endpoint) => {
        const link = await openConnection(endpoint, { connectionName: `synchronizer ${name} router`, tls: options.tls });
        try {
          const ch = await link.connection.createConfirmChannel();
          ch.on('error', (e: Error) => link.end(new Error(`router channel on ${link.where} failed: ${e.message}`)));
          ch.on('close', () => link.end(new Error(`router channel on ${link.where} closed`)));
          try {
            await ch.assertExchange(exchange, 'x-consistent-hash', { durable: true, autoDelete: false, arguments: EXCHANGE_ARGUMENTS });
          } catch (e) {
            throw new Error(`declaring the consistent-hash exchange ${exchange} (is the rabbitmq_consistent_hash_exchange plugin enabled?): ${errorMessage(e)}`);
          }
          for (const queue of queues) {
            // As the partition's consumer declares it (createNotificationSource with `partition`).
            await ch.assertQueue(queue, PARTITION_QUEUE).catch((e: unknown) => Promise.reject(new Error(`declaring partition queue ${queue}: ${errorMessage(e)}`)));
            await ch.bindQueue(queue, exchange, PARTITION_WEIGHT).catch((e: unknown) => Promise.reject(new Error(`binding partition queue ${queue} to ${exchange}: ${errorMessage(e)}`)));
          }
          return { link, channel: ch, close: async () => void (await link.connection.close().catch(() => undefined)) };
        } catch (e) {
          link.connection.close().catch(() => undefined);
          throw e;
        }
      },
      up: (s) => {
        channel = s.channel;
        void s.link.ended.then((error) => {
          if (channel !== s.channel) return;
          channel = undefined;
          // Copies in flight are lost with the channel: start over, the originals come back.
          subscriber.error(error);
        });
        for (const d of waiting.splice(0)) forward(d);
      },
      down: (error, retryInMs) => subscriber.next({ kind: 'health', status: 'down', error: `router: ${error}`, retryInMs }),
    });
    const consumer = amqpConsume$({
      endpoints: options.endpoints,
      queue: options.queue,
      durableQueue: options.durableQueue,
      exchanges: options.exchanges,
      durableExchanges: options.durableExchanges,
      bindings: notificationBindings(options),
      prefetch: options.prefetch,
      ...(options.deadLetterExchange ? { deadLetterExchange: options.deadLetterExchange } : {}),
      backoff: { initialMs: options.reconnectMs, maxMs: options.maxReconnectMs },
      heartbeatSeconds: options.heartbeatSeconds,
      connectionName: `synchronizer ${name} router in`,
      tls: options.tls,
    }).subscribe((signal) => {
      if (signal.kind === 'delivery') forward(signal.delivery);
      else if (signal.kind === 'up') log.info('cluster: routing notifications to the partitions', { queue: options.queue, exchange });
      else subscriber.next({ kind: 'health', status: 'down', error: `router: ${signal.error}`, retryInMs: signal.retryInMs });
    });
    return () => {
      consumer.unsubscribe();
      stopPublisher();
    };
  });
}

/**
 * The notifications source `name` as a cluster runs it with `partitions` partitions: one Source
 * (entities keep `source: name`) whose router and partitions each run only while this instance
 * holds their lease.
 */
export function partitionedNotifications(
  options: NotificationOptions,
  context: Pick<SourceContext, 'name' | 'log' | 'scheduler'>,
  cluster: { name: string; partitions: number; held$: (lease: string) => Observable<boolean> },
): Source<NotificationRecord> {
  const { name, log } = context;
  const exchange = partitionExchange(cluster.name, name);
  const [routerLease, ...partitionNames] = partitionLeases(name, cluster.partitions);
  const queues = partitionNames.map((_, k) => partitionQueue(cluster.name, name, k));
  const parts = partitionNames.map((lease, k) => ({
    lease,
    source: createNotificationSource(
      { ...options, queue: queues[k]!, durableQueue: PARTITION_QUEUE.durable, partition: { exchange, exchangeArguments: EXCHANGE_ARGUMENTS, weight: PARTITION_WEIGHT } },
      { ...context, log: log.child({ partition: k }) },
    ),
  }));
  const gated = <T>(lease: string, run: Observable<T>): Observable<T> => cluster.held$(lease).pipe(switchMap((held) => (held ? run : EMPTY)));
  const signal$ = merge(
    of<SourceSignal<NotificationRecord>>({ kind: 'health', status: 'up' }),
    gated(routerLease!, router$(options, name, exchange, queues, log)),
    ...parts.map((p) => gated(p.lease, p.source.signal$)),
  );
  const sum = (field: 'acked' | 'rejected' | 'deadLettered'): number => parts.reduce((n, p) => n + p.source.stats[field], 0);
  const stats = {
    get acked() {
      return sum('acked');
    },
    get rejected() {
      return sum('rejected');
    },
    get deadLettered() {
      return sum('deadLettered');
    },
  };
  return { name, types: parts[0]!.source.types, signal$, map: parts[0]!.source.map, stats } as Source<NotificationRecord> & { stats: typeof stats };
}
