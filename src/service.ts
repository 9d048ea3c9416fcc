import { type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Subscription } from 'rxjs';
import { amqpClosed } from './amqp.js';
import { type Logger, createLogger } from './log.js';
import { type ServiceConfig, createSources } from './config.js';
import { createServiceMetrics } from './metrics.js';
import type { EntityAction, EntityEvent, Observation } from './model.js';
import { Routes } from './routes.js';
import type { Sink } from './sinks/index.js';
import { setSliceMs } from './pause.js';
import { addStatusRoutes } from './status.js';
import { type SourceHealth, type Synchronizer, createSynchronizer } from './synchronizer.js';
import { createCluster } from './cluster/index.js';
import { registerClusterMetrics } from './cluster/metrics.js';

/** A running service: the synchronizer, its sinks and its listener (probes, metrics, status page). */
export interface Service {
  sync: Synchronizer;
  /** The address the listener is bound to (`host:port`, IPv6 hosts in brackets), when `listen` is set. */
  address?: string;
  /** The listener's routes: a part that needs a push endpoint adds it here. */
  routes: Routes;
  /** Why the service is not ready (empty when it is): what /readyz answers. */
  notReady(): string[];
  /**
   * A draining stop: no more observations are taken; what was taken reaches every sink, is
   * confirmed, persisted and acked; then sources, sinks, the store and the endpoint close.
   */
  stop(): Promise<void>;
  /** What a stop cut short would leave behind (for the log when the deadline passes). */
  leftover(): Record<string, number>;
}

export interface ServiceOptions {
  /** How often a one-line summary is logged at info, ms (0: never; the CLI logs one a minute). */
  summaryIntervalMs?: number;
}

