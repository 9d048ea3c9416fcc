/**
 * The one AMQP transport of the synchronizer (amqplib): oslo-style transport URLs, an own durable
 * queue bound to the services' exchanges, reconnect with the shared backoff, and deliveries whose
 * ack is batched but never sent before the message's observation settled.
 */
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Options } from 'amqplib';
import { Observable, type SchedulerLike, asyncScheduler } from 'rxjs';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { asError, errorMessage } from './log.js';
import { receivedNow } from './model.js';
import type { OptionReader } from './options.js';
import { type TlsOptions, nodeTlsOptions, readTlsOptions } from './tls.js';

/** One broker of a transport URL. */
export interface AmqpEndpoint {
  hostname: string;
  port: number;
  username: string;
  password: string;
  /** `/` is RabbitMQ's default vhost. */
  vhost: string;
  tls: boolean;
}

/** The parts of a transport URL as Python's urlparse (hence oslo) splits them; undefined when it is not one. */
const URL_SHAPE = /^([a-z][a-z0-9+.-]*:)\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?(#.*)?$/is;

/** Percent-decoding as Python's unquote: a `%` not followed by two hex digits stays as it is. */
export function unquote(text: string): string {
  return text.replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      // Not UTF-8: keep the bytes' escapes, as unquote's errors='replace' would lose them anyway.
      return run;
    }
  });
}

/** One netloc part: userinfo before the last `@` (a password may hold `@`), the user before the first `:`. */
function splitHost(part: string): { username?: string; password?: string; hostport: string } {
  const at = part.lastIndexOf('@');
  if (at < 0) return { hostport: part };
  const userinfo = part.slice(0, at);
  const colon = userinfo.indexOf(':');
  return colon >= 0
    ? { username: userinfo.slice(0, colon), password: userinfo.slice(colon + 1), hostport: part.slice(at + 1) }
    : { username: userinfo, hostport: part.slice(at + 1) };
}

const HOST_PORT = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d+))?$/i;

const SCHEMES: Record<string, { tls: boolean; port: number }> = {
  'rabbit:': { tls: false, port: 5672 },
  'amqp:': { tls: false, port: 5672 },
  'amqps:': { tls: true, port: 5671 },
};

/**
 * Parses an oslo.messaging transport_url into its brokers:
 * `rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost?ssl=1`. Hosts are tried in order
 * (failover); each host may carry its own credentials (default guest/guest, as in oslo).
 * Throws an Error that says what part is wrong.
 */
export function parseTransportUrl(url: string): AmqpEndpoint[] {
  const m = URL_SHAPE.exec(url.trim());
  if (!m) throw new Error(`expected a transport URL such as rabbit://user:pass@host:5672/vhost, got ${JSON.stringify(redactUrl(url))}`);
  const scheme = SCHEMES[m[1]!.toLowerCase()];
  if (!scheme) throw new Error(`unsupported scheme ${JSON.stringify(m[1])} in transport URL: use rabbit://, amqp:// or amqps://`);
  const query = new URLSearchParams(m[4] ?? '');
  const ssl = query.get('ssl');
  const tls = scheme.tls || ssl === '1' || ssl?.toLowerCase() === 'true';
  const path = (m[3] ?? '/').slice(1);
  const vhost = path === '' ? '/' : unquote(path);
  const netloc = m[2]!;
  if (netloc === '') throw new Error(`transport URL ${JSON.stringify(redactUrl(url))} names no host`);
  if (`${m[3] ?? ''}${m[4] ?? ''}`.includes('@')) {
    throw new Error(`transport URL ${JSON.stringify(redactUrl(url))} has an @ after its host part: a / ? or # in a password must be percent-encoded (%2F %3F %23)`);
  }
  // As oslo's TransportURL.parse: hosts split on `,` first, so a `,` `/` `?` `#` in a password
  // must be percent-encoded (%2C %2F %3F %23); `@` and `:` may stay as they are.
  return netloc.split(',').map((part, i) => {
    const { username: user, password: pass, hostport } = splitHost(part);
    const username = user === undefined ? 'guest' : unquote(user);
    const password = user === undefined ? 'guest' : pass === undefined ? '' : unquote(pass);
    const hm = HOST_PORT.exec(hostport);
    // Not quoted: with a `,` left unencoded in a password, this "host" is part of the password.
    if (!hm) throw new Error(`host ${i + 1} of the transport URL ${JSON.stringify(redactUrl(url))} is not host[:port] (a , / ? or # in a password must be percent-encoded: %2C %2F %3F %23)`);
    const port = hm[2] === undefined ? (tls ? 5671 : scheme.port) : Number(hm[2]);
    if (!(port > 0 && port < 65536)) throw new Error(`port of host ${i + 1} of the transport URL is out of range: ${hm[2]}`);
    return { hostname: hm[1]!.replace(/^\[|\]$/g, ''), port, username, password, vhost, tls };
  });
}

