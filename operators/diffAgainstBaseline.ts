import { mark } from '../src/marks.js';
import { Map as ImmutableMap } from 'immutable';
import { type OperatorFunction, mergeMap, scan } from 'rxjs';
import { canonicalize, changedFields, entityHash, sameMeaning } from '../src/hash.js';
import {
  type ChangeObservation,
  type Entity,
  type EntityEvent,
  type EntityPatch,
  type EntityType,
  type Observation,
  type PatchObservation,
  type SnapshotObservation,
  unreachable,
} from '../src/model.js';
import { scopedType } from '../src/scope.js';
import { droppable, grown, recordAt, recordsOf, standIn, standInsOf, standsIn } from './standIns.js';

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

/**
 * @internal Entries are one per entity, and V8 stores a field that has only ever held numbers as
 * a double in a box of its own per object: 16 B per entry for `at`. A field that has once held
 * something else holds references, and then the entries one observation writes share its time's
 * one number. This entry, in no baseline, is that something else for every entry of this shape
 * (the same fields in the same order, wherever it is made). Exported only to live as long as the
 * module: V8 forgets the shape of objects that are all gone.
 */
export const ENTRY_SHAPE: unknown = { entity: undefined, at: undefined, bySnapshot: false, misses: 0 };

/** The baseline: an immutable value, safe to hand out. */
export interface BaselineState {
  readonly entities: ImmutableMap<string, BaselineEntry>;
  /** Deleted keys → time (epoch ms) of the deletion, kept for `tombstoneMs`. */
  readonly tombstones: ImmutableMap<string, number>;
  /**
   * Entity type → time (epoch ms) of the last complete snapshot of that type; per type and scope
   * (`<scope>/<type>`, src/scope.ts `scopedType`) for scoped snapshots.
   */
  readonly syncedAt: ImmutableMap<EntityType, number>;
  /** Newest observation time seen, epoch ms; drives tombstone expiry. */
  readonly clock: number;
  /** @internal A plain-Map index of `entities` (see {@link indexOf}); absent or stale means "build one". */
  readonly index: BaselineIndex | undefined;
}

/** One observation applied: the baseline after it, and the events it caused. */
export interface BaselineStep {
  readonly state: BaselineState;
  readonly events: readonly EntityEvent[];
  /** The observation applied (undefined only for the seed); its clock corrected if it had to be. */
  readonly observation?: Observation;
  /**
   * Set when the observation was stamped more than `maxClockSkewMs` ahead of the local clock: the
   * time it was stamped with (it was taken at the local time instead, rule 8).
   */
  readonly skewedAt?: string;
  /**
   * A snapshot's step: the keys whose entries it set or deleted (a key may repeat), so that the
   * state store writes them without comparing every entry (src/store/lmdb.ts). Undefined: not said.
   */
  readonly touched?: readonly string[];
}

export interface DiffOptions {
  /**
   * How long a deleted entity's tombstone stops a late or redelivered older notification from
   * bringing it back, ms (default 10 minutes).
   */
  tombstoneMs?: number;
  /**
   * How far ahead of the local clock an observation may be stamped, ms (default 5 minutes). One
   * stamped further ahead is taken at the local time, its entities' `observedAt` with it, and the
   * step says so (`skewedAt`): a clock gone wrong cannot pin an entity or stop tombstone
   * expiry (DESIGN rule 8).
   */
  maxClockSkewMs?: number;
  /** The local clock, epoch ms (default `Date.now`); the hub passes its scheduler's. */
  now?: () => number;
}

export const DEFAULT_TOMBSTONE_MS = 10 * 60_000;
export const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** The baseline before any observation. */
export function emptyBaseline(): BaselineState {
  return baseline(ImmutableMap<string, BaselineEntry>(), ImmutableMap<string, number>(), ImmutableMap<EntityType, number>(), 0, undefined);
}

/**
 * A baseline rebuilt from stored parts (the state store's load): its index is built on first use.
 */
export function restoreBaseline(parts: Pick<BaselineState, 'entities' | 'tombstones' | 'syncedAt' | 'clock'>): BaselineState {
  return baseline(parts.entities, parts.tombstones, parts.syncedAt, parts.clock, undefined);
}

/** Every state is built here, so all have one shape (property access stays monomorphic). */
function baseline(
  entities: BaselineState['entities'],
  tombstones: BaselineState['tombstones'],
  syncedAt: BaselineState['syncedAt'],
  clock: number,
  index: BaselineIndex | undefined,
): BaselineState {
  return { entities, tombstones, syncedAt, clock, index };
}

function timeOf(observation: Observation): number {
  const t = Date.parse(observation.at);
  if (Number.isNaN(t)) throw new TypeError(`observation from ${observation.source} has an invalid time: ${JSON.stringify(observation.at)}`);
  return t;
}

/**
 * The observation as the baseline takes it: one stamped beyond the allowed skew ahead of the local
 * clock is taken at the local time, and so are its entities' `observedAt` that lie that far ahead
 * (consumers compare them across instances). Undefined when the observation's time is fine.
 */
function correctClock(observation: Observation, at: number, options: DiffOptions): { observation: Observation; at: number } | undefined {
  const local = (options.now ?? Date.now)();
  const limit = local + (options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS);
  if (at <= limit) return undefined;
  const stamp = new Date(local).toISOString();
  const fix = <E extends Entity | EntityPatch>(entity: E): E => (Date.parse(entity.observedAt) > limit ? { ...entity, observedAt: stamp } : entity);
  const corrected: Observation =
    observation.kind === 'snapshot'
      ? { ...observation, at: stamp, records: recordsOf(observation).map(fix) }
      : // Stryker disable next-line ConditionalExpression,EqualityOperator: both branches build the same object (two for the types)
        observation.kind === 'change'
        ? { ...observation, at: stamp, record: fix(observation.record) }
        : { ...observation, at: stamp, record: fix(observation.record) };
  return { observation: corrected, at: local };
}

/** The time of the newest observation that vouches for an entry's state. */
function effectiveAt(state: BaselineState, entry: BaselineEntry): number {
  if (!entry.bySnapshot || entry.misses > 0) return entry.at;
  return Math.max(entry.at, syncedAtOf(state.syncedAt, entry.entity));
}

/**
 * A step reads `syncedAt` once per record it compares: from a plain Map of the types read so far
 * of the one `syncedAt` value it was built from (Immutable hashes a short key anew at every read).
 */
let syncedRead: { readonly of: BaselineState['syncedAt']; readonly byScope: Map<string | undefined, Map<EntityType, number>> } | undefined;

function syncedAtOf(syncedAt: BaselineState['syncedAt'], e: Entity): number {
  // Stryker disable next-line ConditionalExpression: a cache: emptied more often, it reads the same times again (`false` does not compile)
  if (syncedRead?.of !== syncedAt) syncedRead = { of: syncedAt, byScope: new Map() };
  let byType = syncedRead.byScope.get(e.scope);
  // Stryker disable next-line ConditionalExpression: as above
  if (byType === undefined) syncedRead.byScope.set(e.scope, (byType = new Map()));
  let t = byType.get(e.type);
  // Stryker disable next-line ConditionalExpression: as above
  if (t === undefined) byType.set(e.type, (t = syncedAt.get(scopedType(e.type, e.scope)) ?? 0));
  return t;
}

/** Hashes computed so far, per event (see {@link event}). */
const hashes = mark<string>('hash');

/**
 * The `hash` of every event: one shared getter, so defining it costs no closure per event and
 * every event keeps one object shape (V8 reuses the property transition of the same accessor).
 */
