import type { Observable, OperatorFunction, Subscriber } from 'rxjs';
import { concatEach } from './concatEach.js';
import { type Entity, type EntityDraft, type EntityPatch, type EntityRef, type Observation, type SnapshotObservation, entityKey } from '../src/model.js';
import { canonicalize } from '../src/hash.js';
import { Kept } from '../src/kept.js';
import { standIn } from './standIns.js';
import { type EntityScope, qualifiedId } from '../src/scope.js';
import type { EntityMapping } from '../src/source.js';

/** A raw record that could not become an entity, and why. */
export interface InvalidRecord {
  source: string;
  reason: string;
  /** The key, when the record got far enough to have one. */
  key?: string;
  record: unknown;
}

export interface NormalizeOptions {
  /** Called for every record left out; the stream goes on. */
  onInvalid?: (invalid: InvalidRecord) => void;
  /** Keep the raw record on the entity (`Entity.raw`). Off by default: it costs memory. */
  keepRaw?: boolean;
  /**
   * The source's scope: every entity carries it, and the ids of its local types — the entity's
   * and those its refs name — are qualified by it (src/scope.ts). Absent: entities as mapped.
   */
  scope?: EntityScope;
  /**
   * Normalize a snapshot of more than `records` records in slices of that many, awaiting
   * `pause()` between two (the hub yields to the event loop there, so a big poll does not stall
   * the push path); the observations after it wait for it, in order. Without it every
   * observation is normalized at once, synchronously.
   */
  slice?: SliceOptions;
  /**
   * With `slice`: called with a big snapshot as normalized so far after each run of its records
   * (at most {@link SLICE_CHECK}, inside the slice's time), its `records` growing; the same
   * object is emitted once complete. The hub reads the new records against the baseline there,
   * while they are young (src/hub/slicing.ts, docs/scale.md "Fewer survivors").
   */
  prepare?: (normalized: SnapshotObservation<Entity>) => void;
}

/**
 * Work in slices: at most `records` items, and (with `ms`) no more once `ms` milliseconds of the
 * slice have passed, or (with `deadline`) once the time it gives has come, then `await pause()`.
 * The time is looked at every {@link SLICE_CHECK} items: records cost what they cost (a loaded
 * core makes each slower), and a slice bounded by count alone ran 53 ms once where it usually
 * takes 3.
 */
export interface SliceOptions {
  records: number;
  /** Yields; `denied`: before the first slice, because a shared budget was spent (it may wait ahead of others). */
  pause: (denied?: boolean) => Promise<void>;
  ms?: number;
  /**
   * When the slice starting now must end, instead of `ms` after its start: a budget that several
   * kinds of slice share (src/pause.ts, one per turn of the event loop). A slice that would start
   * at or past it yields at once.
   */
  deadline?: () => number;
  /** Called when the work is done without a pause: what is left of a shared budget goes to another. */
  release?: () => void;
  /** The clock for `ms` and `deadline` (default `performance.now`). */
  now?: () => number;
}

/** Items read between two looks at a slice's clock. */
export const SLICE_CHECK = 25;

/** When a slice starting now ends (Infinity: bounded by its count alone). */
export function sliceEnd(slice: SliceOptions, now: () => number): number {
  if (slice.deadline !== undefined) return slice.deadline();
  return slice.ms === undefined ? Infinity : now() + slice.ms;
}

/**
 * Runs `work(from, to)` over `0..length` in slices ({@link SliceOptions}), awaiting `pause()`
 * between two (and before the first when a shared budget is spent); stops early (false) when
 * `stopped()` says so after a pause.
 */
export async function inSlices(length: number, slice: SliceOptions, work: (from: number, to: number) => void, stopped?: () => boolean): Promise<boolean> {
  const now = slice.now ?? (() => performance.now());
  const step = slice.ms === undefined && slice.deadline === undefined ? slice.records : Math.min(slice.records, SLICE_CHECK);
  for (let i = 0; i < length; ) {
    if (i > 0 || (slice.deadline !== undefined && now() >= slice.deadline())) {
      await slice.pause(i === 0);
      if (stopped?.()) return false;
    }
    const end = Math.min(length, i + slice.records);
    const deadline = sliceEnd(slice, now);
    do {
      const to = Math.min(end, i + step);
      work(i, to);
      i = to;
    } while (i < end && now() < deadline);
  }
  slice.release?.();
  return true;
}

