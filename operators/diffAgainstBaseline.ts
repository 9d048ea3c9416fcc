import { Map as ImmutableMap } from 'immutable';
import { type OperatorFunction, mergeMap, scan } from 'rxjs';
import { changedFields, entityHash, sameMeaning } from '../src/hash.js';
import { type ChangeObservation, type Entity, type EntityEvent, type EntityType, type Observation, type SnapshotObservation, unreachable } from '../src/model.js';

/** What the baseline knows of one entity. */
export interface BaselineEntry {
  readonly entity: Entity;
  /** Time (epoch ms) of the observation that last wrote this entry. */
  readonly at: number;
  /**
   * Written by a complete snapshot: a later snapshot of its type that holds it unchanged confirms
   * it without rewriting it (its time is then that snapshot's, see `syncedAt`).
   */
  readonly bySnapshot: boolean;
  /** Complete snapshots in a row that did not hold it (deletion hysteresis). */
  readonly misses: number;
}

/** The baseline: an immutable value, safe to hand out. */
export interface BaselineState {
  readonly entities: ImmutableMap<string, BaselineEntry>;
  /** Deleted keys → time (epoch ms) of the deletion, kept for `tombstoneMs`. */
  readonly tombstones: ImmutableMap<string, number>;
  /** Entity type → time (epoch ms) of the last complete snapshot of that type. */
  readonly syncedAt: ImmutableMap<EntityType, number>;
  /** Newest observation time seen, epoch ms; drives tombstone expiry. */
  readonly clock: number;
}

/** One observation applied: the baseline after it, and the events it caused. */
export interface BaselineStep {
  readonly state: BaselineState;
  readonly events: readonly EntityEvent[];
  /** The observation applied (undefined only for the seed). */
  readonly observation?: Observation;
}

export interface DiffOptions {
  /**
   * How long a deleted entity's tombstone stops a late or redelivered older notification from
   * bringing it back, ms (default 10 minutes).
   */
  tombstoneMs?: number;
}

export const DEFAULT_TOMBSTONE_MS = 10 * 60_000;

/** The baseline before any observation. */
export function emptyBaseline(): BaselineState {
  return { entities: ImmutableMap(), tombstones: ImmutableMap(), syncedAt: ImmutableMap(), clock: 0 };
}

function timeOf(observation: Observation): number {
  const t = Date.parse(observation.at);
  if (Number.isNaN(t)) throw new TypeError(`observation from ${observation.source} has an invalid time: ${JSON.stringify(observation.at)}`);
  return t;
}

/** The time of the newest observation that vouches for an entry's state. */
function effectiveAt(state: BaselineState, entry: BaselineEntry): number {
  if (!entry.bySnapshot || entry.misses > 0) return entry.at;
  return Math.max(entry.at, state.syncedAt.get(entry.entity.type) ?? 0);
}

/**
 * An event whose `hash` is computed the first time it is read, then kept: the baseline compares
 * meanings, not hashes, so a consumer that never reads the hash never pays for it. It is an own
 * enumerable property, so JSON, spread and structuredClone see it like any other field.
 */
function event(action: EntityEvent['action'], origin: EntityEvent['origin'], entity: Entity, changed?: string[]): EntityEvent {
  let hash: string | undefined;
  return changed === undefined
    ? {
        action,
        origin,
        entity,
        get hash(): string {
          return (hash ??= entityHash(entity));
        },
      }
    : {
        action,
        origin,
        entity,
        changed,
        get hash(): string {
          return (hash ??= entityHash(entity));
        },
      };
}

function upsertEvent(prev: BaselineEntry | undefined, entity: Entity, origin: EntityEvent['origin']): EntityEvent {
  return prev === undefined ? event('create', origin, entity) : event('update', origin, entity, changedFields(prev.entity, entity));
}

/** Marks, in a snapshot's working map, an entry the snapshot holds (or keeps). */
const SEEN: BaselineEntry = Object.freeze({ entity: undefined as unknown as Entity, at: 0, bySnapshot: false, misses: 0 });

