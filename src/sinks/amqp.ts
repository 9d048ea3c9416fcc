/**
 * `use: amqp` — publishes every item of `register()` to a durable topic exchange, at least once
 * and in order: a confirm channel, a bounded window of unconfirmed messages, and, after a reconnect
 * or a nack, a republish of the oldest unconfirmed message and every later one, in order.
 */
import type { ConfirmChannel } from 'amqplib';
import { match } from 'ts-pattern';
import { type AmqpEndpoint, type AmqpSession, type BrokerOptions, keepConnected, openConnection, readBrokerOptions, redactUrl } from '../amqp.js';
import { type Logger, asError, errorMessage } from '../log.js';
import { INSECURE_WARNING } from '../tls.js';
import type { EntityType } from '../model.js';
import type { OptionReader } from '../options.js';
import type { Gate, SyncItem } from '../synchronizer.js';
import { eventLine } from './stdout.js';
import type { Sink, SinkPlugin } from './index.js';

export interface AmqpSinkOptions extends BrokerOptions {
  exchange: string;
  types?: EntityType[];
  /** Unconfirmed messages held before the callback waits (default 1000). */
  window?: number;
  /** How long close() waits for outstanding confirms, ms (default 5000). */
  closeTimeoutMs?: number;
  /** Larger messages are set aside instead of published, bytes (`maxMessageSize`, default RabbitMQ's 128MiB). */
  maxMessageBytes?: number;
  /** More headers for an item's message (the cluster's instance and observation time). */
  stamp?: (item: SyncItem) => Record<string, unknown> | undefined;
  /** Shown as the connection name in RabbitMQ's management UI (default `synchronizer amqp sink`). */
  connectionName?: string;
}

/** RabbitMQ's default max_message_size. */
export const DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024;
/** The entity key travels as a header only up to this length (a header frame must fit frame_max). */
export const MAX_KEY_HEADER = 4096;

/** What the sink did beyond publishing: messages it set aside because no broker would take them. */
export interface AmqpSinkStats {
  setAside: number;
}

/** Header carrying the entity key: downstream partitions by entity (consistent-hash exchange, hash-header). */
export const ENTITY_KEY_HEADER = 'x-entity-key';

/** One message of the exchange: what the sink publishes for a SyncItem. */
export interface SinkMessage {
  routingKey: string;
  body: Buffer;
  entityKey?: string;
}

/** The message of one SyncItem (the event body is the NDJSON line, `raw` never included). */
export function sinkMessage(item: SyncItem): SinkMessage {
  return match(item)
    .with({ kind: 'event' }, ({ event }) => ({
      routingKey: `${event.entity.type}.${event.action}`,
      body: Buffer.from(eventLine(event).slice(0, -1)),
      entityKey: event.entity.key,
    }))
    .with({ kind: 'replay' }, ({ entity }) => {
      const { raw: _raw, ...rest } = entity;
      return { routingKey: `${entity.type}.replay`, body: Buffer.from(JSON.stringify({ kind: 'replay', entity: rest })), entityKey: entity.key };
    })
    .with({ kind: 'synced' }, ({ count }) => ({ routingKey: 'synced', body: Buffer.from(JSON.stringify({ kind: 'synced', count })) }))
    .with({ kind: 'resync' }, ({ dropped }) => ({ routingKey: 'resync', body: Buffer.from(JSON.stringify({ kind: 'resync', dropped })) }))
    .exhaustive();
}

/** Valid AMQP exchange names we can declare (`amq.` is reserved by the broker, `` is the default exchange). */
const EXCHANGE = /^[A-Za-z0-9_.:-]{1,255}$/;

/** Reads the `use: amqp` options. */
export function readAmqpSinkOptions(read: OptionReader): AmqpSinkOptions {
  const broker = readBrokerOptions(read, 'url');
  const exchange = read.string('exchange', 'synchronizer');
  if (!EXCHANGE.test(exchange) || exchange.startsWith('amq.')) {
    read.fail('exchange', `expected an exchange name of letters, digits, - _ . : (not starting with amq.), got ${JSON.stringify(exchange)}`);
  }
  const types = read.optionalStringList('types');
  const window = read.optionalNumber('window', { min: 1, integer: true });
  const maxMessageBytes = read.bytes('maxMessageSize', DEFAULT_MAX_MESSAGE_BYTES);
  return { ...broker, exchange, ...(types ? { types } : {}), ...(window !== undefined ? { window } : {}), maxMessageBytes };
}

interface Outgoing extends SinkMessage {
  confirmed: boolean;
  item: SyncItem;
  /** A later item set aside after this one: once this one is confirmed, the gate may pass it too. */
  covers?: SyncItem;
}