const hashProperty: PropertyDescriptor = {
  enumerable: true,
  get(this: EntityEvent): string {
    let hash = hashes.get(this);
    // Stryker disable next-line ConditionalExpression: computing the hash again gives the same hash
    if (hash === undefined) hashes.set(this, (hash = entityHash(this.entity)));
    return hash;
  },
};

/**
 * An event whose `hash` is computed the first time it is read, then kept: the baseline compares
 * meanings, not hashes, so a consumer that never reads the hash never pays for it. It is an own
 * enumerable property, so JSON, spread and structuredClone see it like any other field.
 */
function event(action: EntityEvent['action'], origin: EntityEvent['origin'], entity: Entity, changed?: string[]): EntityEvent {
  const e = changed === undefined ? { action, origin, entity } : { action, origin, entity, changed };
  return Object.defineProperty(e, 'hash', hashProperty) as EntityEvent;
}

/**
 * An event as the reducer makes them (its `hash` computed when first read), for events made
 * elsewhere: the state store's outbox, emitted again at start (100,000 eager hashes after a crash
 * right after a first snapshot cost ~0.6 s of the load).
 */
export const entityEvent = event;

function upsertEvent(prev: BaselineEntry | undefined, entity: Entity, origin: EntityEvent['origin']): EntityEvent {
  return prev === undefined ? event('create', origin, entity) : event('update', origin, entity, changedFields(prev.entity, entity));
}

/**
 * A plain-Map index of a baseline's entries: lookups without Immutable's string hashing, and no
 * rebuild per poll. It is valid for the state whose `entities` it names. The reducer takes it
 * from the state it reduces and hands it, updated, to the state it returns; reducing an older
 * state again finds it naming another map and builds a fresh one, so the reducer stays pure.
 */
interface BaselineIndex {
  entities: ImmutableMap<string, BaselineEntry> | undefined;
  /**
   * The entries themselves, no bookkeeping per entry: what a snapshot held is known while its
   * step runs (see applySnapshot), so an index entry costs the Map's own slot only.
   */
  readonly byKey: EntryIndex;
  /** Keys changes touched, for the snapshots being prepared meanwhile. */
  readonly log: ChangeLog;
  /**
   * The tombstones by time, for expiry. It holds every tombstone of the `tombstones` it names (and
   * maybe stale ones); another map means "build it again" (see {@link indexOf}).
   */
  expiry: TombstoneQueue;
  tombstones: ImmutableMap<string, number> | undefined;
}

/** Shards of an {@link EntryIndex}: a power of two. */
const SHARDS = 32;

/**
 * A key → entry map in {@link SHARDS} plain Maps, chosen by the key's last two characters. One
 * Map of 100,000 entries under churn (a few thousand keys set and deleted per poll) rehashes its
 * whole table every few polls when its deleted slots run out: 5–30 ms in one `set` or `delete`,
 * a notification's or a step's. A shard rehashes a thirty-second of that.
 */
class EntryIndex {
  private readonly shards: Map<string, BaselineEntry>[] = Array.from({ length: SHARDS }, () => new Map());

  private shard(key: string): Map<string, BaselineEntry> {
    const n = key.length;
    // Stryker disable next-line ArithmeticOperator,BitwiseOperator: any shard a key always maps to is right; these spread ids' last characters
    return this.shards[(key.charCodeAt(n - 1) * 31 + key.charCodeAt(n - 2)) & (SHARDS - 1)]!;
  }

  get(key: string): BaselineEntry | undefined {
    return this.shard(key).get(key);
  }

  set(key: string, entry: BaselineEntry): void {
    this.shard(key).set(key, entry);
  }

  delete(key: string): void {
    this.shard(key).delete(key);
  }

  get size(): number {
    let n = 0;
    for (const m of this.shards) n += m.size;
    return n;
  }

  *values(): Generator<BaselineEntry, undefined, undefined> {
    for (const m of this.shards) yield* m.values();
    return undefined;
  }
}

/**
 * A binary min-heap of (deletion time, key): expiry pops the tombstones older than the window
 * instead of reading all of them (190–440 ms at 600,000 tombstones, the default window at 1,000
 * deletions a second; the scan ran in whichever step crossed a tenth of the window). Pushed where
 * a tombstone is set; a tombstone removed or replaced leaves its entry behind, skipped when popped
 * (its key no longer has that time). Every entry is popped at most a window after the clock passed
 * its time, so stale ones do not pile up. Two arrays, not an object per entry: 16 B an entry.
 */
class TombstoneQueue {
  private readonly times: number[] = [];
  private readonly keys: string[] = [];

  static of(tombstones: ImmutableMap<string, number>): TombstoneQueue {
    const q = new TombstoneQueue();
    tombstones.forEach((at, key) => {
      q.times.push(at);
      q.keys.push(key);
    });
    // Stryker disable next-line ArithmeticOperator: heapify; sifting from a node further on (a leaf) sifts nothing
    for (let i = (q.times.length >> 1) - 1; i >= 0; i--) q.down(i);
    return q;
  }

  /** The oldest entry's time (Infinity when empty). */
  get nextAt(): number {
    return this.times[0] ?? Infinity;
  }

  push(at: number, key: string): void {
    const times = this.times;
    const keys = this.keys;
    let i = times.length;
    times.push(at);
    keys.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const t = times[parent]!;
      if (t <= at) break;
      times[i] = t;
      keys[i] = keys[parent]!;
      i = parent;
    }
    times[i] = at;
    keys[i] = key;
  }

  /** Takes out every entry older than `horizon`, and calls `take` with each. */
  popBefore(horizon: number, take: (key: string, at: number) => void): void {
    const times = this.times;
    const keys = this.keys;
    while (times.length > 0 && times[0]! < horizon) {
      const at = times[0]!;
      const key = keys[0]!;
      const lastAt = times.pop()!;
      const lastKey = keys.pop()!;
      if (times.length > 0) {
        times[0] = lastAt;
        keys[0] = lastKey;
        this.down(0);
      }
      take(key, at);
    }
  }

  private down(i: number): void {
    const times = this.times;
    const keys = this.keys;
    const n = times.length;
    const at = times[i]!;
    const key = keys[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && times[child + 1]! < times[child]!) child++;
      if (times[child]! >= at) break;
      times[i] = times[child]!;
      keys[i] = keys[child]!;
      i = child;
    }
    times[i] = at;
    keys[i] = key;
  }
}

function indexOf(state: BaselineState): BaselineIndex {
  let index = state.index;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: rebuilding more often only costs time (with `===` a valid index is rebuilt and a stale one never met: none is ever taken)
  if (index === undefined || index.entities !== state.entities) {
    const byKey = new EntryIndex();
    state.entities.forEach((entry, key) => void byKey.set(key, entry));
    // Stryker disable next-line ArrayDeclaration: a made-up key in the log names no entry, so no plan visits anything for it
    index = { entities: undefined, byKey, log: { keys: [], base: 0, snapshots: new Map(), unlogged: 0 }, expiry: TombstoneQueue.of(state.tombstones), tombstones: state.tombstones };
  }
  // The same entries with other tombstones (an older state reduced again): the queue may lack some.
  // Stryker disable next-line ConditionalExpression: rebuilding the queue more often only costs time
  if (index.tombstones !== state.tombstones) index.expiry = TombstoneQueue.of(state.tombstones);
  // Taken: until the caller hands it on, it describes no state.
  index.entities = undefined;
  index.tombstones = undefined;
  return index;
}

/**
 * The entry `state` holds for `key`: from its plain-Map index while that describes `state` (the
 * newest state), else from the Immutable map (which hashes a long string key anew on each lookup).
 */