/** A broker as a config entry gives it: its URL (redacted, for logs), endpoints and reconnect backoff. */
export interface BrokerOptions {
  url: string;
  endpoints: AmqpEndpoint[];
  reconnectMs: number;
  maxReconnectMs: number;
  /** Trust and client certificate of amqps:// brokers. */
  tls?: TlsOptions;
}

/**
 * Reads a broker: the URL at `key` (a transport_url: amqp, amqps or rabbit, failover lists),
 * `reconnectDelay` (default 1 s), `maxReconnectDelay` (default 30 s) and `tls` ({ca, cert, key,
 * servername, insecure}, for amqps:// or ?ssl=1); a bad one is refused with its path. The same
 * keys, with the same checks, for the notifications source and the amqp sink.
 */
export function readBrokerOptions(read: OptionReader, key: string): BrokerOptions {
  const url = read.string(key);
  let endpoints: AmqpEndpoint[];
  try {
    endpoints = parseTransportUrl(url);
  } catch (e) {
    read.fail(key, errorMessage(e));
  }
  const reconnectMs = read.duration('reconnectDelay', 1000);
  const maxReconnectMs = read.duration('maxReconnectDelay', 30_000);
  if (maxReconnectMs < reconnectMs) read.fail('maxReconnectDelay', `must not be shorter than reconnectDelay (${reconnectMs} ms)`);
  const tls = readTlsOptions(read);
  if (tls && endpoints.some((e) => !e.tls)) read.fail('tls', `is set but ${key} is not amqps:// (nor ?ssl=1): ${JSON.stringify(redactUrl(url))}`);
  return { url: redactUrl(url), endpoints, reconnectMs, maxReconnectMs, ...(tls ? { tls } : {}) };
}

/**
 * A transport URL with its passwords replaced by `***`, fit for logs and errors. It splits the URL
 * as {@link parseTransportUrl} does, so what one reads as a password the other hides whole; a URL
 * of no known shape with an `@` in it is hidden from `//` to its last `@`.
 */
export function redactUrl(url: string): string {
  const m = URL_SHAPE.exec(url.trim());
  const tail = m ? `${m[3] ?? ''}${m[4] ?? ''}${m[5] ?? ''}` : '';
  if (!m || tail.includes('@')) {
    const start = url.indexOf('//');
    const at = url.lastIndexOf('@');
    return start >= 0 && at > start ? `${url.slice(0, start + 2)}***@${url.slice(at + 1)}` : url.includes('@') ? '***' : url;
  }
  const parts = m[2]!.split(',');
  // A part that is neither host[:port] nor has userinfo may be a password cut at an unencoded `,`:
  // then nothing before the last `@` is shown.
  if (parts.some((part) => !part.includes('@') && !HOST_PORT.test(part))) {
    const at = m[2]!.lastIndexOf('@');
    return `${m[1]}//***${at >= 0 ? `@${m[2]!.slice(at + 1)}` : ''}${tail}`;
  }
  const hosts = parts.map((part) => {
    const { username, password, hostport } = splitHost(part);
    if (username === undefined) return part;
    return password === undefined ? `${username}@${hostport}` : `${username}:***@${hostport}`;
  });
  return `${m[1]}//${hosts.join(',')}${tail}`;
}

