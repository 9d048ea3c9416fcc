/** The hub's public types: what `createSynchronizer` takes and returns. */
import type { Observable, SchedulerLike, Subscription } from 'rxjs';
import type { InvalidRecord } from '../../operators/normalizeEntity.js';
import type { BackoffOptions } from '../backoff.js';
import type { Logger } from '../log.js';
import type { Entity, EntityAction, EntityEvent, EntityType, Observation } from '../model.js';
import type { Source } from '../source.js';
import type { Gate } from './commit.js';

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
  /** Observations stamped beyond `maxClockSkewMs` ahead, taken at the local time instead (DESIGN rule 8). */
  clockSkewCorrections: number;
  /** Events queued in `register` consumers, not yet handed to their callbacks (sink backlog). */
  backlog: number;
  /** Why the pipeline stopped, if it failed (every source is retried, so it should never be set). */
  pipelineError?: string;
}

export interface SynchronizerOptions {
  sources: readonly Source<unknown>[];
  /** Active entity types (exact, or `family.*`); default: all. Others are dropped at the door. */
  types?: readonly EntityType[];
  /** How long a deleted entity's tombstone holds, ms (default 10 min). */
  tombstoneMs?: number;
  /**
   * How far ahead of the local wall clock an observation may be stamped, ms (default
   * 5 min); one stamped further ahead is taken at the local time and counted in `clockSkewCorrections`.
   */
  maxClockSkewMs?: number;
  /** Events a `register` consumer may have queued before it is resynchronised (default 10,000). */
  bufferSize?: number;
  /** Backoff for a source whose stream errors (default 1 s doubling to 60 s, 20 % jitter). */
  retry?: BackoffOptions;
  /** Keep raw records on entities (memory!). */
  keepRaw?: boolean;
  /**
   * Keep the baseline in an embedded database in this folder (created if missing): loaded before
   * any source runs, written as observations are accepted by every sink (docs/operations.md).
   * Without it the baseline lives in memory only.
   */
  state?: { dir: string };
  scheduler?: SchedulerLike;
  log?: Logger;
  /**
   * Told about every observation once its events were emitted (metrics, progress logs). Runs on
   * the pipeline: keep it cheap; what it throws is logged and ignored. A big snapshot's records
   * that changed nothing are, in its `records`, the entity the baseline held for their key (same
   * type and meaning, the time and source that wrote it): the hub drops them once compared
   * (docs/scale.md, "Fewer survivors"); so are the records a poll's transport kept (src/kept.ts).
   */
  onObserved?: (observation: Observation, events: readonly EntityEvent[]) => void;
  /**
   * Changes folded into the baseline without emitting events: the cluster's mirror of what the
   * other instances emitted (src/cluster/mirror.ts). Settled (acked) like any observation.
   */
  mirror?: Observable<Observation>;
  /**
   * Without `state`, still settle (ack) an observation only once every sink accepted its events
   * (default false: settled once emitted). A cluster sets it: its stream is the output.
   */
  settleAfterSinks?: boolean;
}

export interface RegisterOptions {
  /** Overrides the synchronizer's bufferSize for this consumer. */
  bufferSize?: number;
}

export interface Synchronizer {
  /** Hot: every event once, in order. Subscribers are called synchronously; prefer register() for slow work. */
  readonly entity$: Observable<EntityEvent>;
  /** Per-source health, replayed to new subscribers. */
  readonly health$: Observable<Readonly<Record<string, SourceHealth>>>;
  /** Records left out by normalizeEntity, with the reason. */
  readonly invalid$: Observable<InvalidRecord>;
  /** Subscribes to every source. Idempotent. */
  start(): void;
  /** Unsubscribes from every source (pollers stop, consumers close). The baseline is kept. */
  stop(): void;
  /** Every current entity of `types` (default all). */
  snapshot(types?: readonly EntityType[]): Entity[];
  /** Current state, `synced`, then the changes — no gap, no duplicate. Cold: each subscriber gets its own replay. */
  entities$(types?: readonly EntityType[]): Observable<SyncItem>;
  /**
   * Calls `callback` for every item of `entities$(types)`, asynchronously and one at a time (an
   * async callback is awaited), with a bounded queue: a slow or throwing callback never blocks
   * the pipeline or other consumers. Unsubscribe the returned handle to stop.
   */
  register(types: readonly EntityType[] | undefined, callback: (item: SyncItem) => void | Promise<void>, options?: RegisterOptions): Subscription;
  health(): Readonly<Record<string, SourceHealth>>;
  metrics(): SynchronizerMetrics;
  /**
   * For a sink: a gate through which it says what it has taken over (written, confirmed). With a
   * `state` store an observation is persisted, then settled (its message acked), only once every
   * open gate passed its events. `types` as the sink's own filter.
   */
  gate(types?: readonly EntityType[]): Gate;
  /** ISO time of the observation an event of entity$ came from (for a delete: when it was seen gone); undefined for another object. */
  observedAt(event: EntityEvent): string | undefined;
  /**
   * A graceful stop: takes no more observations, waits until every one already taken is accepted
   * by the sinks, persisted and settled (its message acked), then stops the sources. It waits as
   * long as that takes; give it a deadline with Promise.race.
   */
  drain(): Promise<void>;
  /** Observations taken but not yet settled: their events wait for a sink or for the store. */
  unsettled(): number;
  /** Stops the sources and closes the state store (after its last write). */
  close(): Promise<void>;
}