export function entryOf(state: BaselineState, key: string): BaselineEntry | undefined {
  const index = state.index;
  return index !== undefined && index.entities === state.entities ? index.byKey.get(key) : state.entities.get(key);
}

/**
 * The same baseline with its internal index built, so that a snapshot can be prepared against
 * it (prepareSnapshot) before its first step: an empty or restored baseline has none until then,
 * and a first snapshot, all creates, is the one that most needs preparing.
 */
export function indexedBaseline(state: BaselineState): BaselineState {
  return withIndex(state, indexOf(state));
}

/** The state with the index handed on to it. */
function withIndex(state: BaselineState, index: BaselineIndex): BaselineState {
  index.entities = state.entities;
  index.tombstones = state.tombstones;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: a state without the index handed on rebuilds one at its next step: time only
  return state.index === index ? state : baseline(state.entities, state.tombstones, state.syncedAt, state.clock, index);
}

// ——— Records dropped once found unchanged ———
//
// The preparation drops a record it reads as a no-op when it can make it again exactly: its slot
// then holds the entity the baseline held for its key, a stand-in (operators/standIns.ts, where
// normalizeEntity also puts the entities a poll's transport kept). The step reads a stand-in's
// meaning as it is and makes the record again ({@link recordAt}) wherever it writes it.

// ——— Preparing a big snapshot ahead of its step ———
//
// A step is one synchronous block. For a snapshot of 100,000 entities most of it is reading: each
// record looked up and compared with what the baseline holds, and every entry of its types looked
// at for the ones it lacks. `prepareSnapshot` does that reading ahead, in slices a caller spreads
// over the event loop while other observations go on being applied; the step (when the
// snapshot's turn comes, as always) then visits only the records that write something, the
// entries the snapshot lacks, and the keys that changes touched meanwhile (the index's log).
// The step's outcome is the same as without the preparation, to the event: a record the
// preparation found to be a no-op is one as long as nothing touched its key, and what did is
// visited anew. Anything the preparation cannot vouch for (another index, another snapshot of its
// types stepped meanwhile, a lost log) makes the step ignore it and visit everything, as before.

/**
 * Keys that changes touched (and tombstones that expired), in order, while preparations may be
 * open (see {@link Preparation}).
 */
interface ChangeLog {
  keys: string[];
  /** Entries dropped from the front so far: a position below it is lost. */
  base: number;
  /** Snapshot steps applied so far, per type: one of a prepared snapshot's types voids its preparation. */
  readonly snapshots: Map<EntityType, number>;
  /**
   * Snapshot steps of any type so far: writes the log does not name, which void a step built
   * ahead ({@link Ahead}). (Tombstones expired are logged, key by key.)
   */
  unlogged: number;
}

/** Past this many entries the log is dropped (a preparation that started before it is then void). */
const CHANGE_LOG_LIMIT = 200_000;

function logChange(index: BaselineIndex, key: string): void {
  const log = index.log;
  // Stryker disable next-line ConditionalExpression,EqualityOperator,BlockStatement: dropping the log sooner only voids the open preparations (their steps visit everything), later only costs memory
  if (log.keys.length >= CHANGE_LOG_LIMIT) {
    log.base += log.keys.length;
    // Stryker disable next-line ArrayDeclaration: a made-up key in the log names no entry
    log.keys = [];
  }
  log.keys.push(key);
}

interface Preparation {
  readonly index: BaselineIndex;
  /** Position in the index's change log when the preparation started. */
  readonly logAt: number;
  readonly at: number;
  readonly types: ReadonlySet<EntityType>;
  /** Snapshot steps of each of `types` when the preparation started. */
  readonly snapshotsOf: ReadonlyMap<EntityType, number | undefined>;
  /** Key → position of its first record. */
  readonly positions: KeyPositions;
  /** Positions of the records whose step writes something, or may (ascending). */
  readonly work: number[];
  /** Keys of the snapshot's types held by the baseline but not by the snapshot. */
  readonly lacking: string[];
  /** `sameMeaning` of record i and `prev[i]`, the entity the baseline held for its key then. */
  readonly prev: (Entity | undefined)[];
  /** Grown as records arrive (prepareSnapshot's `arriving`). */
  same: Uint8Array;
  /**
   * Creates built ahead: the entry of each record new to the baseline when read (not held, no
   * tombstone), as `built[i]` and in `created`, which the step joins to the baseline's map
   * instead of setting them one by one. A first snapshot is nearly all creates, and the sets were
   * most of its step. A key a change touched meanwhile is taken out of both (planOf) and visited
   * as any other; a repeated record needs nothing more (its second visit replaces the create).
   */
  readonly built: (BaselineEntry | undefined)[];
  created: ImmutableMap<string, BaselineEntry>;
  /** Records read so far. */
  done: number;
  /** The scan of the index for `lacking`, once the records are read. */
  scan: Iterator<BaselineEntry> | undefined;
  /** A record was repeated: its step is not built ahead (the repeat replaces an event). */
  repeated: boolean;
  /** Prepared against an empty index (a first snapshot): its creates are built ahead, not its step. */
  readonly intoEmpty: boolean;
  /** The step built ahead, once the index is scanned (undefined: not built, see {@link startAhead}). */
  ahead: Ahead | undefined;
  complete: boolean;
}

const preparations = new WeakMap<SnapshotObservation, Preparation>();

/**
 * Key → position of its first record in a snapshot: positions in one open-addressed Int32Array,
 * a key compared with its record's own (`snapshot.records[pos].key`, a stand-in's too: the same
 * key). The Map it replaces grew its table by copies as a 100,000-record poll was read, and every
 * copy outlived the young generation: a third of what the main thread promoted during the
 * isolation benchmark's polls (docs/scale.md, "Session 14"). This table holds no string, and its
 * one array grows by doubling as records arrive.
 */
export class KeyPositions {
  private slots: Int32Array;
  /** The hash of each slot's key: a probe that meets another key reads no record. */
  private hashes: Int32Array;
  private mask: number;
  size = 0;

  constructor(private readonly snapshot: SnapshotObservation) {
    const capacity = capacityFor(snapshot.records.length);
    this.slots = new Int32Array(capacity).fill(-1);
    this.hashes = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  get(key: string): number | undefined {
    const pos = this.slots[this.find(key, keyHash(key))]!;
    return pos < 0 ? undefined : pos;
  }

  has(key: string): boolean {
    return this.slots[this.find(key, keyHash(key))]! >= 0;
  }

  /** Records the first position of `key` (a key already held keeps its position). */
  set(key: string, pos: number): void {
    this.claim(key, pos);
  }

  /**
   * The position `key` holds, or, when it holds none, undefined once `pos` is recorded for it: a
   * get and a set in one probe (the preparation reads every record's key so).
   */
  claim(key: string, pos: number): number | undefined {
    const h = keyHash(key);
    const at = this.find(key, h);
    const held = this.slots[at]!;
    if (held >= 0) return held;
    this.slots[at] = pos;
    this.hashes[at] = h;
    this.size += 1;
    // Stryker disable next-line EqualityOperator: growing at half full or one key later only sets its speed
    if (this.size * 2 > this.slots.length) this.grow();
    return undefined;
  }

  /** The slot of `key` (whose hash is `h`), or the empty one where it would go (linear probing). */
  private find(key: string, h: number): number {
    const records = this.snapshot.records;
    const slots = this.slots;
    const hashes = this.hashes;
    let at = h & this.mask;
    for (;;) {
      const pos = slots[at]!;
      if (pos < 0 || (hashes[at] === h && records[pos]!.key === key)) return at;
      at = (at + 1) & this.mask;
    }
  }

  private grow(): void {
    const slots = this.slots;
    const hashes = this.hashes;
    const capacity = slots.length * 2;
    this.slots = new Int32Array(capacity).fill(-1);
    this.hashes = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (let k = 0; k < slots.length; k += 1) {
      if (slots[k]! < 0) continue;
      let at = hashes[k]! & this.mask;
      while (this.slots[at]! >= 0) at = (at + 1) & this.mask;
      this.slots[at] = slots[k]!;
      this.hashes[at] = hashes[k]!;
    }
  }
}

/** Slots for `n` keys at most half full: a power of two, at least 16. */
function capacityFor(n: number): number {
  let c = 16;
  // Stryker disable next-line ConditionalExpression,EqualityOperator,ArithmeticOperator: a smaller start only makes the table grow sooner (time only)
  while (c < n * 2) c *= 2;
  return c;
}

/** FNV-1a of the key's UTF-16 units (a signed 32-bit value, as an Int32Array holds it). */
function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h | 0;
}