/** `amqp://user@host:port/vhost`, without the password. */
export function describeEndpoint(e: AmqpEndpoint): string {
  const host = e.hostname.includes(':') ? `[${e.hostname}]` : e.hostname;
  return `${e.tls ? 'amqps' : 'amqp'}://${e.username}@${host}:${e.port}/${e.vhost === '/' ? '' : encodeURIComponent(e.vhost)}`;
}

/** A queue binding: messages of `exchange` whose routing key matches `routingKey`. */
export interface AmqpBinding {
  exchange: string;
  routingKey: string;
}

export interface AmqpConsumerOptions {
  /** Brokers, tried in turn on each (re)connect. */
  endpoints: readonly AmqpEndpoint[];
  /** The consumer's own queue: it gets copies, never steals from oslo's `notifications.info` queues. */
  queue: string;
  /** Declared as a durable queue (default true): persistent messages wait for us across restarts. */
  durableQueue?: boolean;
  /** The queue's `x-` arguments (e.g. `x-expires` for a queue that must not outlive its consumer for long). */
  queueArguments?: Record<string, unknown>;
  /** Exchanges declared before binding: oslo's flags (topic, auto_delete=false). */
  exchanges: readonly string[];
  /**
   * Durability of the exchanges (default false, as oslo declares them unless amqp_durable_queues
   * is set): other flags than oslo's would make oslo's publishes fail with 406.
   */
  durableExchanges?: boolean;
  /** Type and arguments of the exchanges declared (default `topic`, as oslo's; the cluster's partitions are `x-consistent-hash`). */
  exchangeType?: string;
  exchangeArguments?: Record<string, unknown>;
  bindings: readonly AmqpBinding[];
  /** Unacknowledged deliveries the broker may send ahead (basic.qos). */
  prefetch: number;
  /**
   * Where refused messages go, with the reason in the `x-synchronizer-reason` header (a durable
   * topic exchange, declared on connect; the routing key is the original one).
   */
  deadLetterExchange?: string | undefined;
  /** Reconnect backoff (the synchronizer's one policy). */
  backoff?: BackoffOptions;
  /** AMQP heartbeat, seconds (default 30; 0 disables). */
  heartbeatSeconds?: number;
  /** Shown as the connection name in RabbitMQ's management UI. */
  connectionName?: string;
  /** TLS of amqps endpoints. */
  tls?: TlsOptions | undefined;
  /** Time source for reconnect delays. */
  scheduler?: SchedulerLike;
}

/** One message taken from the queue; settle it exactly once with ack() or reject(). */
export interface AmqpDelivery {
  readonly body: Buffer;
  readonly exchange: string;
  readonly routingKey: string;
  /** The broker delivered it before (to us or another consumer) without an ack. */
  readonly redelivered: boolean;
  readonly properties: ConsumeMessage['properties'];
  /** When the delivery reached this process (src/model.ts `receivedNow`), before it waited for anything here. */
  readonly receivedAt: number;
  /**
   * Done with it. The ack is sent once every earlier delivery of the channel is settled too,
   * batched with `multiple` (one frame for many messages, never one ahead of an unsettled one).
   */
  ack(): void;
  /**
   * Refused for good (never requeued): copied to the dead-letter exchange with `reason` when one
   * is configured, then rejected. It is rejected whatever happens to the copy (refused by the
   * broker, a missing exchange after one retry, a closed channel, no confirm within 5 s), so a
   * refused message never holds a prefetch slot; the outcome says whether the copy was kept.
   */
  reject(reason: string): Promise<DeadLetterOutcome>;
}

/** What became of a refused message: copied to the dead-letter exchange or not (and why not). */
export interface DeadLetterOutcome {
  deadLettered: boolean;
  /** Why the copy was not made, when a dead-letter exchange is configured (its stack goes to the log at debug). */
  error?: Error;
}

/** Longest header value taken from a message (the reason quotes payload fields). */
export const MAX_HEADER_VALUE = 1024;
/**
 * The original headers travel with the dead letter only while this small: a message's header
 * frame must fit the broker's frame_max (128 KiB by default), and ours adds to it.
 */
