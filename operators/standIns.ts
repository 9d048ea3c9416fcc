/**
 * Stand-ins: slots of a snapshot's `records` that hold the baseline's entity in place of a record.
 *
 * A big snapshot's records mostly describe entities as the baseline already holds them (at 1 %
 * churn, 99 % are no-ops the moment they are compared). Such a slot may hold the baseline's
 * entity of the same key and meaning (rule 1: type, id, scope, name, state, project, parents,
 * children, attributes), an object that lives anyway, standing in for the record it replaces:
 * that record is the entity's fields with the snapshot's `observedAt` (its `at`) and `source`, in
 * normalizeEntity's order, and no other field (`raw` included). Two ways put one there:
 *
 * - the preparation drops a record it finds to be a no-op when it can make it again exactly
 *   ({@link droppable}; docs/scale.md, "Fewer survivors"): kept until the step, each record is
 *   an object graph that survives scavenges, is copied, promoted and then marked;
 * - normalizeEntity puts the entity a poll's transport kept (src/kept.ts) there: the record
 *   mapping the element would give is that entity so restamped (the hub vouched for its meaning,
 *   src/hub/kept.ts).
 *
 * Whatever writes the record (an entry, an event) gets it made again ({@link recordAt}); a
 * comparison of meaning may read the slot as it is. Anything else that reads the snapshot's
 * records (onObserved) finds the baseline's entity of the same key, type and meaning there.
 */
import type { Entity, SnapshotObservation } from '../src/model.js';

/** The fields of an entity as normalizeEntity makes it, in its order: the only records stood in for. */
const ENTITY_FIELDS = ['key', 'type', 'id', 'scope', 'name', 'state', 'project', 'parents', 'children', 'observedAt', 'source', 'attributes'] as const;

/** Which slots of one records array hold stand-ins, and what their records had of their snapshot. */
export interface StandIns {
  /** 1 where the slot holds the baseline's entity in place of the record. */
  bits: Uint8Array;
  readonly at: string;
  readonly source: string;
}

/** Per records array, which copies of an observation share. */
const standIns = new WeakMap<readonly Entity[], StandIns>();

/** The bits of a records array before its first stand-in: {@link standIn} grows them to its slot. */
const NO_BITS = new Uint8Array(0);

/** The stand-ins of `records`, if it has any. */
export function standInsOf(records: readonly Entity[]): StandIns | undefined {
  return standIns.get(records);
}

/** Whether `entity` could be made again from an entity of the same meaning and its snapshot. */
export function droppable(entity: Entity, snapshot: SnapshotObservation): boolean {
  if (entity.observedAt !== snapshot.at || entity.source !== snapshot.source) return false;
  let i = 0;
  for (const name in entity) {
    if (name !== ENTITY_FIELDS[i]) return false;
    i++;
  }
  // Stryker disable next-line ConditionalExpression: a record that is an Entity lacks none of them (the last, attributes, is required)
  return i === ENTITY_FIELDS.length;
}

/**
 * Puts `held`, an entity of the same meaning as record i of a snapshot stamped `at` by `source`,
 * in record i's slot (`records[i]`, which may be one past the end: then appended).
 */
export function standIn(records: Entity[], i: number, held: Entity, at: string, source: string): void {
  let d = standIns.get(records);
  if (d === undefined) standIns.set(records, (d = { bits: NO_BITS, at, source }));
  // Sized for a records array still growing (normalizeEntity appends): grown by doubling.
  if (i >= d.bits.length) d.bits = grown(d.bits, Math.max(records.length, i + 1));
  d.bits[i] = 1;
  records[i] = held;
}

/** A copy of `bits` with room for `n`. */
export function grown(bits: Uint8Array, n: number): Uint8Array {
  // Stryker disable next-line ArithmeticOperator: the doubling only spares copies as a records array grows (time); there is room for n either way
  const more = new Uint8Array(Math.max(n, bits.length * 2));
  more.set(bits);
  return more;
}

/** Whether slot i of records with stand-ins `d` holds one. */
export function standsIn(d: StandIns | undefined, i: number): boolean {
  return d !== undefined && d.bits[i] === 1;
}

/** Record i of `snapshot` as it was given (made again for a stand-in: normalizeEntity's literal, its order). */
export function recordAt(snapshot: SnapshotObservation, i: number, d: StandIns | undefined = standIns.get(snapshot.records)): Entity {
  const r = snapshot.records[i]!;
  if (d === undefined || d.bits[i] !== 1) return r;
  return {
    key: r.key,
    type: r.type,
    id: r.id,
    scope: r.scope,
    name: r.name,
    state: r.state,
    project: r.project,
    parents: r.parents,
    children: r.children,
    observedAt: d.at,
    source: d.source,
    attributes: r.attributes,
  };
}

/** Every record of `snapshot` as it was given. */
export function recordsOf(snapshot: SnapshotObservation): Entity[] {
  const d = standIns.get(snapshot.records);
  return d === undefined ? snapshot.records : snapshot.records.map((_, i) => recordAt(snapshot, i, d));
}

/** The records of `snapshot` that `keep` keeps, in a new array, its stand-ins still standing in. */
export function recordsWhere(snapshot: SnapshotObservation, keep: (record: Entity) => boolean): Entity[] {
  const d = standIns.get(snapshot.records);
  const out: Entity[] = [];
  snapshot.records.forEach((r, i) => {
    if (!keep(r)) return;
    if (d !== undefined && d.bits[i] === 1) standIn(out, out.length, r, d.at, d.source);
    else out.push(r);
  });
  return out;
}