/** Whether no snapshot of `p`'s types was stepped since it started. */
function snapshotsHold(p: Preparation): boolean {
  for (const [type, count] of p.snapshotsOf) if (p.index.log.snapshots.get(type) !== count) return false;
  return true;
}

function startPreparation(snapshot: SnapshotObservation, index: BaselineIndex): Preparation {
  const types = new Set<EntityType>(snapshot.types);
  const n = snapshot.records.length;
  return {
    index,
    // Stryker disable next-line ArithmeticOperator: a position below the log's base voids the plan (the step visits everything); at an empty log both are the base
    logAt: index.log.base + index.log.keys.length,
    at: timeOf(snapshot),
    types,
    snapshotsOf: new Map([...types].map((type) => [type, index.log.snapshots.get(type)])),
    positions: new KeyPositions(snapshot),
    work: [],
    // Stryker disable next-line ArrayDeclaration: a made-up key names no entry, so the step finds nothing to delete for it
    lacking: [],
    // Stryker disable next-line ArrayDeclaration: sized ahead for speed; an empty array takes the same writes
    prev: new Array<Entity | undefined>(n),
    same: new Uint8Array(n),
    // Stryker disable next-line ArrayDeclaration: sized ahead for speed; an empty array takes the same writes
    built: new Array<BaselineEntry | undefined>(n),
    created: ImmutableMap(),
    done: 0,
    scan: undefined,
    repeated: false,
    intoEmpty: index.byKey.size === 0,
    ahead: undefined,
    complete: false,
  };
}

/** How {@link prepareSnapshot} reads a snapshot. */
export interface PrepareOptions {
  /**
   * The records are still arriving: the caller appends them to `snapshot.records` (the hub's
   * normalizeEntity, slice by slice as it makes them) and calls again. The records there so far
   * are read, and it returns false however far it got; once they are all there, call it without.
   */
  arriving?: boolean;
  /**
   * The caller owns `snapshot.records` and lets the preparation drop the records it reads as
   * no-ops that it can make again exactly: their slots then hold the baseline's entity of the same
   * key and meaning, and its step gets the record made again wherever it needs it (the section
   * "Records dropped once found unchanged"). A poll's unchanged entities then die young.
   */
  drop?: boolean;
}

/**
 * Reads up to `budget` records (or index entries) of `snapshot` against the baseline `state`,
 * ahead of the snapshot's step (see the section's comment). Returns true once the preparation is
 * complete; call it again with the then current state until it is. Reads `state` and changes
 * nothing in it; a state whose index is not built yet (a restored baseline before its first
 * step) cannot be prepared against, and the snapshot is then taken whole by its step.
 *
 * See {@link PrepareOptions} for records still arriving and for records dropped once read.
 */
export function prepareSnapshot(state: BaselineState, snapshot: SnapshotObservation, budget: number, options: PrepareOptions = {}): boolean {
  const { arriving = false, drop: dropping = false } = options;
  const index = state.index;
  if (index === undefined || index.entities !== state.entities) {
    preparations.delete(snapshot);
    return true;
  }
  let p = preparations.get(snapshot);
  // Prepared against another index (the baseline was replaced meanwhile): start again.
  // Stryker disable next-line ConditionalExpression: a preparation against another index is void at the step anyway (planOf)
  // Another snapshot of its types was stepped since it started (the next poll's is read while
  // this one is still being normalized): start again, or the step would find it void (planOf).
  // Stryker disable next-line ConditionalExpression,LogicalOperator: not starting again leaves a preparation the step finds void (planOf), and takes whole: time only
  if (p === undefined || p.index !== index || !snapshotsHold(p)) preparations.set(snapshot, (p = startPreparation(snapshot, index)));
  // Stryker disable next-line ConditionalExpression: a complete preparation read again finds its scan at its end, and is complete
  if (p.complete) return true;
  const records = snapshot.records;
  const byKey = index.byKey;
  // Stryker disable next-line MethodExpression: the budget only sets how much one call reads
  let left = Math.max(1, budget);
  /** This slice's creates built ahead. */
  const built: BaselineEntry[] = [];
  const dropped = standInsOf(records);
  for (; p.done < records.length; p.done++, left--) {
    // Stryker disable next-line ConditionalExpression,EqualityOperator: reading past the budget only makes a slice longer
    if (left <= 0) break;
    const i = p.done;
    // A stand-in (kept by its transport, or dropped by an earlier preparation of it, void since)
    // is read as it is: its meaning is its record's, and it is made again only where it is written.
    const record = records[i]!;
    const key = record.key;
    // Its first position from here on, unless an earlier record had its key.
    const first = p.positions.claim(key, i);
    // Stryker disable next-line EqualityOperator: with `===` every record goes to the work unread (the step visits them all: time only)
    if (first !== undefined) {
      // A repeated record: visited by the step. Its first occurrence is already in the work when
      // it writes something; one left out is a no-op (the baseline's entry is the same and vouched
      // for by snapshots, or newer), so the entry the repeat meets is the baseline's either way.
      p.work.push(i);
      p.repeated = true;
      continue;
    }
    const entry = byKey.get(key);
    if (entry === undefined) {
      p.work.push(i);
      if (!state.tombstones.has(key)) built.push((p.built[i] = { entity: recordAt(snapshot, i, dropped), at: p.at, bySnapshot: true, misses: 0 }));
      continue;
    }
    // The baseline's own entity (a kept record's usual case): the same without comparing.
    // Stryker disable next-line ConditionalExpression,LogicalOperator: a shortcut: sameMeaning(a, a) is true
    const same = entry.entity === record || sameMeaning(entry.entity, record);
    p.prev[i] = entry.entity;
    if (i >= p.same.length) p.same = grown(p.same, records.length);
    p.same[i] = same ? 1 : 0;
    // Stryker disable next-line ConditionalExpression: taking the entry as older only adds a record to visit (time only)
    const newer = effectiveAt(state, entry) > p.at;
    const settled = same && entry.bySnapshot && entry.misses === 0;
    // Stryker disable next-line ConditionalExpression,LogicalOperator: visiting more records than those that write only costs time
    if (!newer && !settled) p.work.push(i);
    // A no-op as long as nothing touches its key: the step needs it no more (the section above).
    // Stryker disable next-line ConditionalExpression: a stand-in is not droppable (its observedAt is another observation's), and would stand in again for the same record
    else if (dropping && same && !standsIn(dropped, i) && droppable(record, snapshot)) standIn(records, i, entry.entity, snapshot.at, snapshot.source);
  }
  p.created = p.created.withMutations((m) => {
    for (const b of built) m.set(b.entity.key, b);
  });
  // Stryker disable next-line ConditionalExpression: without it the scan below starts with no budget left, and reads nothing
  if (p.done < records.length || arriving) return false;
  if (p.ahead === undefined) {
    p.scan ??= byKey.values();
    // Stryker disable next-line EqualityOperator,UpdateOperator: reading past the budget only makes a slice longer
    for (; left > 0; left--) {
      const next = p.scan.next();
      if (next.done === true) break;
      const entity = next.value.entity;
      if (p.types.has(entity.type) && !p.positions.has(entity.key)) p.lacking.push(entity.key);
    }
    // Stryker disable next-line BooleanLiteral: an incomplete preparation said complete is void at the step (planOf): time only
    if (left <= 0) return false;
    // A first snapshot (into an empty index) has its creates built ahead instead; a repeated
    // record's second visit replaces its first one's event: both are stepped as prepared.
    // Stryker disable next-line ConditionalExpression,LogicalOperator: a first snapshot's step built ahead comes to the same (the creates built ahead are then unused: time only)
    if (p.repeated || p.intoEmpty) {
      // Stryker disable next-line BooleanLiteral: a preparation not marked complete is void at the step (planOf): time only
      p.complete = true;
      return true;
    }
    p.ahead = startAhead(p, snapshot, state);
  }
  if (!aheadHolds(p.index, p.ahead)) {
    // A write the log does not name: built again from the baseline as it is now (or, the log
    // lost, not at all: the plan is void too).
    if (p.logAt < p.index.log.base) return (p.complete = true);
    p.ahead = startAhead(p, snapshot, state);
  }
  p.complete = buildAhead(p, p.ahead, snapshot, state, left);
  return p.complete;
}

