import { type Server, createServer } from 'node:http';
import { amqpClosed } from './amqp.js';
import { type Logger, createLogger } from './log.js';
import { type ServiceConfig, createSources } from './config.js';
import type { Sink } from './sinks/index.js';
import { type Synchronizer, type SynchronizerMetrics, type SourceHealth, createSynchronizer } from './synchronizer.js';

/** A running service: the synchronizer, its sinks and its health/metrics endpoint. */
export interface Service {
  sync: Synchronizer;
  /** The address health and metrics are served on, when `listen` is set. */
  address?: string;
  /**
   * A draining stop: no more observations are taken; what was taken reaches every sink, is
   * confirmed, persisted and acked; then sources, sinks, the store and the endpoint close.
   */
  stop(): Promise<void>;
  /** What a stop cut short would leave behind (for the log when the deadline passes). */
  leftover(): Record<string, number>;
}

/** Prometheus text exposition of the synchronizer's metrics and health. */
export function prometheusText(metrics: SynchronizerMetrics, health: Readonly<Record<string, SourceHealth>>): string {
  const label = (v: string): string => JSON.stringify(v);
  const lines: string[] = [
    '# HELP synchronizer_events_total Events emitted on entity$, by action.',
    '# TYPE synchronizer_events_total counter',
    ...Object.entries(metrics.events).map(([a, n]) => `synchronizer_events_total{action=${label(a)}} ${n}`),
    '# HELP synchronizer_observations_total Observations that went through the baseline, by source.',
    '# TYPE synchronizer_observations_total counter',
    ...Object.entries(metrics.observations).map(([s, n]) => `synchronizer_observations_total{source=${label(s)}} ${n}`),
    '# HELP synchronizer_invalid_records_total Records left out as invalid, by source.',
    '# TYPE synchronizer_invalid_records_total counter',
    ...Object.entries(metrics.invalidRecords).map(([s, n]) => `synchronizer_invalid_records_total{source=${label(s)}} ${n}`),
    '# HELP synchronizer_consumer_resyncs_total Consumers resynchronised after falling behind.',
    '# TYPE synchronizer_consumer_resyncs_total counter',
    `synchronizer_consumer_resyncs_total ${metrics.resyncs}`,
    '# HELP synchronizer_callback_errors_total Consumer callbacks that threw.',
    '# TYPE synchronizer_callback_errors_total counter',
    `synchronizer_callback_errors_total ${metrics.callbackErrors}`,
    '# HELP synchronizer_clock_skew_corrections_total Observations stamped too far in the future, taken at the local time.',
    '# TYPE synchronizer_clock_skew_corrections_total counter',
    `synchronizer_clock_skew_corrections_total ${metrics.clockSkewCorrections}`,
    '# HELP synchronizer_entities Entities in the baseline.',
    '# TYPE synchronizer_entities gauge',
    `synchronizer_entities ${metrics.entities}`,
    '# HELP synchronizer_tombstones Deleted entities remembered against late notifications.',
    '# TYPE synchronizer_tombstones gauge',
    `synchronizer_tombstones ${metrics.tombstones}`,
    '# HELP synchronizer_source_up 1 when the source is up.',
    '# TYPE synchronizer_source_up gauge',
    ...Object.values(health).map((h) => `synchronizer_source_up{source=${label(h.source)}} ${h.status === 'up' ? 1 : 0}`),
    '# HELP synchronizer_source_failures Failures in a row, by source.',
    '# TYPE synchronizer_source_failures gauge',
    ...Object.values(health).map((h) => `synchronizer_source_failures{source=${label(h.source)}} ${h.failures}`),
  ];
  return lines.join('\n') + '\n';
}

function serve(sync: Synchronizer, listen: string, log: Logger): Promise<Server> {
  const [host, port] = [listen.slice(0, listen.lastIndexOf(':')) || '127.0.0.1', Number(listen.slice(listen.lastIndexOf(':') + 1))];
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(prometheusText(sync.metrics(), sync.health()));
    } else if (req.url === '/health' || req.url === '/healthz') {
      const health = sync.health();
      const ok = Object.values(health).every((h) => h.status === 'up');
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ok, sources: health }));
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      log.info('serving health and metrics', { listen: `${host}:${(server.address() as { port: number }).port}` });
      resolve(server);
    });
  });
}

/** Starts the service described by a checked config. */
export async function startService(config: ServiceConfig, log: Logger = createLogger(config.log)): Promise<Service> {
  const sources = createSources(config.sources, { log, configDir: config.configDir });
  const sync = createSynchronizer({
    sources,
    ...(config.types ? { types: config.types } : {}),
    tombstoneMs: config.tombstoneMs,
    maxClockSkewMs: config.maxClockSkewMs,
    bufferSize: config.bufferSize,
    ...(config.state ? { state: config.state } : {}),
    log,
  });
  const sinks: Sink[] = config.sinks.map((s) => s.plugin.create(s.options, { log, configDir: config.configDir }));
  const attached = sinks.map((s) => s.attach(sync));
  const server = config.listen ? await serve(sync, config.listen, log) : undefined;
  sync.start();
  log.info('synchronizer started', { sources: sources.map((s) => s.name), sinks: config.sinks.map((s) => s.use) });
  const address = server ? `127.0.0.1:${(server.address() as { port: number }).port}` : undefined;
  return {
    sync,
    ...(address ? { address } : {}),
    async stop() {
      log.info('draining', { unsettled: sync.unsettled() });
      await sync.drain();
      attached.forEach((a) => a.unsubscribe());
      await Promise.all(sinks.map((s) => s.close?.()));
      await sync.close();
      await amqpClosed();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      log.info('synchronizer stopped');
    },
    leftover: () => ({ unsettledObservations: sync.unsettled() }),
  };
}
