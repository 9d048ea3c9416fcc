/**
 * The entity model every part of the synchronizer speaks (DESIGN.md, "Core types").
 */
import type { Observable } from 'rxjs';

/** Dotted entity type: `nova.instance`, `neutron.port`, `nagios.service`, … */
export type EntityType = string;

/** A reference from one entity to another, by type and id. */
export interface EntityRef {
  type: EntityType;
  id: string;
}

/** One entity as the synchronizer currently knows it: always whole, never a delta. */
export interface Entity {
  /** `${type}:${id}`, unique within the synchronizer. */
  key: string;
  type: EntityType;
  /** Qualified as `<scope>/<id>` when its type's ids are unique only within a scope (src/scope.ts). */
  id: string;
  /** The cloud or region of the source that saw it (its `scope`); absent for an unscoped source. */
  scope?: string | undefined;
  name?: string;
  /** Normalized, upper case: ACTIVE, SHUTOFF, ERROR, DOWN, OK, CRITICAL… */
  state: string;
  /** Owning project / tenant. */
  project?: string;
  /**
   * instance → host, port → network, volume → instance … An entity is a value the baseline shares
   * with every consumer: read it, never change it (an empty list is one shared, frozen array).
   */
  parents: EntityRef[];
  children: EntityRef[];
  /** ISO time of the observation this state comes from. */
  observedAt: string;
  /** Name of the source instance that saw it. */
  source: string;
  /** The few extra fields a consumer needs, normalized. */
  attributes: Record<string, unknown>;
  /** The original record, only when the source keeps it. */
  raw?: unknown;
}

/**
 * What a source's mapping returns for one raw record: an entity without the fields the pipeline
 * fills in (key, observedAt, source). For a delete, only `type` and `id` are needed.
 */
export interface EntityDraft {
  type: EntityType;
  id: string;
  name?: string | undefined;
  state?: string | undefined;
  project?: string | undefined;
  parents?: EntityRef[] | undefined;
  children?: EntityRef[] | undefined;
  attributes?: Record<string, unknown> | undefined;
  raw?: unknown;
}

/** How an observation ended: passed through the pipeline, or refused with a reason. */
export type Settlement = { ok: true } | { ok: false; reason: string };

/** Fields common to both kinds of observation. */
interface ObservationBase {
  /** Name of the source instance. */
  source: string;
  /**
   * ISO time the observation describes: for a poll, when its request *started*; for a
   * notification, the time the service stamped on it.
   */
  at: string;
  /**
   * Called once the observation has gone through the baseline and its events (if any) reached
   * entity$'s subscribers (`ok: true`), or when it could not be mapped (`ok: false` with the
   * reason). Push sources ack, or set aside, their message here.
   */
  settle?: (outcome: Settlement) => void;
  /**
   * When the message that carried it reached this process ({@link receivedNow}: epoch ms with
   * sub-millisecond precision), set by the push transports (an AMQP delivery, an HTTP push). With
   * `at`, the sender's time, it splits a change's delay in two: before it arrived (the sender,
   * the broker, the network) and the synchronizer's own part, arrival to emission
   * (`synchronizer_delivery_to_emit_seconds`). Polls leave it out.
   */
  receivedAt?: number | undefined;
}

/**
 * Now, as {@link ObservationBase.receivedAt} counts it: epoch ms with sub-millisecond precision
 * (the process's monotonic clock from its start, so a wall clock set meanwhile does not move it).
 */
export function receivedNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A complete view of every entity of `types` that the source can see. Anything of those types
 * missing from it is gone (after `missesBeforeDelete` complete snapshots in a row).
 */
