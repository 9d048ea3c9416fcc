import {
  type Observable as ObservableT,
  type SchedulerLike,
  BehaviorSubject,
  Observable,
  Subject,
  Subscription,
  asyncScheduler,
  filter,
  map,
  merge,
  scan,
  tap,
} from 'rxjs';
import { match } from 'ts-pattern';
import { type BaselineState, type BaselineStep, applyObservation, emptyBaseline } from '../operators/diffAgainstBaseline.js';
import { type InvalidRecord, normalizeEntity } from '../operators/normalizeEntity.js';
import { typeMatcher } from '../operators/ofType.js';
import { type BackoffOptions, retryWithBackoff } from './backoff.js';
import { type Logger, errorMessage, silentLogger } from './log.js';
import { type Entity, type EntityAction, type EntityEvent, type EntityType, type Observation, unreachable } from './model.js';
import type { HealthSignal, Source, SourceSignal } from './source.js';

/** What `entities$` and `register` deliver: the current state, a marker, then the changes. */
export type SyncItem =
  /** One current entity, replayed at (re)subscription. */
  | { kind: 'replay'; entity: Entity }
  /** The replay is complete: `count` entities; changes follow. */
  | { kind: 'synced'; count: number }
  /** A change after the marker. */
  | { kind: 'event'; event: EntityEvent }
  /**
   * The consumer fell more than its buffer behind: queued events were dropped, forget what you
   * hold; a fresh replay and `synced` follow. Only `register` sends it.
   */
  | { kind: 'resync'; dropped: number };

export interface SourceHealth {
  source: string;
  status: 'starting' | 'up' | 'down' | 'stopped';
  /** ISO time of the last status change. */
  since: string;
  /** Failures in a row (polls, connections, subscriptions). */
  failures: number;
  /** For down: what failed. */
  error?: string;
  /** For down: ms until the next attempt. */
  retryInMs?: number;
}

export interface SynchronizerMetrics {
  /** Events emitted on entity$, by action. */
  events: Record<EntityAction, number>;
  /** Observations that went through the baseline, by source. */
  observations: Record<string, number>;
  /** Records left out as invalid, by source. */
  invalidRecords: Record<string, number>;
  /** Consumers resynchronised after falling behind. */
  resyncs: number;
  /** Consumer callbacks that threw or rejected. */
  callbackErrors: number;
  /** Entities in the baseline now. */
  entities: number;
  /** Tombstones held now. */
  tombstones: number;
  /** Events queued in `register` consumers, not yet handed to their callbacks (sink backlog). */
  backlog: number;
  /** Why the pipeline stopped, if it failed (every source is retried, so it should never be set). */
  pipelineError?: string;
  /** Observations whose future time was taken as the local time (DESIGN rule 8), when counted. */
  clockSkewCorrections?: number;
}

export interface SynchronizerOptions {
  sources: readonly Source<unknown>[];
  /** Active entity types (exact, or `family.*`); default: all. Others are dropped at the door. */
  types?: readonly EntityType[];
  /** How long a deleted entity's tombstone holds, ms (default 10 min). */
  tombstoneMs?: number;
  /** Events a `register` consumer may have queued before it is resynchronised (default 10,000). */
  bufferSize?: number;
  /** Backoff for a source whose stream errors (default 1 s doubling to 60 s, 20 % jitter). */
  retry?: BackoffOptions;
  /** Keep raw records on entities (memory!). */
  keepRaw?: boolean;
  scheduler?: SchedulerLike;
  log?: Logger;
  /**
   * Told about every observation once its events were emitted (metrics, progress logs). Runs on
   * the pipeline: keep it cheap; what it throws is logged and ignored.
   */
  onObserved?: (observation: Observation, events: readonly EntityEvent[]) => void;
}

export interface RegisterOptions {
  /** Overrides the synchronizer's bufferSize for this consumer. */
  bufferSize?: number;
}