function applySnapshot(state: BaselineState, snapshot: SnapshotObservation, at: number): BaselineStep {
  const events: EntityEvent[] = [];
  const types = new Set<EntityType>(snapshot.types);
  const missesBeforeDelete = Math.max(1, snapshot.missesBeforeDelete ?? 1);
  // The baseline's entries of the snapshot's types, in a plain Map: one pass over the baseline
  // instead of a persistent-map lookup per record (the hot path of every poll). Entries the
  // snapshot holds are marked SEEN; the others are what it lacks.
  const previous = new Map<string, BaselineEntry>();
  state.entities.forEach((entry, key) => {
    if (types.has(entry.entity.type)) previous.set(key, entry);
  });
  for (const key of snapshot.keep ?? []) previous.set(key, SEEN);
  let tombstones = state.tombstones;
  const entities = state.entities.withMutations((map) => {
    for (const entity of snapshot.records) {
      const key = entity.key;
      let prev = previous.size > 0 ? previous.get(key) : undefined;
      if (prev === SEEN) prev = map.get(key); // the same key twice in one snapshot: the last one wins
      else if (prev !== undefined) previous.set(key, SEEN);
      if (prev === undefined && tombstones.size > 0) {
        const deletedAt = tombstones.get(key);
        if (deletedAt !== undefined) {
          // Deleted after this snapshot's request started: the snapshot is older news (rule 4).
          if (deletedAt > at) continue;
          tombstones = tombstones.delete(key);
        }
      }
      if (prev !== undefined) {
        // Changed by a notification after this snapshot's request started (rule 4).
        if (effectiveAt(state, prev) > at) continue;
        if (sameMeaning(prev.entity, entity)) {
          // Unchanged: syncedAt confirms it, unless a notification or a miss wrote it last.
          if (!prev.bySnapshot || prev.misses > 0) map.set(key, { ...prev, at, bySnapshot: true, misses: 0 });
          continue;
        }
      }
      const size = map.size;
      map.set(key, { entity, at, bySnapshot: true, misses: 0 });
      if (prev === undefined && map.size === size) {
        // Created earlier in this same snapshot (a page repeated a record): one create, the last state.
        const i = events.findLastIndex((e) => e.entity.key === key);
        events[i] = event('create', 'snapshot', entity);
        continue;
      }
      events.push(upsertEvent(prev, entity, 'snapshot'));
    }
    // Complete for its types (rules 2 and 5): whatever of those types it lacks is gone.
    for (const [key, entry] of previous) {
      if (entry === SEEN || effectiveAt(state, entry) > at) continue;
      const misses = entry.misses + 1;
      if (misses < missesBeforeDelete) {
        map.set(key, { ...entry, misses });
        continue;
      }
      map.delete(key);
      tombstones = tombstones.set(key, at);
      events.push(event('delete', 'snapshot', entry.entity));
    }
  });
  const syncedAt = state.syncedAt.withMutations((m) => {
    for (const type of types) m.set(type, Math.max(at, m.get(type) ?? 0));
  });
  return { state: { entities, tombstones, syncedAt, clock: state.clock }, events, observation: snapshot };
}

function applyUpsert(state: BaselineState, change: ChangeObservation, at: number, prev: BaselineEntry | undefined): BaselineStep {
  const entity = change.record;
  const key = entity.key;
  const deletedAt = state.tombstones.get(key);
  // Deleted at or after this notification was stamped: a late or redelivered message.
  if (deletedAt !== undefined && deletedAt >= at) return { state, events: [], observation: change };
  const tombstones = deletedAt === undefined ? state.tombstones : state.tombstones.delete(key);
  if (prev !== undefined && sameMeaning(prev.entity, entity)) {
    const entities = state.entities.set(key, { entity: prev.entity, at, bySnapshot: false, misses: 0 });
    return { state: { entities, tombstones, syncedAt: state.syncedAt, clock: state.clock }, events: [], observation: change };
  }
  const entities = state.entities.set(key, { entity, at, bySnapshot: false, misses: 0 });
  return { state: { entities, tombstones, syncedAt: state.syncedAt, clock: state.clock }, events: [upsertEvent(prev, entity, 'notification')], observation: change };
}

function applyDelete(state: BaselineState, change: ChangeObservation, at: number, prev: BaselineEntry | undefined): BaselineStep {
  const key = change.record.key;
  // Remember the deletion even for an unknown entity: a create that arrives late stays out.
  const tombstones = state.tombstones.set(key, Math.max(at, state.tombstones.get(key) ?? 0));
  if (prev === undefined) return { state: { ...state, tombstones }, events: [], observation: change };
  const events: EntityEvent[] = [event('delete', 'notification', prev.entity)];
  return { state: { ...state, entities: state.entities.delete(key), tombstones }, events, observation: change };
}