// ——— The step built ahead ———
//
// A churn step of a big snapshot still writes a few thousand entries into the Immutable map
// (an update per changed record, a delete and a tombstone per entry it lacks) and makes as many
// events: 30–60 ms in one block. The preparation therefore also builds that outcome ahead, on a
// map of its own (`entities`, `tombstones`: the baseline's as they were when it started, which
// share all but the paths they write), key by key, in the same slices. A key that a change
// touches afterwards is taken again from the baseline as it then is and decided anew (the log
// says which, as for the plan), so the map built ahead is always the baseline's as it is now with
// the snapshot's outcome applied; at the step only what changes touched since the last slice is
// left to catch up. The events are made with the decisions and put in the step's order there:
// the records' by position, then the deletions by key. A snapshot step of any type meanwhile (a
// write the log does not name) voids it, and the step is taken from the plan as before.

/** What the step does for one key. */
interface Decision {
  /** Position of the key's record, or -1 for an entry the snapshot does not hold. */
  readonly pos: number;
  /** The entry the step writes (set), null: deleted, undefined: left as it is. */
  readonly entry: BaselineEntry | null | undefined;
  /** The tombstone the step sets (a time), null: removed, undefined: left as it is. */
  readonly tombstone: number | null | undefined;
  readonly event: EntityEvent | undefined;
}

const UNCHANGED: Decision = { pos: -1, entry: undefined, tombstone: undefined, event: undefined };

interface Ahead {
  /** Position in the change log up to which touched keys were decided anew. */
  logAt: number;
  /** `unlogged` of the log when it started: another value voids it. */
  readonly unlogged: number;
  entities: ImmutableMap<string, BaselineEntry>;
  tombstones: ImmutableMap<string, number>;
  readonly decided: Map<string, Decision>;
  /** Keys to decide: the work's records' then the lacking entries', sorted; `next` is the first not yet decided. */
  readonly queue: string[];
  next: number;
  /** How many of `queue` are records' keys. */
  readonly records: number;
  /** The keys of the lacking part of `queue`. */
  readonly queued: ReadonlySet<string>;
  /** Keys of entries the snapshot does not hold that changes touched, and not in `queued`. */
  readonly late: Set<string>;
  readonly keep: ReadonlySet<string>;
}

function startAhead(p: Preparation, snapshot: SnapshotObservation, state: BaselineState): Ahead {
  const records = snapshot.records;
  const queue = p.work.map((i) => records[i]!.key);
  const n = queue.length;
  const lacking = p.lacking.slice().sort();
  for (const key of lacking) queue.push(key);
  return {
    // From where the preparation started: what changes touched while it read is decided anew too.
    logAt: p.logAt,
    unlogged: p.index.log.unlogged,
    entities: state.entities,
    tombstones: state.tombstones,
    decided: new Map(),
    queue,
    next: 0,
    records: n,
    queued: new Set(lacking),
    late: new Set(),
    keep: new Set(snapshot.keep ?? []),
  };
}

/**
 * Whether the step built ahead still describes the baseline of `index`, what the log names aside
 * (the log itself is whole from where it catches up: a preparation that started before a drop is
 * void, and it catches up from there on).
 */
function aheadHolds(index: BaselineIndex, a: Ahead): boolean {
  return a.unlogged === index.log.unlogged;
}

/**
 * What the step of `snapshot` does for `key`, the baseline being `state` (whose index `byKey`
 * is): the same reasoning as applySnapshot's visit of a record, or of an entry it lacks.
 */
function decide(p: Preparation, a: Ahead, snapshot: SnapshotObservation, state: BaselineState, key: string): Decision {
  const at = p.at;
  const prev = p.index.byKey.get(key);
  const pos = p.positions.get(key);
  if (pos === undefined) {
    // An entry the snapshot does not hold: gone if it is of its types and scope (rules 2 and 5).
    if (prev === undefined) return UNCHANGED;
    const e = prev.entity;
    if (!p.types.has(e.type) || e.scope !== snapshot.scope || a.keep.has(key) || effectiveAt(state, prev) > at) return UNCHANGED;
    const misses = prev.misses + 1;
    if (misses < Math.max(1, snapshot.missesBeforeDelete ?? 1)) return { pos: -1, entry: { ...prev, misses }, tombstone: undefined, event: undefined };
    return { pos: -1, entry: null, tombstone: at, event: event('delete', 'snapshot', e) };
  }
  if (prev === undefined) {
    const deletedAt = state.tombstones.get(key);
    // Deleted after this snapshot's request started: the snapshot is older news (rule 4).
    if (deletedAt !== undefined && deletedAt > at) return { ...UNCHANGED, pos };
    const entity = recordAt(snapshot, pos);
    return { pos, entry: { entity, at, bySnapshot: true, misses: 0 }, tombstone: deletedAt === undefined ? undefined : null, event: event('create', 'snapshot', entity) };
  }
  // Changed by a notification after this snapshot's request started (rule 4).
  if (effectiveAt(state, prev) > at) return { ...UNCHANGED, pos };
  // A stand-in's meaning is its record's (made again below only if it is written).
  const record = snapshot.records[pos]!;
  // Stryker disable next-line ConditionalExpression,LogicalOperator: a shortcut: sameMeaning(a, a) is true
  const same = prev.entity === record || (p.prev[pos] === prev.entity ? p.same[pos] === 1 : sameMeaning(prev.entity, record));
  if (same) {
    // Unchanged: syncedAt confirms it, unless a notification or a miss wrote it last.
    if (prev.bySnapshot && prev.misses === 0) return { ...UNCHANGED, pos };
    return { pos, entry: { ...prev, at, bySnapshot: true, misses: 0 }, tombstone: undefined, event: undefined };
  }
  const entity = recordAt(snapshot, pos);
  return { pos, entry: { entity, at, bySnapshot: true, misses: 0 }, tombstone: undefined, event: upsertEvent(prev, entity, 'snapshot') };
}