export interface Synchronizer {
  /** Hot: every event once, in order. Subscribers are called synchronously; prefer register() for slow work. */
  readonly entity$: ObservableT<EntityEvent>;
  /** Per-source health, replayed to new subscribers. */
  readonly health$: ObservableT<Readonly<Record<string, SourceHealth>>>;
  /** Records left out by normalizeEntity, with the reason. */
  readonly invalid$: ObservableT<InvalidRecord>;
  /** Subscribes to every source. Idempotent. */
  start(): void;
  /** Unsubscribes from every source (pollers stop, consumers close). The baseline is kept. */
  stop(): void;
  /** Every current entity of `types` (default all). */
  snapshot(types?: readonly EntityType[]): Entity[];
  /** Current state, `synced`, then the changes — no gap, no duplicate. Cold: each subscriber gets its own replay. */
  entities$(types?: readonly EntityType[]): ObservableT<SyncItem>;
  /**
   * Calls `callback` for every item of `entities$(types)`, asynchronously and one at a time (an
   * async callback is awaited), with a bounded queue: a slow or throwing callback never blocks
   * the pipeline or other consumers. Unsubscribe the returned handle to stop.
   */
  register(types: readonly EntityType[] | undefined, callback: (item: SyncItem) => void | Promise<void>, options?: RegisterOptions): Subscription;
  health(): Readonly<Record<string, SourceHealth>>;
  metrics(): SynchronizerMetrics;
}

function isHealth<R>(signal: SourceSignal<R>): signal is HealthSignal {
  return signal.kind === 'health';
}

/**
 * The hub: merges every source through normalizeEntity into one baseline (diffAgainstBaseline's
 * reducer) and hands the events to consumers.
 *
 * @example
 * ```ts
 * const sync = createSynchronizer({ sources: [source] });
 * sync.entity$.pipe(ofType('nova.instance')).subscribe((e) => console.log(e.action, e.entity.key));
 * sync.start();
 * ```
 */
