/**
 * A reference model of the baseline (DESIGN.md, rules 1–5 and 8), written to be read, not to be
 * fast: plain Maps, a plain loop per rule, its own meaning text and its own field comparison. It
 * imports nothing from the implementation (only its types), so a bug in operators/ or src/hash.ts
 * cannot hide by being shared with the model. test/unit/baseline-model.property.test.ts drives
 * both with the same random observations and compares every event and the final state.
 *
 * Where the implementation made a choice the rules leave open, the model states it as a rule of
 * its own (marked "Choice:"), so a change of behaviour shows up as a difference, not as silence.
 */
import type { Entity, EntityPatch, EntityRef, Observation } from '../../src/model.js';

export interface ModelOptions {
  /** How long a tombstone holds, ms. Default: ten minutes. */
  tombstoneMs?: number;
  /** How far ahead of the local clock an observation may be stamped, ms. Default: five minutes. */
  maxClockSkewMs?: number;
  /** The local clock, epoch ms. */
  now: () => number;
}

export interface ModelEvent {
  action: 'create' | 'update' | 'delete';
  origin: 'snapshot' | 'notification';
  entity: Entity;
  changed?: string[];
}

interface Known {
  entity: Entity;
  /** When the observation that wrote it was made. */
  writtenAt: number;
  /** Written by a snapshot that held it (rather than a notification). */
  bySnapshot: boolean;
  /** Complete snapshots in a row that lacked it. */
  misses: number;
}

const TEN_MINUTES = 600_000;
const FIVE_MINUTES = 300_000;

// ——— Rule 1: meaning ———

/** Any JSON-like value as text with object keys sorted; `undefined` members are left out. */
function sortedText(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return '[' + value.map((v) => (v === undefined ? 'null' : sortedText(v))).join(',') + ']';
  const keys = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + sortedText((value as Record<string, unknown>)[k])).join(',') + '}';
}

function refsText(refs: readonly EntityRef[]): string {
  return JSON.stringify(refs.map((r) => [r.type, r.id]));
}

/**
 * What an entity means: every field but key (derived), observedAt, source and raw. Two entities
 * mean the same exactly when these texts are equal.
 */
export function meaningOf(e: Entity): string {
  return JSON.stringify({
    type: e.type,
    id: e.id,
    // Only when set, so an unscoped meaning is the text it always was.
    ...(e.scope === undefined ? {} : { scope: e.scope }),
    name: e.name === undefined ? null : ['name', e.name],
    state: e.state,
    project: e.project === undefined ? null : ['project', e.project],
    parents: refsText(e.parents),
    children: refsText(e.children),
    attributes: sortedText(e.attributes),
  });
}

/** The fields whose value differs, in the contract's order; attributes one by one, by name. */
function changedFieldsOf(before: Entity, after: Entity): string[] {
  const changed: string[] = [];
  if (before.scope !== after.scope) changed.push('scope');
  if (before.name !== after.name) changed.push('name');
  if (before.state !== after.state) changed.push('state');
  if (before.project !== after.project) changed.push('project');
  if (refsText(before.parents) !== refsText(after.parents)) changed.push('parents');
  if (refsText(before.children) !== refsText(after.children)) changed.push('children');
  const names = new Set([...Object.keys(before.attributes), ...Object.keys(after.attributes)]);
  for (const name of [...names].sort()) {
    if (sortedText(before.attributes[name]) !== sortedText(after.attributes[name])) changed.push(`attributes.${name}`);
  }
  return changed;
}

/** How syncedAt names a type within a scope. */
function typeIn(type: string, scope: string | undefined): string {
  return scope === undefined ? type : `${scope}/${type}`;
}

// ——— The model ———

export class BaselineModel {
  readonly entities = new Map<string, Known>();
  /** Deleted key → when it was deleted. */
  readonly tombstones = new Map<string, number>();
  /** Entity type and scope (`type` alone, or `scope/type`) → time of the newest complete snapshot of it. */
  readonly syncedAt = new Map<string, number>();
  /** The newest observation time seen. */
  clock = 0;
  /** Observations whose time was replaced by the local clock (rule 8). */
  clockSkewCorrections = 0;

  constructor(private readonly options: ModelOptions) {}

  private get tombstoneMs(): number {
    return this.options.tombstoneMs ?? TEN_MINUTES;
  }