/**
 * Decides up to `budget` keys, the ones changes touched since the last call first (each taken
 * again from the baseline as it is now, then decided); true once every key is decided and the
 * log is caught up. Also the step's first act (with no budget), for what was touched since.
 */
function buildAhead(p: Preparation, a: Ahead, snapshot: SnapshotObservation, state: BaselineState, budget: number): boolean {
  const log = p.index.log;
  const byKey = p.index.byKey;
  let left = budget;
  const take = (key: string, em: ImmutableMap<string, BaselineEntry>, tm: ImmutableMap<string, number>): void => {
    const d = decide(p, a, snapshot, state, key);
    a.decided.set(key, d);
    if (d.entry === null) em.delete(key);
    else if (d.entry !== undefined) em.set(key, d.entry);
    if (d.tombstone === null) tm.delete(key);
    else if (d.tombstone !== undefined) tm.set(key, d.tombstone);
  };
  let caught = false;
  a.tombstones = a.tombstones.withMutations((tm) => {
    a.entities = a.entities.withMutations((em) => {
      const end = log.base + log.keys.length;
      // Stryker disable next-line ConditionalExpression,EqualityOperator: the budget only sets how much one call does
      for (; a.logAt < end && left > 0; a.logAt++, left--) {
        const key = log.keys[a.logAt - log.base]!;
        // As the baseline now has it, then as the step leaves it.
        const entry = byKey.get(key);
        if (entry === undefined) em.delete(key);
        else em.set(key, entry);
        const deletedAt = state.tombstones.get(key);
        if (deletedAt === undefined) tm.delete(key);
        else tm.set(key, deletedAt);
        take(key, em, tm);
        if (!p.positions.has(key) && !a.queued.has(key)) a.late.add(key);
      }
      // Stryker disable next-line ConditionalExpression,EqualityOperator: deciding queued keys before the log is caught up only decides some twice (the catch-up takes them again): time only
      caught = a.logAt === end;
      // Stryker disable next-line ConditionalExpression,EqualityOperator,LogicalOperator: the budget only sets how much one call does
      for (; caught && a.next < a.queue.length && left > 0; a.next++, left--) take(a.queue[a.next]!, em, tm);
    });
  });
  return caught && a.next === a.queue.length;
}

/**
 * What the step of `snapshot` may skip: the records to visit and the entries it may lack, or
 * undefined when no complete preparation holds for this index and state (visit everything).
 */
function planOf(snapshot: SnapshotObservation, index: BaselineIndex, at: number): { work: number[]; lacking: Iterable<string>; prepared: Preparation; ahead?: Ahead } | undefined {
  const p = preparations.get(snapshot);
  if (p === undefined) return undefined;
  preparations.delete(snapshot);
  if (!p.complete || p.index !== index) return undefined;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: only a clock-corrected snapshot steps at another time than it was read at, and it is a new object, which finds no preparation
  if (p.at !== at) return undefined;
  // The log was dropped since the preparation started: what changed meanwhile is lost.
  // Stryker disable next-line EqualityOperator: `<=` also voids a plan started at the log's base (its step visits everything: time only); `>=` is killed by diffAgainstBaseline.changelog.test.ts
  if (p.logAt < index.log.base) return undefined;
  // Another snapshot of its types went in meanwhile: it wrote what the log does not say.
  if (!snapshotsHold(p)) return undefined;
  if (p.ahead !== undefined && aheadHolds(index, p.ahead)) return { work: p.work, lacking: p.lacking, prepared: p, ahead: p.ahead };
  // Stryker disable next-line MethodExpression: the whole log names keys changed before the preparation too, visited again for nothing (time only)
  const touched = index.log.keys.slice(p.logAt - index.log.base);
  if (touched.length === 0) return { work: p.work, lacking: p.lacking, prepared: p };
  const work = new Set(p.work);
  const lacking = new Set(p.lacking);
  /** Keys whose create built ahead no longer holds. */
  // Stryker disable next-line ArrayDeclaration: a key that is not in the map is deleted for nothing (time only)
  const unbuilt: string[] = [];
  for (const key of touched) {
    const i = p.positions.get(key);
    if (i === undefined) lacking.add(key);
    else {
      work.add(i);
      // A create built ahead for it no longer holds: the step visits the record as any other.
      // Stryker disable next-line ConditionalExpression: a key without a create built ahead is not in the map; deleting it changes nothing (time only)
      if (p.built[i] !== undefined) unbuilt.push(key);
      p.built[i] = undefined;
    }
  }
  // Only those are in the map. Not the whole log: during back-to-back polls it names thousands
  // of notified keys, each hashed anew by Immutable to find nothing (a churn snapshot built none).
  // Stryker disable next-line ConditionalExpression,EqualityOperator: deleting no keys changes nothing (time only)
  if (unbuilt.length > 0) p.created = p.created.deleteAll(unbuilt);
  return { work: [...work].sort((a, b) => a - b), lacking, prepared: p };
}