class InvalidEntity extends Error {
  constructor(
    message: string,
    readonly key?: string,
  ) {
    super(message);
  }
}

// Low-cardinality strings (states, types, refs' types) repeat across thousands of entities:
// sharing one copy keeps the baseline small. Bounded, so a high-cardinality field can't grow it.
const internTable = new Map<string, string>();
function intern(s: string): string {
  const hit = internTable.get(s);
  if (hit !== undefined) return hit;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: the bound limits memory only; an equal string is returned either way
  if (internTable.size < 10_000) internTable.set(s, s);
  return s;
}

/**
 * Attribute values repeat across entities (a flavor, an image, a host, a zone, a user on thousands
 * of instances), yet every record parsed from JSON brings its own copy: one copy per distinct
 * value and attribute name instead. Bounded and adaptive: an attribute that shows more than
 * VALUES_PER_ATTRIBUTE distinct values (addresses, ids) stops being interned and its table is
 * dropped, and at most INTERNED_ATTRIBUTES names are followed.
 */
const INTERNED_ATTRIBUTES = 1000;
const VALUES_PER_ATTRIBUTE = 4096;
const attributeValues = new Map<string, Map<string, string> | null>();

// Stryker disable all: memory only: the value returned is equal to the one given (the table's copy or itself); what is observable is tested (normalizeEntity.mutation.test.ts "shared copies")
function internedValue(name: string, value: unknown): unknown {
  if (typeof value !== 'string' || value.length > 256) return value;
  let values = attributeValues.get(name);
  if (values === null) return value;
  if (values === undefined) {
    if (attributeValues.size >= INTERNED_ATTRIBUTES) return value;
    attributeValues.set(name, (values = new Map()));
  }
  const hit = values.get(value);
  if (hit !== undefined) return hit;
  if (values.size >= VALUES_PER_ATTRIBUTE) attributeValues.set(name, null);
  else values.set(value, value);
  return value;
}
// Stryker restore all

/**
 * Attributes as mappings build them, name by name, keep four values in the object itself and the
 * rest in an array of their own: 96 B for a Nova instance's seven. An object parsed from JSON is
 * sized to its names, and a spread of it keeps that size, so the values go (interned) into a
 * spread of such a template of their names: 80 B for the seven. One template per list of names in
 * order, found through a tree of names; past SHAPES names in the tree, for four names or fewer
 * (they fit as built), or with inherited names, the object is kept as built.
 */
interface Shape {
  readonly next: Map<string, Shape>;
  template: Record<string, unknown> | null | undefined;
}
const SHAPES = 4096;
const shapes: Shape = { next: new Map(), template: null };
let shapeCount = 0;

function templateOf(attributes: Record<string, unknown>): Record<string, unknown> | null {
  let shape = shapes;
  let n = 0;
  for (const name in attributes) {
    let next = shape.next.get(name);
    if (next === undefined) {
      if (shapeCount >= SHAPES) return null;
      shapeCount++;
      shape.next.set(name, (next = { next: new Map(), template: undefined }));
    }
    shape = next;
    n++;
  }
  if (n <= 4) return null;
  if (shape.template === undefined) {
    const names = Object.keys(attributes);
    // Inherited names stay inherited. (An own `__proto__` is one in the spread as in JSON.parse.)
    shape.template = names.length !== n ? null : (JSON.parse(JSON.stringify(Object.fromEntries(names.map((name) => [name, null])))) as Record<string, unknown>);
  }
  return shape.template;
}

/** The attributes compact (see {@link templateOf}) with their values interned; frozen ones are shared as they are. */
function compactAttributes(attributes: Record<string, unknown>): Record<string, unknown> {
  if (Object.isFrozen(attributes)) return attributes;
  const template = templateOf(attributes);
  const out = template === null ? attributes : { ...template };
  // Equal strings are === whatever their copy: the table's copy is written unconditionally.
  for (const name in attributes) out[name] = internedValue(name, attributes[name]);
  return out;
}

/**
 * A list of one ref (an instance's host, a port's network) is the most common list, and many
 * entities name the same one: one frozen list per ref, per type while it has fewer than
 * REFS_PER_TYPE distinct ids (then, as above, that type's table is dropped).
 */
const REFS_PER_TYPE = 65_536;
const singleRefs = new Map<string, Map<string, EntityRef[]> | null>();