  /**
   * Rule 4's "newer": the time that vouches for what the baseline holds. A snapshot-written entry
   * that the latest snapshots kept holding is vouched for by the newest of them.
   */
  private vouchedAt(known: Known, syncedAt: ReadonlyMap<string, number>): number {
    if (known.bySnapshot && known.misses === 0) return Math.max(known.writtenAt, syncedAt.get(typeIn(known.entity.type, known.entity.scope)) ?? 0);
    return known.writtenAt;
  }

  apply(observation: Observation): ModelEvent[] {
    // Rule 8: a time too far ahead of the local clock is replaced by the local clock.
    let at = Date.parse(observation.at);
    const local = this.options.now();
    const limit = local + (this.options.maxClockSkewMs ?? FIVE_MINUTES);
    let stampOf = (e: Entity): Entity => e;
    if (at > limit) {
      at = local;
      this.clockSkewCorrections += 1;
      const stamp = new Date(local).toISOString();
      stampOf = (e) => (Date.parse(e.observedAt) > limit ? { ...e, observedAt: stamp } : e);
    }
    this.sweepTombstones(at);
    if (observation.kind === 'snapshot') {
      return this.applySnapshot(observation.records.map(stampOf), observation.types, observation.scope, at, observation.missesBeforeDelete, observation.keep ?? []);
    }
    if (observation.kind === 'patch') {
      const patch = observation.record;
      return this.applyPatch(Date.parse(patch.observedAt) > limit ? { ...patch, observedAt: new Date(local).toISOString() } : patch, at);
    }
    const entity = stampOf(observation.record);
    return observation.action === 'upsert' ? this.applyUpsert(entity, at) : this.applyDelete(entity, at);
  }

  /**
   * Rule 4's window: tombstones older than the window are forgotten. Choice: the clock only moves
   * forward, and a tombstone is forgotten at the first observation that finds it older than the
   * window, before that observation is applied (a tombstone exactly as old as the window holds).
   */
  private sweepTombstones(at: number): void {
    this.clock = Math.max(this.clock, at);
    for (const [key, deletedAt] of [...this.tombstones]) {
      if (deletedAt < this.clock - this.tombstoneMs) this.tombstones.delete(key);
    }
  }

  /** Rules 2, 4 and 5; a snapshot is complete for its types within its scope only. */
  private applySnapshot(records: Entity[], types: string[], scope: string | undefined, at: number, missesBeforeDelete: number | undefined, keep: string[]): ModelEvent[] {
    const events: ModelEvent[] = [];
    // Rule 4 compares with what vouched for each entry before this snapshot.
    const syncedBefore = new Map(this.syncedAt);
    const held = new Set<string>(keep.filter((key) => this.entities.has(key)));
    const createdHere = new Set<string>();
    for (const entity of records) {
      const key = entity.key;
      if (createdHere.has(key)) {
        // Choice: a record repeated in one snapshot (a page that shifted) that this snapshot
        // created makes one create, with its last state.
        this.entities.set(key, { entity, writtenAt: at, bySnapshot: true, misses: 0 });
        const i = events.findIndex((e) => e.entity.key === key);
        events[i] = { action: 'create', origin: 'snapshot', entity };
        continue;
      }
      const known = this.entities.get(key);
      if (known !== undefined) held.add(key);
      else {
        const deletedAt = this.tombstones.get(key);
        // Deleted after this snapshot's request started: old news. Choice: a deletion at the same
        // instant as the snapshot does not hold it back.
        if (deletedAt !== undefined && deletedAt > at) continue;
        this.tombstones.delete(key);
      }
      if (known !== undefined) {
        if (this.vouchedAt(known, syncedBefore) > at) continue; // changed since the request started
        if (meaningOf(known.entity) === meaningOf(entity)) {
          // Unchanged: the snapshot vouches for it now (the entity itself is kept as it was).
          this.entities.set(key, { entity: known.entity, writtenAt: known.bySnapshot && known.misses === 0 ? known.writtenAt : at, bySnapshot: true, misses: 0 });
          continue;
        }
      }
      this.entities.set(key, { entity, writtenAt: at, bySnapshot: true, misses: 0 });
      if (known === undefined) {
        createdHere.add(key);
        held.add(key);
        events.push({ action: 'create', origin: 'snapshot', entity });
      } else {
        events.push({ action: 'update', origin: 'snapshot', entity, changed: changedFieldsOf(known.entity, entity) });
      }
    }
    // Rule 2: complete for its types — what it lacks is missing, unless something newer than the
    // snapshot vouches for it; rule 5: deleted only after N misses in a row. In key order.
    const needed = Math.max(1, missesBeforeDelete ?? 1);
    const lacking = [...this.entities.keys()]
      .filter((key) => !held.has(key))
      .filter((key) => {
        const known = this.entities.get(key)!;
        return types.includes(known.entity.type) && known.entity.scope === scope && this.vouchedAt(known, syncedBefore) <= at;
      })
      .sort();
    for (const key of lacking) {
      const known = this.entities.get(key)!;
      if (known.misses + 1 < needed) {
        this.entities.set(key, { ...known, misses: known.misses + 1 });
        continue;
      }
      this.entities.delete(key);
      this.tombstones.set(key, at);
      events.push({ action: 'delete', origin: 'snapshot', entity: known.entity });
    }
    for (const type of types) this.syncedAt.set(typeIn(type, scope), Math.max(at, this.syncedAt.get(typeIn(type, scope)) ?? 0));
    return events;
  }

