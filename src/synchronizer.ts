import { mark } from './marks.js';
import { EMPTY, type Observable, Subject, type Subscription, asyncScheduler, filter, merge, scan, tap } from 'rxjs';
import { type BaselineStep, type DiffOptions, applyObservation, indexedBaseline } from '../operators/diffAgainstBaseline.js';
import type { InvalidRecord } from '../operators/normalizeEntity.js';
import { typeMatcher } from '../operators/ofType.js';
import { asError, errorMessage, silentLogger } from './log.js';
import type { Observation } from './model.js';
import { createHubBaseline } from './hub/baseline.js';
import { STATE_HEALTH, createCommitLine } from './hub/commit.js';
import { createHealthBoard } from './hub/health.js';
import { observationsOf } from './hub/intake.js';
import { type HubLookup, createBaselineLookup } from './hub/kept.js';
import { HUB_SLICES, preparedInSlices, preparingAsNormalized } from './hub/slicing.js';
import { createCounters, metricsOf } from './hub/metrics.js';
import { createOwnership } from './hub/ownership.js';
import { registerWith } from './hub/register.js';
import { replayOf } from './hub/replay.js';
import type { Synchronizer, SynchronizerOptions } from './hub/types.js';
import { entityScope, scopeNameProblem } from './scope.js';
import { type StoredBaseline, openBaselineStore } from './store/lmdb.js';

export type { RegisterOptions, SourceHealth, SyncItem, Synchronizer, SynchronizerMetrics, SynchronizerOptions } from './hub/types.js';
export type { Gate } from './hub/commit.js';