export const MAX_COPIED_HEADERS = 16 * 1024;
const DEAD_LETTER_CONFIRM_MS = 5000;

/** A header value cut to {@link MAX_HEADER_VALUE} characters. */
export function capHeader(value: string, max = MAX_HEADER_VALUE): string {
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

/** The headers of a dead letter: the original ones when small, the reason and where it came from. */
export function deadLetterHeaders(original: Record<string, unknown> | undefined, reason: string, from: { exchange: string; routingKey: string; queue: string }): Record<string, unknown> {
  let size = 0;
  try {
    size = JSON.stringify(original ?? {}).length;
  } catch {
    size = Infinity;
  }
  const kept = size <= MAX_COPIED_HEADERS ? (original ?? {}) : { 'x-synchronizer-headers-dropped': Number.isFinite(size) ? size : -1 };
  return {
    ...kept,
    [REASON_HEADER]: capHeader(reason),
    'x-original-exchange': from.exchange,
    'x-original-routing-key': capHeader(from.routingKey),
    'x-original-queue': from.queue,
  };
}

/** What the consumer stream carries: deliveries, and connection health. */
export type AmqpSignal =
  | { kind: 'delivery'; delivery: AmqpDelivery }
  | { kind: 'up'; endpoint: string }
  /** `error` keeps its stack for the log at debug. */
  | { kind: 'down'; error: Error; retryInMs: number };

/** Header that carries why the synchronizer dead-lettered a message. */
export const REASON_HEADER = 'x-synchronizer-reason';

/** A delivery the batcher follows until it is settled. */
export interface Tracked {
  readonly message: ConsumeMessage;
  done: boolean;
  ok: boolean;
}

/** How to batch the acks of one channel (see {@link AckBatcher}). */
export interface AckBatchOptions {
  /**
   * Hold settled acks up to this long so that one frame covers several socket reads' deliveries
   * (default 0: flush in a microtask after the run that settled).
   */
  delayMs?: number;
  /** Flush at once (in a microtask) when this many acks wait (default 1: no holding). */
  maxBatch?: number;
}

/**
 * Held this long at most, an ack costs the prefetch window `rate × ACK_DELAY_MS` messages (10 at
 * 1,000/s of the default 1000) and saves a socket write per message: at 1,000 notifications a
 * second each came in a socket read of its own, and each read's ack frame was a write of its own
 * (amqplib writes frame by frame), about a fifth of the notification's cost on the main thread
 * (docs/scale.md, "The notification path's cost").
 */
export const ACK_DELAY_MS = 10;

/**
 * Acks held for the timer at most: a few socket reads' worth when messages come fast (a read of
 * 64 KiB holds a few dozen notifications, whose one ack frame is cheap already), never more than
 * a quarter of the window, so the broker always has the rest to send.
 */
export function ackBatch(prefetch: number): number {
  return Math.max(1, Math.min(64, Math.floor(prefetch / 4)));
}

/**
 * Acks of one channel (exported for its property test). Deliveries arrive in tag order; an ack
 * with `multiple` covers every earlier tag, so it is only sent for the longest settled prefix.
 * Settled deliveries behind an unsettled one are acked one by one, so one slow message never
 * holds the others' acks. With `delayMs`, settled acks wait up to that long (or until `maxBatch`
 * of them wait) for the next flush, so one frame covers several reads' deliveries.
 */
export class AckBatcher {
  private pending: Tracked[] = [];
  private scheduled = false;
  /** Acks settled since the last flush. */
  private waiting = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly delayMs: number;
  private readonly maxBatch: number;
  dead = false;

  constructor(
    private readonly channel: Pick<Channel, 'ack' | 'reject'>,
    options: AckBatchOptions = {},
  ) {
    this.delayMs = options.delayMs ?? 0;
    this.maxBatch = options.maxBatch ?? 1;
  }

  track(message: ConsumeMessage): Tracked {
    const t: Tracked = { message, done: false, ok: false };
    this.pending.push(t);
    return t;
  }

  ack(t: Tracked): void {
    if (t.done) return;
    t.done = true;
    t.ok = true;
    this.waiting += 1;
    this.schedule();
  }

  /** Rejects at once (no requeue): nothing later depends on it. */
  reject(t: Tracked): void {
    if (t.done) return;
    t.done = true;
    if (!this.dead) {
      try {
        this.channel.reject(t.message, false);
      } catch {
        // The channel closed meanwhile: the broker requeues it, and it will be refused again.
      }
    }
    this.schedule();
  }

  /**
   * The next flush: after `delayMs` (the acks of the reads meanwhile join it), or, with no delay or
   * `maxBatch` acks waiting, after the synchronous run that settled (amqplib hands every delivery
   * of one socket read over in one loop, and the hub settles them as it emits). A microtask, not
   * setImmediate: amqplib writes the frame itself in a setImmediate, so ours would put a whole
   * turn of the event loop (a snapshot's slice, a page's parse) between the settle and the frame,
   * and the broker sends no more than `prefetch` ahead of the acks.
   */
  private schedule(): void {
    if (this.delayMs > 0 && this.waiting < this.maxBatch) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.delayMs);
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  flush(): void {
    this.scheduled = false;
    this.waiting = 0;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.dead) return;
    let i = 0;
    let last: Tracked | undefined;
    while (i < this.pending.length && this.pending[i]!.done) {
      if (this.pending[i]!.ok) last = this.pending[i];
      i += 1;
    }
    try {
      if (last) this.channel.ack(last.message, true);
      const rest = this.pending.slice(i);
      for (const t of rest) if (t.done && t.ok) this.channel.ack(t.message, false);
      this.pending = rest.filter((t) => !t.done);
    } catch {
      // Closed channel: every unacked delivery goes back to the queue; the baseline dedupes them.
      this.dead = true;
    }
  }

  close(): void {
    this.dead = true;
    this.pending = [];
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function connectOptions(e: AmqpEndpoint, heartbeat: number): Options.Connect {
  return { protocol: e.tls ? 'amqps' : 'amqp', hostname: e.hostname, port: e.port, username: e.username, password: e.password, vhost: e.vhost, heartbeat };
}

/** The socket options of one endpoint: TLS trust and client certificate for amqps. */
function socketTlsOptions(e: AmqpEndpoint, tls: TlsOptions | undefined): Record<string, unknown> {
  if (!e.tls) return {};
  const options = nodeTlsOptions(tls);
  return { ...options, servername: options.servername ?? e.hostname };
}

/**
 * Copies refused messages to the dead-letter exchange on a confirm channel of their own: a copy
 * the broker refuses (a deleted exchange closes the channel with 404) never takes the consumer's
 * channel down. A failed copy is retried once on a fresh channel that declares the exchange
 * again; each attempt waits for the broker's confirm at most 5 s.
 */
class DeadLetterPublisher {
  private channel: Promise<ConfirmChannel> | undefined;
  private closed = false;

  constructor(
    private readonly connection: ChannelModel,
    private readonly exchange: string,
    private readonly queue: string,
  ) {}

  private open(): Promise<ConfirmChannel> {
    const opened = (async () => {
      const channel = await this.connection.createConfirmChannel();
      // A refused copy closes this channel only; the next copy opens another.
      channel.on('error', () => undefined);
      channel.on('close', () => {
        if (this.channel === opened) this.channel = undefined;
      });
      await channel.assertExchange(this.exchange, 'topic', { durable: true, autoDelete: false });
      return channel;
    })();
    opened.catch(() => {
      if (this.channel === opened) this.channel = undefined;
    });
    this.channel = opened;
    return opened;
  }

  private async attempt(message: ConsumeMessage, reason: string): Promise<void> {
    const channel = await (this.channel ?? this.open());
    const p = message.properties;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no confirm from the broker within ${DEAD_LETTER_CONFIRM_MS} ms`)), DEAD_LETTER_CONFIRM_MS);
      const done = (error?: unknown): void => {
        clearTimeout(timer);
        if (error) reject(error instanceof Error ? error : new Error(String(error)));
        else resolve();
      };
      try {
        channel.publish(
          this.exchange,
          message.fields.routingKey,
          message.content,
          {
            persistent: true,
            ...(p.contentType !== undefined ? { contentType: p.contentType as string } : {}),
            ...(p.contentEncoding !== undefined ? { contentEncoding: p.contentEncoding as string } : {}),
            ...(p.messageId !== undefined ? { messageId: capHeader(String(p.messageId), 255) } : {}),
            headers: deadLetterHeaders(p.headers as Record<string, unknown> | undefined, reason, { exchange: message.fields.exchange, routingKey: message.fields.routingKey, queue: this.queue }),
          },
          (error: unknown) => done(error),
        );
      } catch (e) {
        done(e);
      }
    });
  }

  async send(message: ConsumeMessage, reason: string): Promise<void> {
    if (this.closed) throw new Error('the connection closed');
    try {
      await this.attempt(message, reason);
    } catch (first) {
      if (this.closed) throw first;
      try {
        await this.attempt(message, reason);
      } catch (second) {
        throw new Error(`dead-lettering to exchange ${this.exchange} failed twice: ${errorMessage(first)}; then ${errorMessage(second)}`);
      }
    }
  }

  close(): void {
    this.closed = true;
    this.channel = undefined;
  }
}

/** One open connection; `ended` resolves (once) with why it ended, or with what `end` was given. */
export interface AmqpLink {
  readonly connection: ChannelModel;
  /** The endpoint, without password (`describeEndpoint`). */
  readonly where: string;
  readonly ended: Promise<Error>;
  end(error: Error): void;
}

/** Connects to one endpoint; errors say which endpoint (never with its password). */
export async function openConnection(endpoint: AmqpEndpoint, options: { heartbeatSeconds?: number; connectionName?: string; tls?: TlsOptions | undefined } = {}): Promise<AmqpLink> {
  const where = describeEndpoint(endpoint);
  let connection: ChannelModel;
  try {
    connection = await amqp.connect(connectOptions(endpoint, options.heartbeatSeconds ?? 30), {
      clientProperties: { connection_name: options.connectionName ?? 'synchronizer' },
      timeout: 10_000,
      // Nagle would hold small frames (acks, deliveries) for tens of ms; py-amqp (oslo) sets it too.
      noDelay: true,
      ...socketTlsOptions(endpoint, options.tls),
    });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const hint = typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code) ? ` (${code}: set tls.ca to the CA that signed the broker's certificate)` : '';
    throw new Error(`connecting to ${where}: ${errorMessage(e)}${hint}`);
  }
  let end: (e: Error) => void = () => undefined;
  const ended = new Promise<Error>((resolve) => (end = resolve));
  // 'error' is always followed by 'close'; without a listener it would crash the process.
  connection.on('error', (e: Error) => end(new Error(`connection to ${where} failed: ${e.message}`)));
  connection.on('close', (e?: Error) => end(new Error(`connection to ${where} closed${e ? `: ${e.message}` : ''}`)));
  return { connection, where, ended, end };
}

/** A link with its channels and topology set up; `close` ends it gracefully. */
export interface AmqpSession {
  readonly link: AmqpLink;
  close(): Promise<void>;
}

/** Opens one connection, declares the topology and starts consuming. */
async function openSession(endpoint: AmqpEndpoint, options: AmqpConsumerOptions, onDelivery: (d: AmqpDelivery) => void): Promise<AmqpSession> {
  const link = await openConnection(endpoint, options);
  const { connection, where, end: resolveEnd } = link;
  try {
    const channel = await connection.createChannel();
    channel.on('error', (e: Error) => resolveEnd(new Error(`channel on ${where} failed: ${e.message}`)));
    channel.on('close', () => resolveEnd(new Error(`channel on ${where} closed`)));
    const step = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
      try {
        return await run();
      } catch (e) {
        throw new Error(`${what} on ${where}: ${errorMessage(e)}`);
      }
    };
    await step(`setting prefetch ${options.prefetch}`, () => channel.prefetch(options.prefetch));
    const durable = options.durableExchanges ?? false;
    for (const exchange of options.exchanges) {
      const type = options.exchangeType ?? 'topic';
      await step(`declaring exchange ${exchange} (${type}, durable=${durable}${type === 'topic' ? ', as oslo does; set durableExchanges to match amqp_durable_queues' : ''})`, () =>
        channel.assertExchange(exchange, type, { durable, autoDelete: false, ...(options.exchangeArguments ? { arguments: options.exchangeArguments } : {}) }),
      );
    }
    const dlx = options.deadLetterExchange;
    if (dlx) await step(`declaring dead-letter exchange ${dlx} (topic, durable)`, () => channel.assertExchange(dlx, 'topic', { durable: true, autoDelete: false }));
    await step(`declaring queue ${options.queue}`, () =>
      channel.assertQueue(options.queue, { durable: options.durableQueue ?? true, autoDelete: false, exclusive: false, ...(options.queueArguments ? { arguments: options.queueArguments } : {}) }),
    );
    for (const b of options.bindings) {
      await step(`binding queue ${options.queue} to ${b.exchange} with ${b.routingKey}`, () => channel.bindQueue(options.queue, b.exchange, b.routingKey));
    }
    const acks = new AckBatcher(channel, { delayMs: ACK_DELAY_MS, maxBatch: ackBatch(options.prefetch) });
    const refusing = new Set<Tracked>();
    const deadLetters = dlx ? new DeadLetterPublisher(connection, dlx, options.queue) : undefined;
    void link.ended.then(() => {
      acks.close();
      deadLetters?.close();
    });
    await step(`consuming from queue ${options.queue}`, () =>
      channel.consume(
        options.queue,
        (message) => {
          if (message === null) {
            resolveEnd(new Error(`the broker cancelled the consumer of queue ${options.queue} on ${where} (queue deleted?)`));
            return;
          }
          const receivedAt = receivedNow();
          const tracked = acks.track(message);
          onDelivery({
            body: message.content,
            receivedAt,
            exchange: message.fields.exchange,
            routingKey: message.fields.routingKey,
            redelivered: message.fields.redelivered,
            properties: message.properties,
            ack: () => acks.ack(tracked),
            reject: (reason: string) => {
              if (tracked.done || refusing.has(tracked)) return Promise.resolve({ deadLettered: false, error: new Error('already settled') });
              if (!dlx) {
                acks.reject(tracked);
                return Promise.resolve({ deadLettered: false });
              }
              refusing.add(tracked);
              return deadLetters!.send(message, reason).then(
                () => ({ deadLettered: true }),
                (e: unknown) => ({ deadLettered: false, error: asError(e) }),
              ).then((outcome: DeadLetterOutcome) => {
                refusing.delete(tracked);
                acks.reject(tracked);
                return outcome;
              });
            },
          });
        },
        { noAck: false },
      ),
    );
    return {
      link,
      close: async () => {
        // A graceful stop: the acks of what was already settled, then the channel's close on the
        // same channel (frames of one channel stay in order; a connection close could overtake
        // them and the broker would requeue messages whose events were already emitted).
        acks.flush();
        await channel.close().catch(() => undefined);
        resolveEnd(new Error('consumer stopped'));
        await connection.close().catch(() => undefined);
      },
    };
  } catch (e) {
    connection.close().catch(() => undefined);
    throw e;
  }
}

/**
 * Consumes the queue, reconnecting for ever: a cold stream of deliveries and health.
 *
 * ```
 * broker:   up----x(restart)-------up------
 * result:   U-d-d-D(retryInMs)------U-d-d--   (U up, D down, d delivery)
 * ```
 *
 * 1. On subscribe it connects to the first endpoint, declares the exchanges with oslo's flags,
 *    its own queue and the bindings, sets the prefetch and consumes; then emits `up`.
 * 2. When the connection or channel drops, a declaration fails or the broker cancels the
 *    consumer, it emits `down` with the error and the delay, waits `backoffDelay(attempt)` and
 *    tries the next endpoint; the attempt count starts over after a successful connect.
 *    Deliveries not yet acked when a channel drops are redelivered by the broker.
 * 3. It never errors or completes; unsubscribing closes the connection.
 *
 * @example
 * ```ts
 * amqpConsume$({ endpoints: parseTransportUrl('rabbit://guest:guest@127.0.0.1:5672/'), queue: 'sync',
 *   exchanges: ['nova'], bindings: [{ exchange: 'nova', routingKey: 'notifications.info' }], prefetch: 100 })
 *   .subscribe((s) => s.kind === 'delivery' && s.delivery.ack());
 * ```
 */
export function amqpConsume$(options: AmqpConsumerOptions): Observable<AmqpSignal> {
  if (options.endpoints.length === 0) throw new Error('amqpConsume$: no broker endpoint given');
  return new Observable<AmqpSignal>((subscriber) =>
    keepConnected({
      endpoints: options.endpoints,
      ...(options.backoff ? { backoff: options.backoff } : {}),
      ...(options.scheduler ? { scheduler: options.scheduler } : {}),
      open: (endpoint) => openSession(endpoint, options, (delivery) => subscriber.next({ kind: 'delivery', delivery })),
      up: (_session, endpoint) => subscriber.next({ kind: 'up', endpoint }),
      down: (error, retryInMs) => subscriber.next({ kind: 'down', error, retryInMs }),
    }),
  );
}

export interface KeepConnectedOptions<S extends AmqpSession> {
  /** Brokers, tried in turn on each (re)connect. */
  endpoints: readonly AmqpEndpoint[];
  backoff?: BackoffOptions;
  scheduler?: SchedulerLike;
  /** Connects to one endpoint and sets the session up; a rejection counts as a failed attempt. */
  open(endpoint: AmqpEndpoint): Promise<S>;
  /** A session is open (`endpoint` as describeEndpoint gives it). */
  up(session: S, endpoint: string): void;
  /** An attempt failed or the session ended; the next attempt follows in `retryInMs`. */
  down(error: Error, retryInMs: number): void;
}

/**
 * The reconnect loop shared by the consumer and the publisher: opens a session on the first
 * endpoint, and whenever it ends or an attempt fails waits `backoffDelay(attempt)` and tries the
 * next endpoint (failover); the attempt count starts over after a successful open. Returns the
 * stop function, which closes the current session gracefully.
 */
export function keepConnected<S extends AmqpSession>(options: KeepConnectedOptions<S>): () => void {
  if (options.endpoints.length === 0) throw new Error('keepConnected: no broker endpoint given');
  const scheduler = options.scheduler ?? asyncScheduler;
  let stopped = false;
  let current: S | undefined;
  let wake: (() => void) | undefined;
  let timer: { unsubscribe(): void } | undefined;
  const loop = async (): Promise<void> => {
    let attempt = 0;
    let index = 0;
    while (!stopped) {
      const endpoint = options.endpoints[index % options.endpoints.length]!;
      let error: Error;
      try {
        const session = await options.open(endpoint);
        if (stopped) {
          await session.close();
          return;
        }
        current = session;
        attempt = 0;
        options.up(session, describeEndpoint(endpoint));
        error = await session.link.ended;
        current = undefined;
        // Stopped: the stop function closes the session gracefully.
        if (stopped) return;
        session.link.connection.close().catch(() => undefined);
      } catch (e) {
        error = e instanceof Error ? e : new Error(String(e));
      }
      if (stopped) return;
      attempt += 1;
      index += 1;
      const delay = backoffDelay(attempt, options.backoff);
      options.down(error, delay);
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = scheduler.schedule(() => resolve(), delay);
      });
    }
  };
  void loop();
  return () => {
    stopped = true;
    timer?.unsubscribe();
    wake?.();
    if (current) track(current.close());
  };
}

/** Graceful closes under way (last acks, channel and connection close frames). */
const closing = new Set<Promise<void>>();

function track(close: Promise<void>): void {
  const p = close.catch(() => undefined).finally(() => closing.delete(p));
  closing.add(p);
}

/**
 * Resolves once every AMQP session stopped so far has closed: a process that exits right after
 * stopping its sources would otherwise cut off their last acks (the broker would redeliver
 * messages whose events were already emitted).
 */
export async function amqpClosed(): Promise<void> {
  while (closing.size > 0) await Promise.all([...closing]);
}
