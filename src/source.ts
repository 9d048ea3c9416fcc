import type { Observable, SchedulerLike } from 'rxjs';
import type { BaselineLookup, Kept } from './kept.js';
import type { EntityDraft, EntityType, Observation, SnapshotObservation } from './model.js';
import type { Logger } from './log.js';
import type { OptionReader } from './options.js';

/** A source's own word on how it is doing; the hub turns these into per-source health. */
export interface HealthSignal {
  kind: 'health';
  status: 'up' | 'down';
  /**
   * For `down`: what failed, with enough context to act on (URL, status, field…). An Error keeps
   * its stack for the log at debug; /health shows its message.
   */
  error?: string | Error;
  /** For `down`: the ms until the next attempt. */
  retryInMs?: number;
}

/**
 * What a source's stream carries: observations of raw records, and health. A poll's snapshot may
 * hold entities its transport kept (src/kept.ts) among its raw records.
 */
export type SourceSignal<R> = Observation<R> | SnapshotObservation<R | Kept> | HealthSignal;

/** What raw records become: one entity, several, or none (a record the source ignores on purpose). */
export type EntityMapping<R> = (record: R) => EntityDraft | readonly EntityDraft[] | undefined;

/**
 * A running source: a cold stream of raw observations (subscribing starts it, unsubscribing stops
 * it and releases everything) and the mapping that turns each raw record into entities.
 */
export interface Source<R = unknown> {
  /** Unique name; becomes Entity.source. */
  name: string;
  /** Entity types it produces. */
  types: readonly EntityType[];
  /**
   * The cloud or region it sees (config `scope`): its entities carry it, ids of local types are
   * qualified by it, its snapshots are complete only within it (src/scope.ts).
   */
  scope?: string | undefined;
  /** Types of its own whose ids are unique only within a scope, beyond src/scope.ts's LOCAL_TYPES. */
  localTypes?: readonly EntityType[] | undefined;
  signal$: Observable<SourceSignal<R>>;
  map: EntityMapping<R>;
  /**
   * Called by the hub before it subscribes, for a source whose polls can keep unchanged records
   * (src/kept.ts): what to ask the baseline. A source without it reads every record in full.
   */
  useBaseline?(lookup: BaselineLookup): void;
}

/** What a source is given when it is created. */
export interface SourceContext {
  /** The source instance's name (config `name`). */
  name: string;
  /** Its config `scope`, if any (the hub applies it; a source rarely needs it). */
  scope?: string | undefined;
  /** Time source of polling, timeouts and backoff; virtual in marble tests. */
  scheduler: SchedulerLike;
  log: Logger;
  /** Folder relative paths in the source's options are resolved against. */
  configDir: string;
}

/**
 * A source plugin: what `use:` names in the config. Built-in sources and modules loaded by path
 * (their default export) implement the same contract.
 */
export interface SourcePlugin<O = unknown> {
  /** Reads and checks the source's options; reports a bad field with its config path. */
  options(read: OptionReader): O;
  create(options: O, context: SourceContext): Source<unknown>;
}

/** Identity helper that gives a plugin its types. */
export function defineSource<O, R>(plugin: {
  options(read: OptionReader): O;
  create(options: O, context: SourceContext): Source<R>;
}): SourcePlugin<O> {
  return plugin as SourcePlugin<O>;
}
