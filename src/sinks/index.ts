import type { Subscription } from 'rxjs';
import type { Logger } from '../log.js';
import type { OptionReader } from '../options.js';
import type { Synchronizer } from '../synchronizer.js';
import amqpSink from './amqp.js';
import stdoutSink from './stdout.js';

/** Where the service sends events: attached to a synchronizer before it starts. */
export interface Sink {
  attach(sync: Synchronizer): Subscription;
  /** Flushes and releases what the sink holds (called at shutdown). */
  close?(): Promise<void>;
  /** What the sink holds for /metrics: messages sent but not yet confirmed by their destination. */
  stats?(): { unconfirmed: number; setAside?: number };
}

export interface SinkContext {
  log: Logger;
  configDir: string;
}

export interface SinkPlugin<O> {
  options(read: OptionReader): O;
  create(options: O, context: SinkContext): Sink;
}

export const builtinSinks: Readonly<Record<string, SinkPlugin<unknown>>> = {
  stdout: stdoutSink as SinkPlugin<unknown>,
  amqp: amqpSink as SinkPlugin<unknown>,
};