  /**
   * A patch: the fields it sets onto the entity held (attributes one by one; an undefined one is
   * removed), then as an upsert. Choice: a patch of an entity not held makes nothing, and leaves
   * no trace (not even a tombstone's removal): the next whole observation brings the entity.
   */
  private applyPatch(patch: EntityPatch, at: number): ModelEvent[] {
    const known = this.entities.get(patch.key);
    if (known === undefined) return [];
    const before = known.entity;
    const attributes: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(before.attributes)) if (value !== undefined) attributes[name] = value;
    for (const [name, value] of Object.entries(patch.attributes ?? {})) {
      if (value === undefined) delete attributes[name];
      else attributes[name] = value;
    }
    const after: Entity = {
      ...before,
      name: Object.hasOwn(patch, 'name') ? patch.name : before.name,
      state: patch.state ?? before.state,
      project: Object.hasOwn(patch, 'project') ? patch.project : before.project,
      parents: patch.parents ?? before.parents,
      children: patch.children ?? before.children,
      observedAt: patch.observedAt,
      source: patch.source,
      attributes,
    };
    if (patch.raw !== undefined) after.raw = patch.raw;
    return this.applyUpsert(after, at);
  }

  /** Rules 3 and 4 for an upsert. */
  private applyUpsert(entity: Entity, at: number): ModelEvent[] {
    const key = entity.key;
    const known = this.entities.get(key);
    if (known !== undefined && this.vouchedAt(known, this.syncedAt) > at) return []; // older news
    const deletedAt = this.tombstones.get(key);
    // Choice: a notification stamped at the very instant of the deletion stays out too.
    if (deletedAt !== undefined && deletedAt >= at) return [];
    this.tombstones.delete(key);
    if (known !== undefined && meaningOf(known.entity) === meaningOf(entity)) {
      this.entities.set(key, { entity: known.entity, writtenAt: at, bySnapshot: false, misses: 0 });
      return [];
    }
    this.entities.set(key, { entity, writtenAt: at, bySnapshot: false, misses: 0 });
    return known === undefined
      ? [{ action: 'create', origin: 'notification', entity }]
      : [{ action: 'update', origin: 'notification', entity, changed: changedFieldsOf(known.entity, entity) }];
  }

  /** Rules 3 and 4 for a delete: a tombstone even for an unknown entity (its create may be late). */
  private applyDelete(entity: Entity, at: number): ModelEvent[] {
    const key = entity.key;
    const known = this.entities.get(key);
    if (known !== undefined && this.vouchedAt(known, this.syncedAt) > at) return []; // older news
    this.tombstones.set(key, Math.max(at, this.tombstones.get(key) ?? 0));
    if (known === undefined) return [];
    this.entities.delete(key);
    return [{ action: 'delete', origin: 'notification', entity: known.entity }];
  }

  /** The current entities, by key. */
  entityMap(): Map<string, Entity> {
    return new Map([...this.entities].map(([key, known]) => [key, known.entity]));
  }
}