export function createSynchronizer(options: SynchronizerOptions): Synchronizer {
  const { sources, tombstoneMs, bufferSize = 10_000, retry = {}, keepRaw = false, scheduler = asyncScheduler, log = silentLogger } = options;
  const names = new Set<string>();
  for (const s of sources) {
    if (names.has(s.name)) throw new Error(`two sources are named ${JSON.stringify(s.name)}: names must be unique`);
    names.add(s.name);
  }
  const active = typeMatcher(options.types);
  const events = new Subject<EntityEvent>();
  const invalid = new Subject<InvalidRecord>();
  const now = (): string => new Date(scheduler.now()).toISOString();
  const health = new BehaviorSubject<Readonly<Record<string, SourceHealth>>>(
    Object.fromEntries(sources.map((s) => [s.name, { source: s.name, status: 'starting', since: now(), failures: 0 } satisfies SourceHealth])),
  );
  const metrics = {
    events: { create: 0, update: 0, delete: 0 } as Record<EntityAction, number>,
    observations: {} as Record<string, number>,
    invalidRecords: {} as Record<string, number>,
    resyncs: 0,
    callbackErrors: 0,
    backlog: 0,
  };
  let state: BaselineState = emptyBaseline();
  const diffOptions = tombstoneMs === undefined ? {} : { tombstoneMs };
  /** Sequence number of the last event emitted, and of the last event contained in `state`. */
  let emittedSeq = 0;
  let stateSeq = 0;
  let running: Subscription | undefined;
  let pipelineError: string | undefined;

  const setHealth = (source: string, update: Partial<SourceHealth>): void => {
    const prev = health.value[source]!;
    const status = update.status ?? prev.status;
    const next: SourceHealth = {
      source,
      status,
      since: status === prev.status ? prev.since : now(),
      failures: status === 'up' ? 0 : (update.failures ?? prev.failures),
      ...(status === 'down' && update.error !== undefined ? { error: update.error } : {}),
      ...(status === 'down' && update.retryInMs !== undefined ? { retryInMs: update.retryInMs } : {}),
    };
    if (status !== prev.status) {
      const fields = { source, status, ...(next.error ? { error: next.error } : {}), ...(next.retryInMs !== undefined ? { retryInMs: next.retryInMs } : {}) };
      if (status === 'down') log.warn('source is down', fields);
      else log.info(`source is ${status}`, fields);
    } else if (status === 'down') {
      log.warn('source still down', { source, error: next.error, failures: next.failures, retryInMs: next.retryInMs });
    }
    health.next({ ...health.value, [source]: next });
  };

  const onHealth = (source: string, signal: HealthSignal): void =>
    match(signal.status)
      .with('up', () => setHealth(source, { status: 'up' }))
      .with('down', () =>
        setHealth(source, {
          status: 'down',
          failures: (health.value[source]?.failures ?? 0) + 1,
          error: signal.error ?? 'unknown error',
          ...(signal.retryInMs !== undefined ? { retryInMs: signal.retryInMs } : {}),
        }),
      )
      .exhaustive();

  /** Drops what is not active; an observation with nothing left is settled at once. */
  const onlyActive = (o: Observation): Observation | undefined => {
    switch (o.kind) {
      case 'snapshot': {
        const types = o.types.filter(active);
        if (types.length === o.types.length) return o;
        if (types.length === 0) {
          o.settle?.({ ok: true });
          return undefined;
        }
        return { ...o, types, records: o.records.filter((r) => active(r.type)) };
      }
      case 'change':
        if (active(o.record.type)) return o;
        o.settle?.({ ok: true });
        return undefined;
      default:
        return unreachable(o, 'observation');
    }
  };

  /**
   * Entity type → the one source whose snapshots are complete for it: the first to send one. A
   * second source's snapshots of that type are refused (and it is reported down), since each would
   * delete every entity the other one wrote — two clouds polled into one hub, for instance.
   */
  const snapshotOwners = new Map<EntityType, string>();
  const fromOwner = (o: Observation): boolean => {
    if (o.kind !== 'snapshot') return true;
    const clash = o.types.find((type) => (snapshotOwners.get(type) ?? o.source) !== o.source);
    if (clash === undefined) {
      for (const type of o.types) snapshotOwners.set(type, o.source);
      return true;
    }
    const error =
      `${o.source} and ${snapshotOwners.get(clash)} both send complete snapshots of ${clash}, so each would delete the other's entities: ` +
      `${o.source}'s snapshots are refused. Give each entity type to one poll source (its types option).`;
    onHealth(o.source, { kind: 'health', status: 'down', error });
    o.settle?.({ ok: false, reason: error });
    return false;
  };

  const observationsOf = (source: Source<unknown>): ObservableT<Observation> =>
    source.signal$.pipe(
      tap({
        complete: () => log.info('source completed', { source: source.name }),
      }),
      retryWithBackoff<SourceSignal<unknown>>({
        ...retry,
        scheduler,
        onRetry: ({ error, delayMs }) =>
          onHealth(source.name, { kind: 'health', status: 'down', error: errorMessage(error), retryInMs: delayMs }),
      }),
      filter((signal): signal is Observation<unknown> => {
        if (!isHealth(signal)) return true;
        onHealth(source.name, signal);
        return false;
      }),
      // The source's name is what entities carry, whatever the plugin wrote.
      map((o) => (o.source === source.name ? o : { ...o, source: source.name })),
      normalizeEntity(source.map, {
        keepRaw,
        onInvalid: (record) => {
          metrics.invalidRecords[record.source] = (metrics.invalidRecords[record.source] ?? 0) + 1;
          log.warn('invalid record left out', { source: record.source, reason: record.reason, ...(record.key ? { key: record.key } : {}) });
          invalid.next(record);
        },
      }),
      map(onlyActive),
      filter((o): o is Observation => o !== undefined && fromOwner(o)),
    );

  const deliver = (next: BaselineStep): void => {
    state = next.state;
    stateSeq = emittedSeq + next.events.length;
    const observation = next.observation;
    if (observation) metrics.observations[observation.source] = (metrics.observations[observation.source] ?? 0) + 1;
    for (const event of next.events) {
      emittedSeq += 1;
      metrics.events[event.action] += 1;
      events.next(event);
    }
    observation?.settle?.({ ok: true });
    if (observation && options.onObserved) {
      try {
        options.onObserved(observation, next.events);
      } catch (error) {
        log.error('onObserved failed', { error: errorMessage(error) });
      }
    }
  };

  const entities$ = (types?: readonly EntityType[]): ObservableT<SyncItem> => {
    const matches = typeMatcher(types);
    return new Observable<SyncItem>((subscriber) => {
      const current = state;
      const currentSeq = stateSeq;
      // Events that arrive while the replay is being delivered wait here, so none is lost.
      let pending: EntityEvent[] | undefined = [];
      const subscription = events.subscribe((event) => {
        if (emittedSeq <= currentSeq || !matches(event.entity.type)) return; // already in the replay
        if (pending) pending.push(event);
        else subscriber.next({ kind: 'event', event });
      });
      let count = 0;
      for (const entry of current.entities.values()) {
        if (subscriber.closed) break;
        if (!matches(entry.entity.type)) continue;
        count += 1;
        subscriber.next({ kind: 'replay', entity: entry.entity });
      }
      subscriber.next({ kind: 'synced', count });
      for (let i = 0; i < pending.length && !subscriber.closed; i++) subscriber.next({ kind: 'event', event: pending[i]! });
      pending = undefined;
      return subscription;
    });
  };

  const register: Synchronizer['register'] = (types, callback, registerOptions = {}) => {
    const limit = registerOptions.bufferSize ?? bufferSize;
    const queue: SyncItem[] = [];
    let head = 0;
    let queuedEvents = 0;
    let draining = false;
    let resyncDropped: number | undefined;
    let upstream: Subscription | undefined;
    const handle = new Subscription(() => {
      upstream?.unsubscribe();
      metrics.backlog -= queuedEvents;
      queuedEvents = 0;
    });

    const connect = (): void => {
      upstream = entities$(types).subscribe((item) => {
        queue.push(item);
        if (item.kind === 'event') metrics.backlog += 1;
        if (item.kind === 'event' && ++queuedEvents > limit) {
          // Too far behind: drop the backlog, and replay fresh state once the callback is free.
          upstream?.unsubscribe();
          resyncDropped = queuedEvents;
          metrics.backlog -= queuedEvents;
          queue.length = head = queuedEvents = 0;
          metrics.resyncs += 1;
          log.warn('consumer fell behind and is resynchronised', { types, dropped: resyncDropped, bufferSize: limit });
        }
        schedule();
      });
    };
    const schedule = (): void => {
      if (!draining && !handle.closed) {
        draining = true;
        setImmediate(() => void drain());
      }
    };
    const drain = async (): Promise<void> => {
      while (!handle.closed) {
        if (head >= queue.length) {
          queue.length = head = 0;
          if (resyncDropped === undefined) break;
          const dropped = resyncDropped;
          resyncDropped = undefined;
          queue.push({ kind: 'resync', dropped });
          connect();
        }
        const item = queue[head]!;
        queue[head++] = undefined as unknown as SyncItem; // let it be collected
        if (item.kind === 'event') {
          queuedEvents -= 1;
          metrics.backlog -= 1;
        }
        try {
          await callback(item);
        } catch (error) {
          metrics.callbackErrors += 1;
          log.error('consumer callback failed', { types, error: errorMessage(error) });
        }
      }
      draining = false;
    };
    connect();
    return handle;
  };

  return {
    entity$: events.asObservable(),
    health$: health.asObservable(),
    invalid$: invalid.asObservable(),
    start() {
      if (running) return;
      running = merge(...sources.map(observationsOf))
        .pipe(scan((step: BaselineStep, o: Observation) => applyObservation(step.state, o, diffOptions), { state, events: [] }))
        .subscribe({
          next: deliver,
          // Unreachable in practice (every source is retried); logged rather than lost.
          error: (error: unknown) => {
            pipelineError = errorMessage(error);
            log.error('pipeline failed', { error: pipelineError });
          },
        });
    },
    stop() {
      running?.unsubscribe();
      running = undefined;
      for (const s of sources) setHealth(s.name, { status: 'stopped' });
    },
    snapshot(types) {
      const matches = typeMatcher(types);
      const out: Entity[] = [];
      for (const entry of state.entities.values()) if (matches(entry.entity.type)) out.push(entry.entity);
      return out;
    },
    entities$,
    register,
    health: () => health.value,
    metrics: () => ({
      ...metrics,
      events: { ...metrics.events },
      observations: { ...metrics.observations },
      invalidRecords: { ...metrics.invalidRecords },
      entities: state.entities.size,
      tombstones: state.tombstones.size,
      ...(pipelineError === undefined ? {} : { pipelineError }),
    }),
  };
}