/**
 * The hub: merges every source through normalizeEntity into one baseline (diffAgainstBaseline's
 * reducer) and hands the events to consumers. Its parts, in the order data flows through them:
 * intake (one source's observations: retry, normalize, active types, ownership), the baseline
 * (reducer steps and the hot event stream), replay (`entities$`), register (queued consumers),
 * the commit line (sinks' gates, the state store, then settle); health and metrics on the side.
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
    const scopeProblem = s.scope === undefined ? undefined : scopeNameProblem(s.scope);
    if (scopeProblem !== undefined) throw new Error(`source ${JSON.stringify(s.name)}: ${scopeProblem}`);
  }
  if (options.state && names.has(STATE_HEALTH)) throw new Error(`a source is named ${JSON.stringify(STATE_HEALTH)}: with a state store that name is the store's health entry`);
  // Loaded before any source runs: the first snapshot of each type then emits only what changed.
  const store = options.state ? openBaselineStore(options.state.dir, { log }) : undefined;
  let stored: StoredBaseline | undefined;
  if (store) {
    const started = Date.now();
    stored = store.load();
    log.info('state loaded', { dir: store.dir, entities: stored.state.entities.size, tombstones: stored.state.tombstones.size, ms: Date.now() - started });
  }
  const now = (): string => new Date(scheduler.now()).toISOString();
  const health = createHealthBoard([...names], now, log);
  if (store) health.set(STATE_HEALTH, { status: 'up' });
  const counters = createCounters();
  const invalid = new Subject<InvalidRecord>();
  const baseline = createHubBaseline(stored?.state);
  const ownership = createOwnership(
    (o, error) => {
      health.signal(o.source, { kind: 'health', status: 'down', error });
      o.settle?.({ ok: false, reason: error });
    },
    // A type owned by a source no longer configured is free again.
    [...(stored?.owners ?? [])].filter(([, source]) => names.has(source)),
  );
  const onObserved = options.onObserved;
  /** Emits a step's events (after it was written, with a store); returns the first one's number. */
  const emit = (step: BaselineStep): number => {
    const firstSeq = baseline.emittedSeq() + 1;
    baseline.apply(step, (event, seq) => {
      counters.events[event.action] += 1;
      commits.tag(event, seq);
    });
    if (step.observation && onObserved) {
      try {
        onObserved(step.observation, step.events);
      } catch (error) {
        log.error('onObserved failed', { error: asError(error) });
      }
    }
    return firstSeq;
  };
  const commits = createCommitLine({ store, persisted: baseline.state(), lastOutboxId: stored?.lastOutboxId ?? 0, owners: ownership.owners, emit, health, log, settleAfterSinks: options.settleAfterSinks ?? false });
  /** The outbox the store held at start, emitted again at the first start (then dropped). */
  let outbox = stored?.outbox;
  /**
   * The reducer's latest step while running: what a snapshot is prepared against, as its step will
   * be taken on it (the hub's state lags it while the store writes).
   */
  let latest: BaselineStep | undefined;
  const active = typeMatcher(options.types);
  // Every source's: a nagios source's attach refs to nova.host are qualified like nova's own.
  // Stryker disable next-line ArrayDeclaration: `?? ["Stryker was here"]` adds a type no source maps to
  const localTypes = [...new Set(sources.flatMap((s) => s.localTypes ?? []))];
  /**
   * The baseline lent to the sources that keep unchanged records (src/hub/kept.ts), by source
   * name, before anything subscribes to them. Not with keepRaw: a kept record has no raw of its
   * own (the element it stands for is never read), so every record is read in full.
   */
  const lookups = new Map<string, HubLookup>();
  for (const s of sources) {
    if (s.useBaseline === undefined || keepRaw) continue;
    const lookup = createBaselineLookup(s.name, s.scope === undefined ? undefined : entityScope(s.scope, localTypes), () => latest?.state);
    lookups.set(s.name, lookup);
    s.useBaseline(lookup);
  }
  const intake = {
    health,
    localTypes,
    ownership,
    active,
    onInvalid: (record: InvalidRecord) => {
      counters.invalidRecords[record.source] = (counters.invalidRecords[record.source] ?? 0) + 1;
      log.warn('invalid record left out', { source: record.source, reason: record.reason, ...(record.key ? { key: record.key } : {}) });
      invalid.next(record);
    },
    retry,
    keepRaw,
    slice: HUB_SLICES,
    prepare: preparingAsNormalized(() => latest?.state, active),
    scheduler,
    log,
  };
  // Undefined keys take diffAgainstBaseline's defaults.
  const diffOptions: DiffOptions = { tombstoneMs, maxClockSkewMs: options.maxClockSkewMs };
  const entities$ = replayOf(baseline, (item, seq) => commits.tag(item, seq));
  let running: Subscription | undefined;
  /** False once draining: observations that arrive then are left unsettled (a push message is redelivered). */
  // Stryker disable next-line BooleanLiteral: start() sets it before the pipeline that reads it exists
  let taking = true;
  let pipelineError: string | undefined;
  /** Observations of the cluster's mirror: folded into the baseline without events (another instance emitted them). */
  const mirrored = mark<true>('mirrored');
  /** The time of the observation each event came from (a delete's entity carries an older one). */
  const eventTimes = mark<string>('observation time');

  const deliver = (emitted: BaselineStep): void => {
    const observation = emitted.observation;
    const step = observation && mirrored.get(observation) === true ? { ...emitted, events: [] } : emitted;
    if (observation) for (const e of step.events) eventTimes.set(e, observation.at);
    if (observation) counters.observations[observation.source] = (counters.observations[observation.source] ?? 0) + 1;
    if (step.skewedAt !== undefined) {
      const n = ++counters.clockSkewCorrections;
      // A host whose clock is wrong stamps every message: log the 1st, 2nd, 4th, 8th… only.
      if ((n & (n - 1)) === 0) log.warn('observation stamped too far in the future, taken at the local time', { source: observation?.source, stampedAt: step.skewedAt, corrections: n });
    }
    commits.push(step);
  };

  const stop = (): void => {
    running?.unsubscribe();
    running = undefined;
    latest = undefined;
    // The next start's steps start from the hub's state (which may lag this chain): no base is in them.
    for (const lookup of lookups.values()) lookup.reset();
    for (const s of sources) health.set(s.name, { status: 'stopped' });
  };

  return {
    entity$: baseline.event$,
    health$: health.health$,
    invalid$: invalid.asObservable() as Observable<InvalidRecord>,
    start() {
      if (running) return;
      taking = true;
      if (outbox) {
        // Events written before a crash and not known to have reached every sink: at least once.
        const events = commits.reemit(outbox);
        if (events > 0) log.info('state: events emitted again (written before the last stop, not confirmed by every sink)', { events, entries: outbox.length });
        outbox = undefined;
      }
      const mirror$ = options.mirror ? options.mirror.pipe(tap((o) => mirrored.set(o, true))) : EMPTY;
      // Indexed, so a first snapshot is prepared too.
      const seed: BaselineStep = { state: indexedBaseline(baseline.state()), events: [] };
      latest = seed;
      // Big snapshots are read in slices first, so the push path is served meanwhile (hub/slicing.ts).
      running = merge(...sources.map((s) => observationsOf(s, intake).pipe(preparedInSlices(() => (latest ?? seed).state))), mirror$)
        .pipe(
          // Backpressure: snapshots past the store's backlog are left out (hub/commit.ts).
          filter((o) => taking && commits.admits(o)),
          scan((step: BaselineStep, o: Observation) => {
            latest = applyObservation(step.state, o, diffOptions);
            // In the step, before anything else is applied: what the source's next poll keeps against.
            if (o.kind === 'snapshot') lookups.get(o.source)?.applied(latest);
            return latest;
          }, seed),
        )
        .subscribe({
          next: deliver,
          // Unreachable in practice (every source is retried); logged rather than lost.
          error: (error: unknown) => {
            pipelineError = errorMessage(error);
            log.error('pipeline failed', { error: asError(error) });
          },
        });
    },
    stop,
    snapshot: (types) => baseline.snapshot(types),
    entities$,
    register: registerWith({ entities$, bufferSize, counters, log }),
    health: () => health.value(),
    metrics: () => metricsOf(counters, baseline.state(), pipelineError),
    gate: (types) => commits.gate(types),
    observedAt: (event) => eventTimes.get(event),
    async drain() {
      taking = false;
      await commits.idle();
      // Settled acks go out in one macrotask (the AMQP ack batcher); stopping flushes them too.
      await new Promise<void>((resolve) => setImmediate(resolve));
      stop();
    },
    unsettled: () => commits.pending(),
    async close() {
      stop();
      await commits.close();
    },
  };
}