// Stryker disable all: memory only: the list returned, shared or not, holds the same ref (undefined: the caller keeps its own)
function sharedRef(ref: EntityRef): EntityRef[] | undefined {
  let lists = singleRefs.get(ref.type);
  if (lists === null) return undefined;
  if (lists === undefined) {
    if (singleRefs.size >= INTERNED_ATTRIBUTES) return undefined;
    singleRefs.set(ref.type, (lists = new Map()));
  }
  let list = lists.get(ref.id);
  if (list === undefined) {
    if (lists.size >= REFS_PER_TYPE) {
      singleRefs.set(ref.type, null);
      return undefined;
    }
    // Stryker restore all
    list = Object.freeze([Object.freeze({ type: intern(ref.type), id: ref.id })]) as unknown as EntityRef[];
    // Stryker disable all: memory only, as above
    lists.set(ref.id, list);
  }
  return list;
}
// Stryker restore all

const upperCache = new Map<string, string>();
function normalizeState(state: string): string {
  let upper = upperCache.get(state);
  // Stryker disable next-line ConditionalExpression: without the cache the same text is computed again
  if (upper === undefined) {
    upper = intern(state.trim().toUpperCase());
    // Stryker disable next-line ConditionalExpression,EqualityOperator: the bound limits memory only
    if (upperCache.size < 10_000) upperCache.set(state, upper);
  }
  return upper;
}

function isNonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v !== '';
}

function compareRefs(a: EntityRef, b: EntityRef): number {
  // Stryker disable next-line EqualityOperator: only reached when the types differ, where < and <= agree
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.id < b.id) return -1;
  // Stryker disable next-line ConditionalExpression: every caller only tells < 0 from the rest (sort, `>= 0`, `!== 0` of neighbours in order)
  return a.id > b.id ? 1 : 0;
}

/** The refs of every entity that has none: one shared, frozen empty list (most have no children). */
const NO_REFS: EntityRef[] = Object.freeze([]) as unknown as EntityRef[];

function checkRefs(refs: unknown, field: 'parents' | 'children', key: string, scope?: EntityScope): EntityRef[] {
  if (refs === undefined || refs === null) return NO_REFS;
  if (scope !== undefined && Array.isArray(refs)) refs = refs.map((r: unknown) => scopedRef(r, scope));
  if (!Array.isArray(refs)) throw new InvalidEntity(`${field} must be a list of {type, id}`, key);
  let canonical = true;
  for (let i = 0; i < refs.length; i++) {
    const r = refs[i] as Partial<EntityRef> | null | undefined;
    if (!isNonEmptyString(r?.type) || !isNonEmptyString(r.id)) {
      throw new InvalidEntity(`${field} must be a list of {type, id} with non-empty strings, got ${JSON.stringify(r)}`, key);
    }
    if (i > 0 && compareRefs(refs[i - 1] as EntityRef, r as EntityRef) >= 0) canonical = false;
    let fields = 0;
    for (const _ in r) fields++;
    if (fields !== 2) canonical = false;
  }
  // Refs are a set: canonical order (and {type, id} only) makes the hash and the output
  // independent of API order. The usual case — already canonical — is kept as it is.
  if (refs.length === 0) return NO_REFS;
  if (refs.length === 1 && canonical) return sharedRef(refs[0] as EntityRef) ?? (refs as EntityRef[]);
  if (canonical) return refs as EntityRef[];
  const sorted = (refs as EntityRef[]).map((r) => ({ type: intern(r.type), id: r.id })).sort(compareRefs);
  return sorted.filter((r, i) => i === 0 || compareRefs(sorted[i - 1]!, r) !== 0);
}

/** A ref as a scoped source means it: to the entity of its own scope when the type is local. */
function scopedRef(r: unknown, scope: EntityScope): unknown {
  const ref = r as Partial<EntityRef> | null | undefined;
  if (!isNonEmptyString(ref?.type) || !isNonEmptyString(ref.id) || !scope.isLocal(ref.type)) return r;
  return { type: ref.type, id: qualifiedId(scope.name, ref.id) };
}

/** Property names are internalized strings: storing one here internalizes it (see {@link identity}). */
const internalizer: Record<string, 0> = Object.create(null) as Record<string, 0>;

/** V8 makes a substring of this many characters or more a view of its parent's text (see {@link identity}). */
const SLICE_MIN_LENGTH = 13;

