/**
 * Publishes notifications exactly as oslo.messaging 14's rabbit driver does (components.md,
 * ../shared/fixtures/wire/oslo-amqp-deliveries.json): exchange = control_exchange declared as a
 * non-durable topic exchange, routing key `<topic>.<priority>`, the notifier's own queue of that
 * name declared and bound on first use, content_type application/json, content_encoding utf-8,
 * delivery_mode 2, empty headers, no AMQP message_id or timestamp.
 */
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';

export class OsloPublisher {
  private readonly declared = new Set<string>();

  private constructor(
    private readonly connection: ChannelModel,
    private readonly channel: ConfirmChannel,
  ) {}

  static async connect(url: string): Promise<OsloPublisher> {
    // py-amqp, which oslo's rabbit driver uses, sets TCP_NODELAY.
    const connection = await amqp.connect(url, { noDelay: true });
    connection.on('error', () => undefined);
    const channel = await connection.createConfirmChannel();
    channel.on('error', () => undefined);
    return new OsloPublisher(connection, channel);
  }

  /** Declares what oslo declares before its first notify on this exchange/routing key. */
  async declare(exchange: string, routingKey: string, durable = false): Promise<void> {
    const key = `${exchange}\u0000${routingKey}`;
    if (this.declared.has(key)) return;
    await this.channel.assertExchange(exchange, 'topic', { durable, autoDelete: false });
    await this.channel.assertQueue(routingKey, { durable, autoDelete: false, exclusive: false });
    await this.channel.bindQueue(routingKey, exchange, routingKey);
    this.declared.add(key);
  }

  /** Publishes one body; resolves when the broker confirmed it. */
  async publish(exchange: string, routingKey: string, body: Buffer): Promise<void> {
    await this.declare(exchange, routingKey);
    await new Promise<void>((resolve, reject) => {
      this.channel.publish(exchange, routingKey, body, { contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, headers: {}, priority: 0 }, (err: unknown) =>
        err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
      );
    });
  }

  /** Publishes without waiting for each confirm (bulk); `flush()` waits for all. */
  publishNoWait(exchange: string, routingKey: string, body: Buffer): boolean {
    return this.channel.publish(exchange, routingKey, body, { contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, headers: {}, priority: 0 });
  }

  flush(): Promise<void> {
    return this.channel.waitForConfirms();
  }

  /** The channel, for test set-up beyond publishing (queue checks, deletes). */
  get raw(): ConfirmChannel {
    return this.channel;
  }

  async close(): Promise<void> {
    await this.connection.close().catch(() => undefined);
  }
}
