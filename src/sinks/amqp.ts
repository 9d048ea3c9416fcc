/**
 * `use: amqp` — publishes every item of `register()` to a durable topic exchange, at least once
 * and in order: a confirm channel, a bounded window of unconfirmed messages, and, after a reconnect
 * or a nack, a republish of the oldest unconfirmed message and every later one, in order.
 */
import type { ConfirmChannel } from 'amqplib';
import { match } from 'ts-pattern';
import { type AmqpEndpoint, type AmqpSession, type BrokerOptions, keepConnected, openConnection, readBrokerOptions, redactUrl } from '../amqp.js';
import { type Logger, errorMessage } from '../log.js';
import type { EntityType } from '../model.js';
import type { OptionReader } from '../options.js';
import type { SyncItem } from '../synchronizer.js';
import { eventLine } from './stdout.js';
import type { Sink, SinkPlugin } from './index.js';

export interface AmqpSinkOptions extends BrokerOptions {
  exchange: string;
  types?: EntityType[];
  /** Unconfirmed messages held before the callback waits (default 1000). */
  window?: number;
  /** How long close() waits for outstanding confirms, ms (default 5000). */
  closeTimeoutMs?: number;
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
  return { ...broker, exchange, ...(types ? { types } : {}) };
}

interface Outgoing extends SinkMessage {
  confirmed: boolean;
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
export function createAmqpSink(options: AmqpSinkOptions, log: Logger): Sink {
  const window = options.window ?? 1000;
  const where = { url: redactUrl(options.url), exchange: options.exchange };
  /** Unconfirmed messages in publish order; the first `written` went out on the current channel. */
  const pending: Outgoing[] = [];
  let written = 0;
  let session: PublishSession | undefined;
  let draining = false;
  let closing = false;
  let stop: (() => void) | undefined;
  let waiters: (() => void)[] = [];

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
      log.warn('amqp sink: a message was not confirmed, republishing it and every later one', { ...where, routingKey: message.routingKey, error: errorMessage(error), unconfirmed: pending.length });
      s.link.end(new Error(`a message was not confirmed on ${s.link.where}: ${errorMessage(error)}`));
      return;
    }
    message.confirmed = true;
    let n = 0;
    while (n < pending.length && pending[n]!.confirmed) n += 1;
    if (n > 0) {
      pending.splice(0, n);
      written -= n;
    }
    wake();
  };

  const pump = (): void => {
    const s = session;
    while (s && s === session && !draining && written < pending.length) {
      const message = pending[written++]!;
      let ok: boolean;
      try {
        ok = s.channel.publish(
          options.exchange,
          message.routingKey,
          message.body,
          {
            persistent: true,
            contentType: 'application/json',
            ...(message.entityKey !== undefined ? { headers: { [ENTITY_KEY_HEADER]: message.entityKey } } : {}),
          },
          (error: unknown) => confirm(s, message, error),
        );
      } catch (e) {
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
    const link = await openConnection(endpoint, { connectionName: 'synchronizer amqp sink' });
    try {
      const channel = await link.connection.createConfirmChannel();
      channel.on('error', (e: Error) => link.end(new Error(`channel on ${link.where} failed: ${e.message}`)));
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
    pending.push({ ...sinkMessage(item), confirmed: false });
    pump();
    while (!closing && (pending.length >= window || draining)) await changed();
  };

  return {
    stats: () => ({ unconfirmed: pending.length }),
    attach(sync) {
      if (!stop) start();
      return sync.register(options.types, publish);
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
