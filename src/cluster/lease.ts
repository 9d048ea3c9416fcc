/**
 * One lease per source, held through RabbitMQ: the lease of source S is the exclusive queue
 * `<cluster>.lease.S`. Declaring it succeeds for one connection only (the others get 405
 * RESOURCE_LOCKED and try again every `leaseRetry`), and the broker deletes it the moment that
 * connection ends: a process killed with -9 (its socket closes), a connection closed by an
 * operator, or one whose heartbeats stopped (after about one heartbeat timeout). The broker decides;
 * there is no consensus of ours.
 *
 * Why an exclusive queue and not a single-active-consumer queue: over AMQP 0-9-1 a consumer of a
 * SAC queue is not told when it becomes the active one (only a delivery would tell it, so a token
 * message would have to circulate), while declare-ok on an exclusive queue says "yours" at once,
 * and a lease can be given back (queue.delete) to spread the leases.
 *
 * Spreading: every instance also consumes `<cluster>.instances` (nothing is ever published there),
 * so queue.declare-ok's consumer count is the number of live instances N. An instance tries a free
 * lease only while it holds fewer than ceil(S/N) of the S leases, and gives its newest lease back
 * when it holds more (a new instance joined): a free lease always has an instance below its share.
 *
 * Stopping first: the holder asks the broker for that count every `leaseRetry`; with no answer for
 * half a heartbeat it drops its leases (its sources stop) and reconnects. The broker frees the
 * queues no sooner than a whole heartbeat after the last frame it got, so a holder cut off from the
 * broker stops before anyone else can start; only a process frozen longer than that (a stopped VM,
 * SIGSTOP) can overlap, for as long as it stays frozen after the broker freed its leases.
 */
import type { Channel } from 'amqplib';
import { BehaviorSubject, type Observable, distinctUntilChanged } from 'rxjs';
import { type AmqpSession, type BrokerOptions, keepConnected, openConnection } from '../amqp.js';
import { type Logger, errorMessage } from '../log.js';

export interface LeaseOptions {
  broker: BrokerOptions;
  /** The cluster's name (queue prefix). */
  cluster: string;
  instance: string;
  /** The sources that need a lease, in the order they are tried. */
  sources: readonly string[];
  heartbeatSeconds: number;
  retryMs: number;
  log: Logger;
  /** The cluster's exchange, declared on connect (as the amqp sink declares it), so a publish never meets a 404. */
  exchange: string;
  /** Connected (again) to the broker. */
  onUp?: () => void;
}

export interface LeaseStatus {
  /** Connected to the broker (leases can be held). */
  connected: boolean;
  /** Live instances of the cluster, as the broker last counted them (0: not known). */
  instances: number;
  /** Source → held by this instance. */
  leases: Record<string, boolean>;
  /** Leases taken since start. */
  taken: number;
  /** Leases lost with the connection (or for want of an answer from the broker). */
  lost: number;
  /** Leases given back to spread them over more instances. */
  released: number;
}

export interface Leases {
  /** Whether this instance holds `source`'s lease: false, then a change each time it is taken or lost. */
  held$(source: string): Observable<boolean>;
  status(): LeaseStatus;
  start(): void;
  /** Gives every lease back (its source stops first) and closes the connection. */
  stop(): Promise<void>;
  /**
   * Publishes on the lease connection without a confirm (the warm-up's hello and replays, which
   * are repeated on the next hello if lost); false when not connected.
   */
  publish(exchange: string, routingKey: string, body: Buffer, headers: Record<string, unknown>): boolean;
}

/** The lease queue of a source. */
export function leaseQueue(cluster: string, source: string): string {
  return `${cluster}.lease.${source}`;
}

/** The queue whose consumer count is the number of live instances. */
export function presenceQueue(cluster: string): string {
  return `${cluster}.instances`;
}

/** 405 RESOURCE_LOCKED: another connection holds the exclusive queue. */
function lockedByAnother(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 405;
}