/** `host:port` of a listening server, IPv6 hosts in brackets. */
function boundAddress(server: Server): string {
  const a = server.address() as AddressInfo;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

function listen(server: Server, listenOn: string): Promise<void> {
  const colon = listenOn.lastIndexOf(':');
  const host = listenOn.slice(0, colon).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = Number(listenOn.slice(colon + 1));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * What a source's first complete snapshot and each later one look like in the log: entities by
 * type, what the poll read (pages, bytes, time) when the source counts it, and how long it took
 * from the poll's start until its events were out.
 */
function snapshotFields(o: Observation): Record<string, unknown> {
  if (o.kind !== 'snapshot') return {};
  const byType: Record<string, number> = {};
  for (const r of o.records) byType[r.type] = (byType[r.type] ?? 0) + 1;
  const started = Date.parse(o.at);
  return {
    entities: byType,
    records: o.records.length,
    ...(o.read ? { pages: o.read.pages, bytes: o.read.bytes, readMs: o.read.readMs } : {}),
    ...(Number.isNaN(started) ? {} : { durationMs: Math.max(0, Date.now() - started) }),
  };
}

/** Starts the service described by a checked config. */
export async function startService(config: ServiceConfig, serviceLog: Logger = createLogger(config.log), options: ServiceOptions = {}): Promise<Service> {
  // In a cluster every log line says which instance wrote it.
  const log = config.cluster ? serviceLog.child({ instance: config.cluster.instance }) : serviceLog;
  // The process's budget of sliced work per turn (one service per process; a library user calls setSliceMs).
  setSliceMs(config.sliceMs);
  const cluster = config.cluster ? createCluster(config.cluster, config.sources.map((s) => s.name), log) : undefined;
  // First, so that a part created below (a push source's webhook) can add its path to it.
  const routes = new Routes(log);
  // In a cluster a source runs only on the instance that holds its lease.
  const sources = createSources(config.sources, { log, configDir: config.configDir }).map((s, i) => (cluster ? cluster.lease(s, config.sources[i]) : s));
  const snapshotsSeen = new Set<string>();
  const onObserved = (o: Observation, events: readonly EntityEvent[]): void => {
    metrics.observed(o, events);
    if (o.kind !== 'snapshot') return;
    if (snapshotsSeen.has(o.source)) {
      log.debug('snapshot', { source: o.source, ...snapshotFields(o), events: events.length });
    } else {
      snapshotsSeen.add(o.source);
      log.info('first complete snapshot', { source: o.source, ...snapshotFields(o), events: events.length });
    }
  };
  const sync = createSynchronizer({
    sources,
    ...(config.types ? { types: config.types } : {}),
    tombstoneMs: config.tombstoneMs,
    maxClockSkewMs: config.maxClockSkewMs,
    bufferSize: config.bufferSize,
    ...(config.state ? { state: config.state } : {}),
    log,
    onObserved,
    ...(cluster?.mirror$ ? { mirror: cluster.mirror$ } : {}),
    ...(cluster ? { settleAfterSinks: true } : {}),
  });
  const sinks: Sink[] = config.sinks.map((s) => s.plugin.create(s.options, { log, configDir: config.configDir }));
  const sinkNames = config.sinks.map((s, i) => (config.sinks.length > 1 ? `${s.use}-${i}` : s.use));
  if (cluster) {
    sinks.push(cluster.sink);
    sinkNames.push('cluster');
  }
  const metrics = createServiceMetrics(
    () => sync,
    sources,
    sinks.map((s, i) => ({ name: sinkNames[i]!, ...(s.stats ? { stats: () => s.stats!() } : {}) })),
  );
  if (cluster) registerClusterMetrics(metrics.registry, () => cluster.health());
  const running = new Subscription();
  running.add(metrics.attach(sync));

  /** Ready: a poll source once its first complete snapshot went through; a push source while connected. */
  const ready = (h: SourceHealth): boolean => snapshotsSeen.has(h.source) || h.status === 'up';
  const notReady = (): string[] => {
    const reasons = Object.values(sync.health())
      .filter((h) => !ready(h))
      .map((h) => `${h.source}: ${h.status}${h.error ? ` (${h.error})` : ''}`);
    const failed = sync.metrics().pipelineError;
    return failed === undefined ? reasons : [`pipeline failed: ${failed}`, ...reasons];
  };

  routes.add('/livez', (_req, res) => {
    const failed = sync.metrics().pipelineError;
    res.writeHead(failed === undefined ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(failed === undefined ? 'ok\n' : `pipeline failed: ${failed}\n`);
  });
  routes.add('/readyz', (_req, res) => {
    const reasons = notReady();
    res.writeHead(reasons.length === 0 ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(reasons.length === 0 ? 'ready\n' : `not ready:\n${reasons.join('\n')}\n`);
  });
  const health = (_req: unknown, res: ServerResponse): void => {
    const sourcesHealth = sync.health();
    const ok = Object.values(sourcesHealth).every((h) => h.status === 'up');
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ok, sources: sourcesHealth, ...(cluster ? { cluster: cluster.health() } : {}) }));
  };
  routes.add('/health', health);
  routes.add('/healthz', health);
  routes.add('/metrics', async (_req, res) => {
    const body = await metrics.text();
    res.writeHead(200, { 'content-type': metrics.contentType }).end(body);
  });
  running.add(addStatusRoutes(routes, sync, { ready }));

  const attached = sinks.map((s) => s.attach(sync));
  let server: Server | undefined;
  if (config.listen) {
    const s = createServer((req, res) => void routes.handle(req, res));
    await listen(s, config.listen);
    server = s;
    log.info('serving health and metrics', { listen: boundAddress(s), paths: ['/', '/livez', '/readyz', '/health', '/metrics'] });
  }
  sync.start();
  cluster?.start();
  log.info('synchronizer started', { sources: sources.map((s) => s.name), sinks: config.sinks.map((s) => s.use), ...(cluster ? { cluster: config.cluster!.name } : {}) });

  if (options.summaryIntervalMs) {
    let last = sync.metrics().events;
    const timer = setInterval(() => {
      const m = sync.metrics();
      const delta = Object.fromEntries(Object.entries(m.events).map(([a, n]) => [a, n - last[a as EntityAction]]));
      last = m.events;
      const down = Object.values(sync.health()).filter((h) => h.status === 'down').map((h) => h.source);
      log.info('summary', { events: delta, entities: m.entities, sourcesDown: down, sinkBacklog: m.backlog });
    }, options.summaryIntervalMs);
    timer.unref();
    running.add(() => clearInterval(timer));
  }

  return {
    sync,
    routes,
    notReady,
    ...(server ? { address: boundAddress(server) } : {}),
    async stop() {
      log.info('draining', { unsettled: sync.unsettled() });
      // Leases first: the sources stop here and another instance takes them over while this one drains.
      await cluster?.stop();
      await sync.drain();
      attached.forEach((a) => a.unsubscribe());
      running.unsubscribe();
      await Promise.all(sinks.map((s) => s.close?.()));
      await sync.close();
      await amqpClosed();
      if (server) {
        const closing = new Promise<void>((resolve) => server.close(() => resolve()));
        // Event streams of open status pages would hold close() for ever.
        server.closeAllConnections();
        await closing;
      }
      log.info('synchronizer stopped');
    },
    leftover: () => ({ unsettledObservations: sync.unsettled() }),
  };
}