/**
 * An entity's key and id as the baseline keeps them, for a million of them (measured, docs/scale.md):
 * - the key internalized now, while it is young. Immutable's Map internalizes a long key when it
 *   hashes it; done in the step, to an entity already in the old generation, that leaves the
 *   key's first copy behind as a 24 B forwarding string for as long as the entity lives. Done
 *   here, the next scavenge drops it.
 * - a long id as a slice of the key: V8 keeps it as a view of the key's text (32 B), where the id
 *   the record brought is a copy of its own (a UUID is 56 B).
 * Strings are values: nothing observable changes.
 */
function identity(type: string, id: string): { type: string; id: string; key: string } {
  const key = entityKey(type, id);
  internalizer[key] = 0;
  delete internalizer[key];
  // Stryker disable next-line ConditionalExpression,EqualityOperator: the key's slice is a string equal to the id; only how V8 stores it differs
  return { type, id: id.length >= SLICE_MIN_LENGTH ? key.slice(key.length - id.length) : id, key };
}

/** The checked type, id (qualified in a scope) and key of a draft. Throws InvalidEntity. */
function identify(draft: EntityDraft, scope: EntityScope | undefined): { type: string; id: string; key: string } {
  if (draft === null || typeof draft !== 'object') throw new InvalidEntity(`mapping returned ${JSON.stringify(draft)}, not an entity`);
  const { type, id } = draft;
  if (!isNonEmptyString(type)) throw new InvalidEntity(`type must be a non-empty string, got ${JSON.stringify(type)}`);
  if (!isNonEmptyString(id)) throw new InvalidEntity(`id of ${type} must be a non-empty string, got ${JSON.stringify(id)}`);
  const scoped = scope !== undefined && scope.isLocal(type) ? qualifiedId(scope.name, id) : id;
  checkKeyLength(type, scoped);
  return identity(type, scoped);
}

/**
 * The longest entity key, in UTF-8 bytes. A real id is a UUID, a host or a service name; a key
 * longer than this is bad input, and the state store could not keep it (LMDB's keys end at 1,978
 * bytes: the fold of such a key failed for ever, and the log grew until snapshots were left out).
 */
export const MAX_KEY_BYTES = 1024;

/** Throws InvalidEntity when the key `type:id` is longer than {@link MAX_KEY_BYTES}. */
function checkKeyLength(type: string, id: string): void {
  const chars = type.length + 1 + id.length;
  // UTF-8 takes at most 3 bytes per UTF-16 unit: only a key that long is measured.
  // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut only; measuring every key gives the same answer (and 3 × chars is never 1,024)
  if (chars * 3 <= MAX_KEY_BYTES) return;
  const bytes = Buffer.byteLength(type) + 1 + Buffer.byteLength(id);
  if (bytes > MAX_KEY_BYTES) throw new InvalidEntity(`the key of this ${type} is ${bytes} bytes long, more than the ${MAX_KEY_BYTES} allowed (id ${JSON.stringify(id.slice(0, 60))}…)`);
}

/** Checks the optional fields of a draft, as far as they are present. Throws InvalidEntity. */
function checkFields(draft: EntityDraft, key: string): void {
  const { state, name, project, attributes } = draft;
  if (state !== undefined && !isNonEmptyString(state)) throw new InvalidEntity(`state must be a non-empty string, got ${JSON.stringify(state)}`, key);
  if (name !== undefined && name !== null && typeof name !== 'string') throw new InvalidEntity(`name must be a string, got ${JSON.stringify(name)}`, key);
  if (project !== undefined && project !== null && typeof project !== 'string') {
    throw new InvalidEntity(`project must be a string, got ${JSON.stringify(project)}`, key);
  }
  if (attributes !== undefined && (attributes === null || typeof attributes !== 'object' || Array.isArray(attributes))) {
    throw new InvalidEntity('attributes must be a mapping', key);
  }
}

/**
 * Checks one draft and completes it into an Entity. Throws InvalidEntity with the reason.
 * `requireState` is false for deletes, which only need type and id. With a `scope`, the entity
 * carries it and local types' ids (its own and its refs') are qualified by it.
 */