function applySnapshot(state: BaselineState, snapshot: SnapshotObservation, at: number): BaselineStep {
  const events: EntityEvent[] = [];
  const touched: string[] = [];
  const types = new Set<EntityType>(snapshot.types);
  const scope = snapshot.scope;
  const missesBeforeDelete = Math.max(1, snapshot.missesBeforeDelete ?? 1);
  const baselineIndex = indexOf(state);
  const index = baselineIndex.byKey;
  const plan = planOf(snapshot, baselineIndex, at);
  // Stryker disable next-line ArithmeticOperator: the counts are only compared for equality with those a preparation took; counting down tells steps apart as well
  for (const type of types) baselineIndex.log.snapshots.set(type, (baselineIndex.log.snapshots.get(type) ?? 0) + 1);
  baselineIndex.log.unlogged++;
  if (plan?.ahead !== undefined) return stepAhead(state, snapshot, plan.prepared, plan.ahead, baselineIndex);
  // The keys this step visited (all the snapshot's, unless a preparation says which): the
  // snapshot holds them, and a key visited twice is a repeated record. Into an empty index (a
  // first snapshot) not needed: every entry the step finds there it made, from a record of this
  // snapshot, so a key found is a repeated record and no entry can be lacking.
  const visited = index.size === 0 ? undefined : new Set<string>();
  let tombstones = state.tombstones;
  const records = snapshot.records;
  // The creates built ahead, joined to the baseline's map: their keys are in neither the baseline
  // nor its tombstones (read so, and nothing touched them since), so the join is a disjoint union,
  // made by setting the smaller map's entries into the larger one.
  const created = plan?.prepared.created;
  let start = state.entities;
  if (created !== undefined) {
    // Stryker disable next-line ConditionalExpression,EqualityOperator: a disjoint union either way; setting the smaller map's entries into the larger one is only faster
    start = created.size > start.size ? created.merge(start) : start.merge(created);
  }
  const built = plan?.prepared.built;
  const dropped = standInsOf(records);
  const entities = start.withMutations((map) => {
    const visit = (i: number): void => {
      // A stand-in's meaning is its record's: the record is made again only where it is written.
      const record = records[i]!;
      const key = record.key;
      const ahead = built?.[i];
      // Stryker disable next-line BlockStatement: a shortcut: the lines below make the same entry and create for a record new to the baseline
      if (ahead !== undefined) {
        // What the lines below do for a new record, its entry already in the map.
        index.set(key, ahead);
        touched.push(key);
        visited?.add(key);
        events.push(event('create', 'snapshot', ahead.entity));
        return;
      }
      const prev = index.get(key);
      let repeated = prev !== undefined;
      if (visited !== undefined) {
        const before = visited.size;
        // Stryker disable next-line BooleanLiteral: a first visit taken for a repeat finds no create of its key among this step's events, and goes on as a first visit
        if (visited.add(key).size !== before) repeated = false;
      }
      if (repeated) {
        // A page repeated a record: one created earlier in this same snapshot gets one create, the last state.
        const last = events.findLastIndex((e) => e.entity.key === key);
        if (last >= 0 && events[last]!.action === 'create') {
          const entity = recordAt(snapshot, i, dropped);
          const entry: BaselineEntry = { entity, at, bySnapshot: true, misses: 0 };
          map.set(key, entry);
          index.set(key, entry);
          touched.push(key);
          events[last] = event('create', 'snapshot', entity);
          return;
        }
      }
      // (An empty map's get returns at once: no shortcut for it.)
      if (prev === undefined) {
        const deletedAt = tombstones.get(key);
        if (deletedAt !== undefined) {
          // Deleted after this snapshot's request started: the snapshot is older news (rule 4).
          if (deletedAt > at) return;
          tombstones = tombstones.delete(key);
        }
      }
      if (prev !== undefined) {
        // Changed by a notification after this snapshot's request started (rule 4).
        if (effectiveAt(state, prev) > at) return;
        // The baseline's own entity (a kept record's usual case): the same without comparing.
        // Stryker disable next-line ConditionalExpression,LogicalOperator: a shortcut: sameMeaning(a, a) is true
        const same = prev.entity === record || (plan !== undefined && plan.prepared.prev[i] === prev.entity ? plan.prepared.same[i] === 1 : sameMeaning(prev.entity, record));
        if (same) {
          // Unchanged: syncedAt confirms it, unless a notification or a miss wrote it last.
          if (!prev.bySnapshot || prev.misses > 0) {
            const entry: BaselineEntry = { ...prev, at, bySnapshot: true, misses: 0 };
            map.set(key, entry);
            index.set(key, entry);
            touched.push(key);
          }
          return;
        }
      }
      const entity = recordAt(snapshot, i, dropped);
      const entry: BaselineEntry = { entity, at, bySnapshot: true, misses: 0 };
      map.set(key, entry);
      index.set(key, entry);
      touched.push(key);
      events.push(upsertEvent(prev, entity, 'snapshot'));
    };
    if (plan === undefined) for (let i = 0; i < records.length; i++) visit(i);
    else for (const i of plan.work) visit(i);
    // Complete for its types within its scope (rules 2 and 5): whatever of those it did not hold
    // is gone — in key order, so the events do not depend on the index's history.
    const missing: string[] = [];
    if (visited !== undefined) {
      // Stryker disable next-line ArrayDeclaration: a made-up key is in no baseline, so holds nothing
      for (const key of snapshot.keep ?? []) visited.add(key);
      const consider = (entry: BaselineEntry): void => {
        const e = entry.entity;
        if (types.has(e.type) && e.scope === scope && !visited.has(e.key) && effectiveAt(state, entry) <= at) missing.push(e.key);
      };
      if (plan === undefined) for (const entry of index.values()) consider(entry);
      else
        for (const key of plan.lacking) {
          const entry = index.get(key);
          if (entry !== undefined) consider(entry);
        }
    }
    for (const key of missing.sort()) {
      const entry = index.get(key)!;
      const misses = entry.misses + 1;
      if (misses < missesBeforeDelete) {
        const missed: BaselineEntry = { ...entry, misses };
        map.set(key, missed);
        index.set(key, missed);
        touched.push(key);
        continue;
      }
      touched.push(key);
      map.delete(key);
      index.delete(key);
      tombstones = tombstones.set(key, at);
      baselineIndex.expiry.push(at, key);
      events.push(event('delete', 'snapshot', entry.entity));
    }
  });
  const syncedAt = state.syncedAt.withMutations((m) => {
    for (const type of types) {
      const name = scopedType(type, scope);
      m.set(name, Math.max(at, m.get(name) ?? 0));
    }
  });
  return { state: withIndex(baseline(entities, tombstones, syncedAt, state.clock, baselineIndex), baselineIndex), events, observation: snapshot, touched };
}

/** The step of a snapshot built ahead: what changes touched since its last slice caught up, then its outcome taken. */
function stepAhead(state: BaselineState, snapshot: SnapshotObservation, p: Preparation, a: Ahead, baselineIndex: BaselineIndex): BaselineStep {
  buildAhead(p, a, snapshot, state, Infinity);
  const index = baselineIndex.byKey;
  const events: EntityEvent[] = [];
  const touched: string[] = [];
  /** The records' decisions that write, in the order of their positions. */
  const writes: Decision[] = [];
  for (const [key, d] of a.decided) {
    if (d.entry === undefined) continue;
    if (d.entry === null) index.delete(key);
    else index.set(key, d.entry);
    if (typeof d.tombstone === 'number') baselineIndex.expiry.push(d.tombstone, key);
    if (d.pos >= 0) writes.push(d);
  }
  writes.sort((x, y) => x.pos - y.pos);
  for (const d of writes) {
    touched.push(snapshot.records[d.pos]!.key);
    if (d.event !== undefined) events.push(d.event);
  }
  // The entries it lacks, in key order: the queue's, sorted, merged with those changes touched since.
  const gone = (key: string): void => {
    const d = a.decided.get(key)!;
    if (d.entry === undefined) return;
    touched.push(key);
    if (d.event !== undefined) events.push(d.event);
  };
  const late: string[] = [];
  for (const key of a.late) if (a.decided.get(key)!.entry !== undefined) late.push(key);
  late.sort();
  let j = 0;
  for (let i = a.records; i < a.queue.length; i++) {
    const key = a.queue[i]!;
    for (; j < late.length && late[j]! < key; j++) gone(late[j]!);
    gone(key);
  }
  for (; j < late.length; j++) gone(late[j]!);
  const syncedAt = state.syncedAt.withMutations((m) => {
    for (const type of snapshot.types) {
      const name = scopedType(type, snapshot.scope);
      m.set(name, Math.max(p.at, m.get(name) ?? 0));
    }
  });
  return { state: withIndex(baseline(a.entities, a.tombstones, syncedAt, state.clock, baselineIndex), baselineIndex), events, observation: snapshot, touched };
}

function applyUpsert(state: BaselineState, change: ChangeObservation, at: number, index: EntryIndex): BaselineStep {
  const entity = change.record;
  const key = entity.key;
  const prev = index.get(key);
  const deletedAt = state.tombstones.get(key);
  // Deleted at or after this notification was stamped: a late or redelivered message.
  if (deletedAt !== undefined && deletedAt >= at) return { state, events: [], observation: change };
  // Immutable's delete of a key it lacks returns the same map.
  const tombstones = state.tombstones.delete(key);
  const same = prev !== undefined && sameMeaning(prev.entity, entity);
  const entry: BaselineEntry = { entity: same ? prev.entity : entity, at, bySnapshot: false, misses: 0 };
  index.set(key, entry);
  const entities = state.entities.set(key, entry);
  return {
    state: baseline(entities, tombstones, state.syncedAt, state.clock, state.index),
    events: same ? [] : [upsertEvent(prev, entity, 'notification')],
    observation: change,
  };
}