/** A channel closed by the broker over one message (406 PRECONDITION_FAILED: too large, bad header). */
function refusedByBroker(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 406;
}

interface PublishSession extends AmqpSession {
  channel: ConfirmChannel;
  /** A message of it was nacked or lost: it is being given up. */
  failed: boolean;
}

/**
 * The sink. Each item becomes one persistent JSON message; the callback returns once it is written
 * unless `window` messages are unconfirmed or the channel asked to drain. Never drops a message:
 * unconfirmed ones (lost connection, nack) are republished in order before anything newer.
 */
export function createAmqpSink(options: AmqpSinkOptions, log: Logger): Sink & { stats(): { unconfirmed: number } & AmqpSinkStats } {
  const window = options.window ?? 1000;
  const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const stats: AmqpSinkStats = { setAside: 0 };
  /**
   * After the broker closed a channel over a message (406), the next channel publishes the oldest
   * unconfirmed message alone and waits for its confirm: refused again, it is the poison one and is
   * set aside; confirmed, the stream goes on as usual. A refused message never wedges the sink.
   */
  let probing = false;
  /** Links whose channel the broker closed over a message. */
  const refusals = new WeakSet<object>();
  const where = { url: redactUrl(options.url), exchange: options.exchange };
  /** Unconfirmed messages in publish order; the first `written` went out on the current channel. */
  const pending: Outgoing[] = [];
  let written = 0;
  let session: PublishSession | undefined;
  let draining = false;
  let closing = false;
  let stop: (() => void) | undefined;
  let waiters: (() => void)[] = [];
  /** Told of every confirmed prefix: the hub may then persist and ack what it came from. */
  let gate: Gate | undefined;

  const wake = (): void => {
    const w = waiters;
    waiters = [];
    for (const resolve of w) resolve();
  };
  const changed = (): Promise<void> => new Promise<void>((resolve) => waiters.push(resolve));

  const confirm = (s: PublishSession, message: Outgoing, error: unknown): void => {
    // A callback of a channel given up: its unconfirmed messages, and all after them, are republished.
    if (s !== session || s.failed) return;
    if (error) {
      // A nack, or the channel closed with it unconfirmed. Ending the session republishes from the
      // oldest unconfirmed message, so order is kept; one log line per session (`failed` above).
      s.failed = true;
      log.warn('amqp sink: a message was not confirmed, republishing it and every later one', { ...where, routingKey: message.routingKey, error: asError(error), unconfirmed: pending.length });
      s.link.end(new Error(`a message was not confirmed on ${s.link.where}: ${errorMessage(error)}`));
      return;
    }
    message.confirmed = true;
    if (probing) {
      probing = false;
      queueMicrotask(pump);
    }
    releaseConfirmed();
    wake();
  };

  /** Drops the confirmed prefix and tells the gate how far it goes (`floor`: an item already done). */
  const releaseConfirmed = (floor?: SyncItem): void => {
    let n = 0;
    while (n < pending.length && pending[n]!.confirmed) n += 1;
    if (n > 0) {
      const last = pending[n - 1]!;
      pending.splice(0, n);
      written -= n;
      gate?.accept(last.covers ?? last.item);
    } else if (floor) gate?.accept(floor);
  };

  const setAside = (index: number, why: string): void => {
    const [message] = pending.splice(index, 1);
    if (!message) return;
    if (index < written) written -= 1;
    // Given up is taken over as far as the gate (acks, the store) is concerned, once every older
    // message is confirmed: otherwise a poison message would hold back every later ack.
    const through = message.covers ?? message.item;
    if (index > 0) pending[index - 1]!.covers = through;
    else releaseConfirmed(through);
    stats.setAside += 1;
    log.error('amqp sink: a message no broker will take was set aside (not published)', {
      ...where,
      routingKey: message.routingKey,
      entityKey: message.entityKey !== undefined ? message.entityKey.slice(0, 200) : null,
      bytes: message.body.length,
      why,
      setAside: stats.setAside,
    });
    wake();
  };

  const pump = (): void => {
    const s = session;
    while (s && s === session && !draining && written < pending.length && !(probing && written >= 1)) {
      const message = pending[written]!;
      if (message.body.length > maxBytes) {
        setAside(written, `${message.body.length} bytes is more than maxMessageSize (${maxBytes})`);
        continue;
      }
      written += 1;
      const keyHeader = message.entityKey !== undefined && message.entityKey.length <= MAX_KEY_HEADER ? { [ENTITY_KEY_HEADER]: message.entityKey } : undefined;
      const stamped = options.stamp?.(message.item);
      const headers = keyHeader || stamped ? { headers: { ...keyHeader, ...stamped } } : {};
      let ok: boolean;
      try {
        ok = s.channel.publish(
          options.exchange,
          message.routingKey,
          message.body,
          {
            persistent: true,
            contentType: 'application/json',
            ...headers,
          },
          (error: unknown) => confirm(s, message, error),
        );
      } catch (e) {
        if ((e as { name?: unknown }).name !== 'IllegalOperationError') {
          // Not a closed channel: amqplib could not encode this message (a frame over frame_max).
          // No channel will ever take it.
          setAside(written - 1, `cannot be encoded: ${errorMessage(e)}`);
          continue;
        }
        // The channel closed under us: the message is republished on the next one.
        s.link.end(new Error(`publishing on ${s.link.where}: ${errorMessage(e)}`));
        return;
      }
      if (!ok) {
        draining = true;
        s.channel.once('drain', () => {
          if (s !== session) return;
          draining = false;
          pump();
          wake();
        });
      }
    }
  };

  const open = async (endpoint: AmqpEndpoint): Promise<PublishSession> => {
    const link = await openConnection(endpoint, { connectionName: options.connectionName ?? 'synchronizer amqp sink', tls: options.tls });
    try {
      const channel = await link.connection.createConfirmChannel();
      channel.on('error', (e: Error) => {
        if (refusedByBroker(e)) refusals.add(link);
        link.end(new Error(`channel on ${link.where} failed: ${e.message}`));
      });
      channel.on('close', () => link.end(new Error(`channel on ${link.where} closed`)));
      try {
        await channel.assertExchange(options.exchange, 'topic', { durable: true, autoDelete: false });
      } catch (e) {
        throw new Error(`declaring exchange ${options.exchange} (topic, durable) on ${link.where}: ${errorMessage(e)}`);
      }
      return {
        link,
        channel,
        failed: false,
        close: async () => {
          await channel.close().catch(() => undefined);
          link.end(new Error('sink closed'));
          await link.connection.close().catch(() => undefined);
        },
      };
    } catch (e) {
      link.connection.close().catch(() => undefined);
      throw e;
    }
  };

  const start = (): void => {
    if (options.tls?.insecure) log.warn(`amqp sink: ${INSECURE_WARNING}`, where);
    stop = keepConnected<PublishSession>({
      endpoints: options.endpoints,
      backoff: { initialMs: options.reconnectMs, maxMs: options.maxReconnectMs },
      open,
      up: (s, endpoint) => {
        session = s;
        written = 0;
        // Everything from the oldest unconfirmed message goes out again, in order, even what the
        // old channel confirmed after it: the stream's tail is then whole and ordered.
        for (const m of pending) m.confirmed = false;
        draining = false;
        void s.link.ended.then(() => {
          if (refusals.has(s.link)) {
            // Refused while probing: the one message in flight was the cause.
            if (probing && pending.length > 0 && !pending[0]!.confirmed) setAside(0, 'the broker closed the channel over it (406 PRECONDITION_FAILED)');
            probing = true;
          }
          if (session !== s) return;
          session = undefined;
          draining = false;
          wake();
        });
        log.info('amqp sink: publishing', { ...where, endpoint, unconfirmed: pending.length });
        pump();
        wake();
      },
      down: (error, retryInMs) => log.warn('amqp sink: broker unavailable, retrying', { ...where, error, retryInMs, unconfirmed: pending.length }),
    });
  };

  const publish = async (item: SyncItem): Promise<void> => {
    if (closing) return;
    pending.push({ ...sinkMessage(item), confirmed: false, item });
    pump();
    while (!closing && (pending.length >= window || draining)) await changed();
  };

  return {
    stats: () => ({ unconfirmed: pending.length, setAside: stats.setAside }),
    attach(sync) {
      if (!stop) start();
      const g = sync.gate(options.types);
      gate = g;
      const subscription = sync.register(options.types, publish);
      subscription.add(() => g.close());
      return subscription;
    },
    async close() {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        wake();
      }, options.closeTimeoutMs ?? 5000);
      while (pending.length > 0 && !timedOut) await changed();
      clearTimeout(timer);
      closing = true;
      wake();
      if (pending.length > 0) log.warn('amqp sink: closed with unconfirmed messages', { ...where, unconfirmed: pending.length });
      stop?.();
      stop = undefined;
      session = undefined;
    },
  };
}

/** `use: amqp` — events to a RabbitMQ exchange. */
const amqpSink: SinkPlugin<AmqpSinkOptions> = {
  options: readAmqpSinkOptions,
  create: (options, context) => createAmqpSink(options, context.log.child({ sink: 'amqp' })),
};
export default amqpSink;