export function toEntity(draft: EntityDraft, source: string, observedAt: string, requireState = true, keepRaw = false, scope?: EntityScope): Entity {
  const { type, id, key } = identify(draft, scope);
  checkFields(draft, key);
  const { name, state, project, attributes } = draft;
  if (state === undefined && requireState) throw new InvalidEntity('state is missing', key);
  const parents = checkRefs(draft.parents, 'parents', key, scope);
  const children = checkRefs(draft.children, 'children', key, scope);
  // A copy of one template, fields always present (undefined when unset): one object shape for
  // every entity, and the contract's field order in the JSON output (undefined members are not
  // written). Not a literal: V8 pretenures a literal's objects once most of them outlive their
  // first scavenge, as a first snapshot's do, and then makes every later poll's entities in the
  // old generation, where those dropped as unchanged a moment later wait for a major collection
  // (docs/scale.md, "Fewer survivors"). A spread has no allocation site to learn that.
  const entity = { ...ENTITY_TEMPLATE };
  entity.key = key;
  entity.type = intern(type);
  entity.id = id;
  entity.scope = scope?.name;
  entity.name = isNonEmptyString(name) ? name : undefined;
  entity.state = state === undefined ? 'DELETED' : normalizeState(state);
  entity.project = isNonEmptyString(project) ? intern(project) : undefined;
  entity.parents = parents;
  entity.children = children;
  entity.observedAt = observedAt;
  entity.source = source;
  entity.attributes = attributes === undefined ? {} : compactAttributes(canonicalize(attributes));
  if (keepRaw && draft.raw !== undefined) entity.raw = draft.raw;
  return entity;
}

/**
 * Every entity's fields in the contract's order, each null: JSON.parse sizes the object to them
 * and a spread keeps that size (as {@link templateOf}'s attributes).
 */
const ENTITY_TEMPLATE = JSON.parse(
  '{"key":null,"type":null,"id":null,"scope":null,"name":null,"state":null,"project":null,"parents":null,"children":null,"observedAt":null,"source":null,"attributes":null}',
) as Entity;

/**
 * Checks a partial draft (a patch: type, id and the fields it sets) and completes it into an
 * EntityPatch. A field the draft leaves undefined is not set; an attribute whose value is
 * undefined is removed. Throws InvalidEntity with the reason.
 */
export function toPatch(draft: EntityDraft, source: string, observedAt: string, keepRaw = false, scope?: EntityScope): EntityPatch {
  const { type, id, key } = identify(draft, scope);
  checkFields(draft, key);
  const { name, state, project, attributes } = draft;
  const patch: EntityPatch = { key, type: intern(type), id, observedAt, source };
  if (scope !== undefined) patch.scope = scope.name;
  // null or '' clears name and project, as a whole entity without them has none.
  if (name !== undefined) patch.name = isNonEmptyString(name) ? name : undefined;
  if (state !== undefined) patch.state = normalizeState(state);
  if (project !== undefined) patch.project = isNonEmptyString(project) ? intern(project) : undefined;
  if (draft.parents !== undefined) patch.parents = checkRefs(draft.parents, 'parents', key, scope);
  if (draft.children !== undefined) patch.children = checkRefs(draft.children, 'children', key, scope);
  if (attributes !== undefined) {
    const set: Record<string, unknown> = {};
    // canonicalize(undefined) is undefined: the attribute's removal.
    for (const name of Object.keys(attributes)) set[name] = canonicalize(attributes[name]);
    patch.attributes = set;
  }
  if (keepRaw && draft.raw !== undefined) patch.raw = draft.raw;
  return patch;
}

function drafts<R>(map: EntityMapping<R>, record: R): readonly EntityDraft[] {
  const out = map(record);
  if (out === undefined) return [];
  return Array.isArray(out) ? out : [out as EntityDraft];
}