function applyChange(state: BaselineState, change: ChangeObservation, at: number): BaselineStep {
  const prev = state.entities.get(change.record.key);
  // Older than what the baseline already holds: never overrides it (rule 4).
  if (prev !== undefined && effectiveAt(state, prev) > at) return { state, events: [], observation: change };
  // A switch, not ts-pattern, on this per-message path: it costs nothing and `never` keeps it exhaustive.
  switch (change.action) {
    case 'upsert':
      return applyUpsert(state, change, at, prev);
    case 'delete':
      return applyDelete(state, change, at, prev);
    default:
      return unreachable(change.action, 'change action');
  }
}

/** Drops tombstones older than the window, at most about ten times per window. */
function expireTombstones(state: BaselineState, at: number, tombstoneMs: number): BaselineState {
  const clock = Math.max(state.clock, at);
  if (clock === state.clock) return state;
  const step = Math.max(1, Math.floor(tombstoneMs / 10));
  if (Math.floor(clock / step) === Math.floor(state.clock / step) || state.tombstones.size === 0) return { ...state, clock };
  const horizon = clock - tombstoneMs;
  return { ...state, clock, tombstones: state.tombstones.filter((deletedAt) => deletedAt >= horizon) };
}

/**
 * The baseline's reducer: the state after `observation`, with the events it causes.
 * Pure: the previous state is left as it was.
 */
export function applyObservation(state: BaselineState, observation: Observation, options: DiffOptions = {}): BaselineStep {
  const at = timeOf(observation);
  const current = expireTombstones(state, at, options.tombstoneMs ?? DEFAULT_TOMBSTONE_MS);
  switch (observation.kind) {
    case 'snapshot':
      return applySnapshot(current, observation, at);
    case 'change':
      return applyChange(current, observation, at);
    default:
      return unreachable(observation, 'observation');
  }
}

/**
 * The baseline as a stream of states: a `scan` of {@link applyObservation}. Each state is an
 * immutable value (hand it out freely) with the events its observation caused.
 *
 * ```
 * source:  --s1------c1------s2--|
 * result:  --S1------S2------S3--|    (Sn.events: the events of that step)
 * ```
 */
export function baselineSteps(options: DiffOptions = {}, seed: BaselineState = emptyBaseline()): OperatorFunction<Observation, BaselineStep> {
  return scan((step: BaselineStep, observation: Observation) => applyObservation(step.state, observation, options), { state: seed, events: [] });
}

/**
 * Compares every observation with the baseline of what was seen before and emits whole entities
 * that are new, changed or gone — never field deltas.
 *
 * ```
 * source:  --s{a,b}----s{a,b'}----c(del a)----s{b'}--|
 * result:  --(AB)------B'---------A-----------------|
 *            create    update     delete      (nothing: unchanged)
 * ```
 *
 * 1. The hash covers the entity's meaning (type, id, name, state, project, parents, children,
 *    attributes), not observedAt, source or raw: equal meaning ⇒ equal hash, no event.
 * 2. A snapshot is complete for its `types`: baseline entities of those types it lacks are
 *    deleted (after `missesBeforeDelete` snapshots in a row). Other types are left alone.
 * 3. A change upserts or deletes one entity.
 * 4. An older observation never overrides a newer one: a snapshot started before a notification
 *    that changed an entity leaves that entity alone, and a deleted entity keeps a tombstone for
 *    `tombstoneMs` so a late or redelivered older notification cannot bring it back.
 * 5. Update events list the `changed` fields; delete events carry the last known entity. Each
 *    event's `hash` (entityHash of its entity) is computed when first read.
 * 6. Completes and errors with the source.
 *
 * @example
 * ```ts
 * merge(nova$, bus$).pipe(diffAgainstBaseline({ tombstoneMs: 600_000 })).subscribe((e) => console.log(e.action, e.entity.key));
 * ```
 */
export function diffAgainstBaseline(options: DiffOptions = {}): OperatorFunction<Observation, EntityEvent> {
  return (source$) => source$.pipe(baselineSteps(options), mergeMap((step) => step.events));
}