interface LeaseSession extends AmqpSession {
  control: Channel;
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer from the broker to ${what} within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function createLeases(options: LeaseOptions): Leases {
  const { cluster, instance, log, retryMs } = options;
  const presence = presenceQueue(cluster);
  /** Without an answer from the broker for this long, the leases are dropped (see the header). */
  const silenceMs = (options.heartbeatSeconds * 1000) / 2;
  const subjects = new Map(options.sources.map((s) => [s, new BehaviorSubject(false)]));
  /** Held leases, oldest first, with their channel. */
  const held = new Map<string, Channel>();
  /** A lease lost or given back is not tried again before this time, so another instance takes it. */
  const holdOff = new Map<string, number>();
  const counts = { taken: 0, lost: 0, released: 0 };
  let instances = 0;
  let current: LeaseSession | undefined;
  let lastAnswer = 0;
  let busy = false;
  let stopLink: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;

  const set = (source: string, value: boolean): void => subjects.get(source)!.next(value);

  /** The connection is gone or mute: every source stops now, before the broker can free a lease. */
  const dropAll = (why: string): void => {
    if (held.size === 0) return;
    const sources = [...held.keys()];
    held.clear();
    const until = Date.now() + 2 * retryMs;
    for (const source of sources) {
      set(source, false);
      holdOff.set(source, until);
    }
    counts.lost += sources.length;
    log.warn('cluster: leases lost, their sources stopped', { sources, why });
  };

  const take = async (s: LeaseSession, source: string): Promise<void> => {
    const channel = await s.link.connection.createChannel();
    // A 405 closes this channel only; the rejection below says so.
    channel.on('error', () => undefined);
    try {
      await within(channel.assertQueue(leaseQueue(cluster, source), { exclusive: true, durable: false, autoDelete: false }), silenceMs, `declaring ${leaseQueue(cluster, source)}`);
    } catch (e) {
      channel.close().catch(() => undefined);
      if (lockedByAnother(e)) return;
      throw e;
    }
    if (current !== s) return;
    held.set(source, channel);
    counts.taken += 1;
    log.info('cluster: lease taken, source starting', { source, instances });
    set(source, true);
  };

  const release = async (s: LeaseSession, source: string, fair: number): Promise<void> => {
    const channel = held.get(source)!;
    held.delete(source);
    holdOff.set(source, Date.now() + 3 * retryMs);
    // The source stops before the queue goes: nobody can start it while it still runs here.
    set(source, false);
    counts.released += 1;
    log.info('cluster: lease given back to spread the sources', { source, instances, share: fair });
    if (current !== s) return;
    await channel.deleteQueue(leaseQueue(cluster, source)).catch(() => undefined);
    await channel.close().catch(() => undefined);
  };

  const tick = async (): Promise<void> => {
    const s = current;
    if (!s) return;
    if (held.size > 0 && Date.now() - lastAnswer > silenceMs) {
      dropAll(`no answer from the broker for ${Date.now() - lastAnswer} ms (more than half the ${options.heartbeatSeconds} s heartbeat)`);
      s.link.end(new Error('no answer from the broker'));
      return;
    }
    if (busy) return;
    busy = true;
    try {
      const ok = await within(s.control.checkQueue(presence), silenceMs, `checking ${presence}`);
      if (current !== s) return;
      lastAnswer = Date.now();
      instances = Math.max(1, ok.consumerCount);
      const fair = Math.ceil(options.sources.length / instances);
      if (held.size > fair) {
        await release(s, [...held.keys()].pop()!, fair);
        return;
      }
      const now = Date.now();
      for (const source of options.sources) {
        if (held.size >= fair || current !== s) break;
        if (held.has(source) || (holdOff.get(source) ?? 0) > now) continue;
        await take(s, source);
      }
    } catch (e) {
      if (current === s) {
        log.warn('cluster: lease check failed, reconnecting', { error: errorMessage(e) });
        dropAll(errorMessage(e));
        s.link.end(e instanceof Error ? e : new Error(String(e)));
      }
    } finally {
      busy = false;
    }
  };

  const open = async (endpoint: Parameters<typeof openConnection>[0]): Promise<LeaseSession> => {
    const link = await openConnection(endpoint, { heartbeatSeconds: options.heartbeatSeconds, connectionName: `synchronizer cluster ${cluster} ${instance}`, tls: options.broker.tls });
    try {
      const control = await link.connection.createChannel();
      control.on('error', (e: Error) => link.end(new Error(`cluster channel on ${link.where} failed: ${e.message}`)));
      control.on('close', () => link.end(new Error(`cluster channel on ${link.where} closed`)));
      await control.assertExchange(options.exchange, 'topic', { durable: true, autoDelete: false });
      await control.assertQueue(presence, { durable: false, autoDelete: true, exclusive: false });
      await control.consume(presence, () => undefined, { noAck: true, consumerTag: `${instance}` });
      return {
        link,
        control,
        close: async () => {
          await link.connection.close().catch(() => undefined);
        },
      };
    } catch (e) {
      link.connection.close().catch(() => undefined);
      throw e;
    }
  };

  return {
    held$: (source) => {
      const subject = subjects.get(source);
      if (!subject) throw new Error(`cluster: no lease for source ${JSON.stringify(source)}`);
      return subject.pipe(distinctUntilChanged());
    },
    publish(exchange, routingKey, body, headers) {
      if (!current) return false;
      try {
        current.control.publish(exchange, routingKey, body, { persistent: false, contentType: 'application/json', headers });
        return true;
      } catch {
        return false;
      }
    },
    status: () => ({ connected: current !== undefined, instances, leases: Object.fromEntries([...subjects].map(([s, b]) => [s, b.value])), ...counts }),
    start() {
      if (stopLink) return;
      stopLink = keepConnected<LeaseSession>({
        endpoints: options.broker.endpoints,
        backoff: { initialMs: options.broker.reconnectMs, maxMs: options.broker.maxReconnectMs },
        open,
        up: (s, endpoint) => {
          current = s;
          lastAnswer = Date.now();
          log.info('cluster: connected, taking leases', { endpoint, sources: options.sources });
          void s.link.ended.then((error) => {
            if (current !== s) return;
            current = undefined;
            instances = 0;
            dropAll(error.message);
          });
          void tick();
          options.onUp?.();
        },
        down: (error, retryInMs) => log.warn('cluster: broker unavailable, no lease held', { error, retryInMs }),
      });
      timer = setInterval(() => void tick(), retryMs);
    },
    async stop() {
      clearInterval(timer);
      const s = current;
      current = undefined;
      // Sources first, then the queues go with the connection.
      for (const source of held.keys()) set(source, false);
      held.clear();
      stopLink?.();
      stopLink = undefined;
      await s?.link.connection.close().catch(() => undefined);
    },
  };
}
