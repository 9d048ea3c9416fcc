import { type Observable, Subject, type Subscription, asyncScheduler, merge, scan } from 'rxjs';
import { type BaselineStep, applyObservation } from '../operators/diffAgainstBaseline.js';
import type { InvalidRecord } from '../operators/normalizeEntity.js';
import { typeMatcher } from '../operators/ofType.js';
import { errorMessage, silentLogger } from './log.js';
import type { Observation } from './model.js';
import { createHubBaseline } from './hub/baseline.js';
import { createHealthBoard } from './hub/health.js';
import { observationsOf } from './hub/intake.js';
import { createCounters, metricsOf } from './hub/metrics.js';
import { createOwnership } from './hub/ownership.js';
import { registerWith } from './hub/register.js';
import { replayOf } from './hub/replay.js';
import type { Synchronizer, SynchronizerOptions } from './hub/types.js';

export type { RegisterOptions, SourceHealth, SyncItem, Synchronizer, SynchronizerMetrics, SynchronizerOptions } from './hub/types.js';

/**
 * The hub: merges every source through normalizeEntity into one baseline (diffAgainstBaseline's
 * reducer) and hands the events to consumers. Its parts, in the order data flows through them:
 * intake (one source's observations: retry, normalize, active types, ownership), the baseline
 * (reducer steps and the hot event stream), replay (`entities$`), register (queued consumers);
 * health and metrics on the side.
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
  const now = (): string => new Date(scheduler.now()).toISOString();
  const health = createHealthBoard([...names], now, log);
  const counters = createCounters();
  const invalid = new Subject<InvalidRecord>();
  const baseline = createHubBaseline();
  const ownership = createOwnership((o, error) => {
    health.signal(o.source, { kind: 'health', status: 'down', error });
    o.settle?.({ ok: false, reason: error });
  });
  const intake = {
    health,
    ownership,
    active: typeMatcher(options.types),
    onInvalid: (record: InvalidRecord) => {
      counters.invalidRecords[record.source] = (counters.invalidRecords[record.source] ?? 0) + 1;
      log.warn('invalid record left out', { source: record.source, reason: record.reason, ...(record.key ? { key: record.key } : {}) });
      invalid.next(record);
    },
    retry,
    keepRaw,
    scheduler,
    log,
  };
  const diffOptions = tombstoneMs === undefined ? {} : { tombstoneMs };
  const entities$ = replayOf(baseline);
  let running: Subscription | undefined;

  const deliver = (step: BaselineStep): void => {
    const observation = step.observation;
    if (observation) counters.observations[observation.source] = (counters.observations[observation.source] ?? 0) + 1;
    baseline.apply(step, (event) => (counters.events[event.action] += 1));
    observation?.settle?.({ ok: true });
  };

  return {
    entity$: baseline.event$,
    health$: health.health$,
    invalid$: invalid.asObservable() as Observable<InvalidRecord>,
    start() {
      if (running) return;
      running = merge(...sources.map((s) => observationsOf(s, intake)))
        .pipe(scan((step: BaselineStep, o: Observation) => applyObservation(step.state, o, diffOptions), { state: baseline.state(), events: [] }))
        .subscribe({
          next: deliver,
          // Unreachable in practice (every source is retried); logged rather than lost.
          error: (error: unknown) => log.error('pipeline failed', { error: errorMessage(error) }),
        });
    },
    stop() {
      running?.unsubscribe();
      running = undefined;
      for (const s of sources) health.set(s.name, { status: 'stopped' });
    },
    snapshot: (types) => baseline.snapshot(types),
    entities$,
    register: registerWith({ entities$, bufferSize, counters, log }),
    health: () => health.value(),
    metrics: () => metricsOf(counters, baseline.state()),
  };
}