function applyDelete(state: BaselineState, change: ChangeObservation, at: number, baselineIndex: BaselineIndex): BaselineStep {
  const index = baselineIndex.byKey;
  const key = change.record.key;
  const prev = index.get(key);
  // Remember the deletion even for an unknown entity: a create that arrives late stays out.
  const deletedAt = state.tombstones.get(key);
  // Stryker disable next-line ConditionalExpression: setting the same time again only queues a second entry, skipped when popped
  if (deletedAt === undefined || deletedAt < at) baselineIndex.expiry.push(at, key);
  const tombstones = state.tombstones.set(key, Math.max(at, deletedAt ?? 0));
  if (prev === undefined) return { state: baseline(state.entities, tombstones, state.syncedAt, state.clock, state.index), events: [], observation: change };
  index.delete(key);
  const entities = state.entities.delete(key);
  return { state: baseline(entities, tombstones, state.syncedAt, state.clock, state.index), events: [event('delete', 'notification', prev.entity)], observation: change };
}

/**
 * The entity a patch makes of the one the baseline holds: the fields it sets replace, attributes
 * name by name (undefined removes one); `observedAt` and `source` are the patch's.
 */
function patched(prev: Entity, patch: EntityPatch): Entity {
  let attributes = prev.attributes;
  if (patch.attributes !== undefined) {
    const merged: Record<string, unknown> = { ...prev.attributes };
    for (const name of Object.keys(patch.attributes)) {
      const v = patch.attributes[name];
      if (v === undefined) delete merged[name];
      else merged[name] = v;
    }
    attributes = canonicalize(merged);
  }
  // A spread of prev: the entity keeps normalizeEntity's shape and field order.
  const entity: Entity = {
    ...prev,
    name: 'name' in patch ? patch.name : prev.name,
    state: patch.state ?? prev.state,
    project: 'project' in patch ? patch.project : prev.project,
    parents: patch.parents ?? prev.parents,
    children: patch.children ?? prev.children,
    observedAt: patch.observedAt,
    source: patch.source,
    attributes,
  };
  if (patch.raw !== undefined) entity.raw = patch.raw;
  return entity;
}

/**
 * A patch onto the entity the baseline holds, then as an upsert of the result (rules 3 and 4). An
 * entity it does not hold (never seen, or deleted) gets nothing: a patch is no whole entity, and
 * the next complete observation (a poll) brings it whole.
 */
function applyPatch(state: BaselineState, patch: PatchObservation, at: number, index: EntryIndex): BaselineStep {
  const prev = index.get(patch.record.key);
  if (prev === undefined) return { state, events: [], observation: patch };
  const change: ChangeObservation = { kind: 'change', source: patch.source, action: 'upsert', at: patch.at, record: patched(prev.entity, patch.record) };
  return { ...applyUpsert(state, change, at, index), observation: patch };
}

function applyChange(state: BaselineState, change: ChangeObservation | PatchObservation, at: number): BaselineStep {
  const baselineIndex = indexOf(state);
  const index = baselineIndex.byKey;
  logChange(baselineIndex, change.record.key);
  const step = ((): BaselineStep => {
    const prev = index.get(change.record.key);
    // Older than what the baseline already holds: never overrides it (rule 4).
    if (prev !== undefined && effectiveAt(state, prev) > at) return { state, events: [], observation: change };
    if (change.kind === 'patch') return applyPatch(state, change, at, index);
    // A switch, not ts-pattern, on this per-message path: it costs nothing and `never` keeps it exhaustive.
    switch (change.action) {
      case 'upsert':
        return applyUpsert(state, change, at, index);
      case 'delete':
        return applyDelete(state, change, at, baselineIndex);
      default:
        // Stryker disable next-line StringLiteral: an exhaustiveness guard (`never`): no change reaches it
        return unreachable(change.action, 'change action');
    }
  })();
  return { ...step, state: withIndex(step.state, baselineIndex) };
}

/**
 * Drops the tombstones older than the window at every step: a few at a time, popped
 * from the queue by time. (Done ten times per window, as before, the step that crossed a tenth
 * deleted a tenth of them from the Immutable map at once: 60,000 at the default window and 1,000
 * deletions a second, 120–380 ms in one step.) Each key expired is logged like a change's, so a
 * step built ahead catches it up instead of being void.
 */
function expireTombstones(state: BaselineState, at: number, tombstoneMs: number): BaselineState {
  const clock = Math.max(state.clock, at);
  const horizon = clock - tombstoneMs;
  const index = indexOf(state);
  // Nothing due (a look at the queue's head): the same state, but for the clock.
  // Stryker disable next-line ConditionalExpression,EqualityOperator: a shortcut (with `>`, an entry at the horizon is not popped either: the same map)
  if (index.expiry.nextAt >= horizon) return withIndex(clock === state.clock ? state : baseline(state.entities, state.tombstones, state.syncedAt, clock, index), index);
  const tombstones = state.tombstones.withMutations((kept) => {
    index.expiry.popBefore(horizon, (key, deletedAt) => {
      // An entry whose key has another time (or none) is stale: the tombstone it stood for is gone.
      if (kept.get(key) !== deletedAt) return;
      kept.delete(key);
      logChange(index, key);
    });
  });
  return withIndex(baseline(state.entities, tombstones, state.syncedAt, clock, index), index);
}

/**
 * The baseline's reducer: the state after `observation`, with the events it causes.
 * Pure: the previous state is left as it was (the local clock, `options.now`, is read only to
 * bound an observation's time, rule 8).
 */
export function applyObservation(state: BaselineState, observation: Observation, options: DiffOptions = {}): BaselineStep {
  const stamped = timeOf(observation);
  const corrected = correctClock(observation, stamped, options);
  const at = corrected?.at ?? stamped;
  const taken = corrected?.observation ?? observation;
  const current = expireTombstones(state, at, options.tombstoneMs ?? DEFAULT_TOMBSTONE_MS);
  const step = ((): BaselineStep => {
    switch (taken.kind) {
      case 'snapshot':
        // Records still arriving, taken as they are, would delete the rest (rule 2).
        if (taken.pages !== undefined) throw new Error(`a snapshot of ${taken.source} (${taken.types.join(', ')}) still has its pages: normalizeEntity reads them before the baseline`);
        return applySnapshot(current, taken, at);
      case 'change':
      case 'patch':
        return applyChange(current, taken, at);
      default:
        // Stryker disable next-line StringLiteral: an exhaustiveness guard (`never`): no observation reaches it
        return unreachable(taken, 'observation');
    }
  })();
  return corrected === undefined ? step : { ...step, skewedAt: observation.at };
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
 * 2. A snapshot is complete for its `types` within its `scope`: baseline entities of those types
 *    and that scope it lacks are deleted (after `missesBeforeDelete` snapshots in a row). Other
 *    types, and other scopes, are left alone.
 * 3. A change upserts or deletes one entity. A patch sets some fields of the entity the baseline
 *    holds (then as an upsert of the result); of an entity it does not hold, it makes nothing.
 * 4. An older observation never overrides a newer one: a snapshot started before a notification
 *    that changed an entity leaves that entity alone, and a deleted entity keeps a tombstone for
 *    `tombstoneMs` so a late or redelivered older notification cannot bring it back.
 * 5. An observation stamped more than `maxClockSkewMs` ahead of the local clock (`now`) is taken
 *    at the local time (rule 8): nothing can pin an entity or stop tombstone expiry.
 * 6. Update events list the `changed` fields; delete events carry the last known entity. Each
 *    event's `hash` (entityHash of its entity) is computed when first read.
 * 7. Completes and errors with the source.
 *
 * @example
 * ```ts
 * merge(nova$, bus$).pipe(diffAgainstBaseline({ tombstoneMs: 600_000 })).subscribe((e) => console.log(e.action, e.entity.key));
 * ```
 */
export function diffAgainstBaseline(options: DiffOptions = {}): OperatorFunction<Observation, EntityEvent> {
  return (source$) => source$.pipe(baselineSteps(options), mergeMap((step) => step.events));
}