/**
 * Turns a source's observations of raw records into observations of entities, with the source's
 * mapping.
 *
 * ```
 * source:  --s(r1,r2,bad)--c(r3)--|
 * result:  --s(E1,E2)------c(E3)--|     onInvalid(bad, reason)
 * ```
 *
 * 1. Each raw record is mapped to zero, one or several drafts, and each draft is checked and
 *    completed into an Entity (key, upper-case state, sorted refs, observedAt = the observation's
 *    `at`, source = the observation's source).
 * 2. A record whose mapping throws, or whose draft is invalid (missing id or type, non-string
 *    state, …), is reported to `onInvalid` with the reason and left out; if its key is known, a
 *    snapshot lists it in `keep`, so the bad record does not delete the entity it describes.
 * 3. A change whose record is invalid is dropped whole and settled `{ ok: false, reason }`, so a
 *    push source can set its message aside; one the mapping ignores (no drafts) is settled ok.
 *    A patch is the same, its drafts completed into EntityPatches (only the fields they set).
 * 4. An observation whose `at` is not a date is reported and dropped (settled not ok); a snapshot
 *    record whose type is not among the snapshot's `types` is invalid (it could never be deleted).
 * 5. With `scope`, every entity carries it, its snapshots name it, and the ids of local types
 *    (the entity's and its refs') are qualified by it: `nova.host:a/compute-01` (src/scope.ts).
 * 6. A snapshot record that is a `Kept` (src/kept.ts: the baseline's entity, vouched for by the
 *    hub) is not mapped: its entity stands in its slot for itself restamped with the snapshot's
 *    `observedAt` and `source`, which the baseline's step makes wherever it writes the record
 *    (operators/standIns.ts).
 * 7. Completes and errors with the source.
 *
 * @example
 * ```ts
 * observation$.pipe(normalizeEntity((server: Server) => ({ type: 'nova.instance', id: server.id, state: server.status })))
 * ```
 * @param map the source's mapping from a raw record to entity drafts.
 * @returns observations of valid entities only.
 */