export interface SnapshotObservation<R = Entity> extends ObservationBase {
  kind: 'snapshot';
  types: EntityType[];
  /** Complete only within this scope: entities of `types` in other scopes are left alone. */
  scope?: string | undefined;
  records: R[];
  /**
   * The rest of the records, handed over while the poll still reads them (pollSnapshots'
   * `deliver`: a big collection page by page, so its records are normalized and compared while
   * young instead of living until the last page). The snapshot's records are `records` followed
   * by every piece, in order, and it is complete only when this completes (`read` is set by
   * then); one whose pages error never happened (rule 2): nothing of it is stepped or kept.
   * Read once, by normalizeEntity, which emits the snapshot whole; absent, `records` is all.
   */
  pages?: Observable<readonly R[]>;
  /**
   * The poll attempt that made it (src/kept.ts `nextGeneration`), when its source was lent the
   * baseline: the hub notes which one it applied, and what the parse worker remembered of it is
   * what the next poll's unchanged records are kept against.
   */
  generation?: number;
  /** Deletion hysteresis: delete only after this many complete snapshots missed it (default 1). */
  missesBeforeDelete?: number;
  /**
   * Keys that were in the snapshot but could not be mapped (reported as invalid): they are not
   * treated as missing, so a bad record never deletes what it describes.
   */
  keep?: string[];
  /** What the poll read to make it, when its source counts that (every HTTP poll source does). */
  read?: ReadStats;
}

/** What one successful poll read: the progress logs and the first-snapshot line show it. */
export interface ReadStats {
  /** Responses received (pages). */
  pages: number;
  /** Their body bytes. */
  bytes: number;
  /** From the poll's start until its last record was read, ms. */
  readMs: number;
}

/** One change: an entity upserted or deleted. */
export interface ChangeObservation<R = Entity> extends ObservationBase {
  kind: 'change';
  action: 'upsert' | 'delete';
  record: R;
}

/**
 * A partial observation of one entity: only the fields it carries (Aodh's `alarm.state_transition`
 * says the new state, not the alarm). Applied onto the entity the baseline holds; one the baseline
 * does not hold makes no event (it waits for the next complete observation, e.g. a poll).
 */
export interface PatchObservation<R = EntityPatch> extends ObservationBase {
  kind: 'patch';
  record: R;
}

/**
 * What a patch sets, normalized: the fields present replace the entity's; `attributes` are set
 * name by name (an `undefined` value removes that attribute), the others stay as they were.
 */
export interface EntityPatch {
  key: string;
  type: EntityType;
  id: string;
  scope?: string | undefined;
  name?: string | undefined;
  state?: string | undefined;
  project?: string | undefined;
  parents?: EntityRef[] | undefined;
  children?: EntityRef[] | undefined;
  attributes?: Record<string, unknown> | undefined;
  observedAt: string;
  source: string;
  raw?: unknown;
}

/** The record type of a patch: raw before normalizeEntity, {@link EntityPatch} after. */
type PatchRecord<R> = [R] extends [Entity] ? EntityPatch : R;

/** What a source emits; `R` is its raw record type before normalizeEntity, `Entity` after. */
export type Observation<R = Entity> = SnapshotObservation<R> | ChangeObservation<R> | PatchObservation<PatchRecord<R>>;

export type EntityAction = 'create' | 'update' | 'delete';
export type EventOrigin = 'snapshot' | 'notification';

/** What consumers receive: a whole entity that appeared, changed or disappeared. */
export interface EntityEvent {
  action: EntityAction;
  origin: EventOrigin;
  /** For delete: the last known state. */
  entity: Entity;
  /** For update: the entity fields whose value differs (`attributes.<name>` for attributes). */
  changed?: string[];
  hash: string;
}

/** `${type}:${id}` */
export function entityKey(type: EntityType, id: string): string {
  return `${type}:${id}`;
}

/** Shorthand for building references in source mappings. */
export function ref(type: EntityType, id: string): EntityRef {
  return { type, id };
}

/**
 * For the `default:` of a switch over a union: the call only compiles when every member was
 * handled (the value is `never`), so a new variant that is not handled fails to compile.
 */
export function unreachable(value: never, what: string): never {
  throw new Error(`unhandled ${what}: ${JSON.stringify(value)}`);
}