export function normalizeEntity<R>(map: EntityMapping<R>, options: NormalizeOptions = {}): OperatorFunction<Observation<R> | SnapshotObservation<R | Kept>, Observation<Entity>> {
  const { onInvalid, keepRaw = false, slice, scope, prepare } = options;
  /**
   * Normalizes one observation, emitting what it becomes to `out`; a big snapshot (with `slice`)
   * or one with `pages` resolves once emitted (or dropped: its pages failed).
   */
  const one = (observation: Observation<R> | SnapshotObservation<R | Kept>, out: Subscriber<Observation<Entity>>): Promise<void> | undefined => {
    const emit = (o: Observation<Entity>): void => out.next(o);
    const stopped = (): boolean => out.closed;
    if (Number.isNaN(Date.parse(observation.at))) {
      const reason = `observation time is not a date: ${JSON.stringify(observation.at)}`;
      onInvalid?.({ source: observation.source, reason, record: observation.kind === 'snapshot' ? undefined : observation.record });
      observation.settle?.({ ok: false, reason });
      return undefined;
    }
    const report = (reason: string, record: unknown, key?: string): void =>
      onInvalid?.({ source: observation.source, reason, record, ...(key !== undefined ? { key } : {}) });
    if (observation.kind === 'snapshot') {
      const records: Entity[] = [];
      const keep: string[] = observation.keep ? [...observation.keep] : [];
      const types = new Set(observation.types);
      const add = (draft: EntityDraft, record: R): void => {
        try {
          const entity = toEntity(draft, observation.source, observation.at, true, keepRaw, scope);
          if (!types.has(entity.type)) {
            throw new InvalidEntity(`type ${entity.type} is not among the snapshot's types (${observation.types.join(', ')})`);
          }
          records.push(entity);
        } catch (e) {
          const key = e instanceof InvalidEntity ? e.key : undefined;
          if (key !== undefined) keep.push(key);
          report(e instanceof Error ? e.message : String(e), record, key);
        }
      };
      const raw = observation.records;
      const pages = observation.pages;
      const { records: _raw, keep: _keep, pages: _pages, ...rest } = observation;
      const normalized: SnapshotObservation<Entity> = { ...rest, records, ...(scope !== undefined ? { scope: scope.name } : {}) };
      // A snapshot still arriving may turn out big: it is prepared as it comes, in any case.
      const sliced = slice !== undefined && (pages !== undefined || raw.length > slice.records);
      const range = (list: readonly (R | Kept)[], from: number, to: number): void => {
        for (let i = from; i < to; i++) {
          const record = list[i]!;
          // An entity its transport kept (src/kept.ts): the baseline's own, already normalized. It
          // stands in for the record mapping would give, which is it restamped (operators/standIns.ts).
          if (record instanceof Kept) {
            if (types.has(record.entity.type)) standIn(records, records.length, record.entity, observation.at, observation.source);
            else report(`type ${record.entity.type} is not among the snapshot's types (${observation.types.join(', ')})`, record.entity, record.entity.key);
            continue;
          }
          let out: ReturnType<EntityMapping<R>>;
          try {
            out = map(record);
          } catch (e) {
            report(`mapping failed: ${e instanceof Error ? e.message : String(e)}`, record);
            continue;
          }
          // The common case, one draft per record, allocates no array.
          if (out === undefined) continue;
          if (Array.isArray(out)) for (const d of out as readonly EntityDraft[]) add(d, record);
          else add(out as EntityDraft, record);
        }
        if (sliced) prepare?.(normalized);
      };
      const done = (): void => {
        if (keep.length > 0) normalized.keep = keep;
        // Known once the pages are complete (pollSnapshots sets it then).
        if (pages !== undefined && observation.read !== undefined) normalized.read = observation.read;
        emit(normalized);
      };
      if (pages !== undefined) return piecesOf(observation, raw, pages, out, (list, from, to) => range(list, from, to), done);
      if (slice === undefined || !sliced) {
        range(raw, 0, raw.length);
        done();
        return undefined;
      }
      // Unsubscribed meanwhile (the source stopped): the rest is nobody's.
      return inSlices(raw.length, slice, (from, to) => range(raw, from, to), stopped).then((complete) => (complete ? done() : undefined));
    }
    let entities: (Entity | EntityPatch)[];
    try {
      const record = observation.record as R;
      entities = drafts(map, record).map((d) =>
        observation.kind === 'patch'
          ? toPatch(d, observation.source, observation.at, keepRaw, scope)
          : toEntity(d, observation.source, observation.at, observation.action === 'upsert', keepRaw, scope),
      );
    } catch (e) {
      const reason = e instanceof InvalidEntity ? e.message : `mapping failed: ${e instanceof Error ? e.message : String(e)}`;
      report(reason, observation.record, e instanceof InvalidEntity ? e.key : undefined);
      observation.settle?.({ ok: false, reason });
      return undefined;
    }
    if (entities.length === 0) {
      observation.settle?.({ ok: true });
      return undefined;
    }
    // One record may describe several entities; the last one carries the settle hook.
    const { source, at, settle, receivedAt } = observation;
    for (let i = 0; i < entities.length; i++) {
      const change: Observation<Entity> =
        observation.kind === 'patch'
          ? { kind: 'patch', source, at, record: entities[i] as EntityPatch }
          : { kind: 'change', source, action: observation.action, at, record: entities[i] as Entity };
      if (receivedAt !== undefined) change.receivedAt = receivedAt;
      if (settle && i === entities.length - 1) change.settle = settle;
      emit(change);
    }
    return undefined;
  };
  /**
   * Normalizes a snapshot's records and then its pages, piece by piece as they come (each in
   * slices, with a pause between two pieces); resolves once it is emitted, or dropped when its
   * pages error (settled not ok: the snapshot never was, and nothing of it is kept).
   */
  const piecesOf = (
    observation: SnapshotObservation<R | Kept>,
    first: readonly (R | Kept)[],
    pages: Observable<readonly (R | Kept)[]>,
    out: Subscriber<Observation<Entity>>,
    range: (list: readonly (R | Kept)[], from: number, to: number) => void,
    done: () => void,
  ): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const queue: (readonly (R | Kept)[])[] = first.length > 0 ? [first] : [];
      let working = false;
      let ended = false;
      let failed = false;
      const over = (): boolean => failed || out.closed;
      const work = async (): Promise<void> => {
        for (let n = 0; queue.length > 0; n++) {
          if (n > 0 && slice !== undefined) {
            await slice.pause();
            if (over()) return;
          }
          const piece = queue.shift()!;
          if (slice === undefined) range(piece, 0, piece.length);
          else if (!(await inSlices(piece.length, slice, (from, to) => range(piece, from, to), over))) return;
          if (over()) return;
        }
        working = false;
        if (ended) {
          done();
          resolve();
        }
      };
      const pump = (): void => {
        if (working) return;
        working = true;
        work().catch(reject);
      };
      out.add(
        pages.subscribe({
          next: (piece) => {
            queue.push(piece);
            pump();
          },
          error: (e: unknown) => {
            failed = true;
            queue.length = 0;
            observation.settle?.({ ok: false, reason: `the snapshot's pages failed: ${e instanceof Error ? e.message : String(e)}` });
            resolve();
          },
          complete: () => {
            ended = true;
            if (!working) pump();
          },
        }),
      );
      // Records given before any page: normalized at once, as the pages' pieces.
      if (queue.length > 0) pump();
    });
  // In order: what a source observes after a big snapshot waits until that snapshot is out.
  return concatEach(one);
}
