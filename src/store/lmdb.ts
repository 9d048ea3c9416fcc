/**
 * The state store: the baseline kept in LMDB (lmdb-js) in a folder, so a restart is not amnesia.
 * Chosen by measurement among stores that install from the npm registry alone (docs/store.md):
 * LMDB's copy-on-write B-tree survives kill -9 at any point with the last committed transaction,
 * reads are synchronous and fast (the load at start), and one transaction takes a whole snapshot.
 *
 * Layout (version 4): two environments, each with its own write lock.
 *   baseline.mdb, the folded table, written only by the fold worker (fold.ts):
 *     meta        format → {format, version}; syncedAt → {type: ms}; clock → ms; owners → {type: source};
 *                 folded → the id of the last log segment folded in
 *     entities    entity key → [type, id, name, state, project, parents, children, observedAt, source,
 *                                   attributes, at, bySnapshot (0/1), misses, scope?]   (see StoredEntry)
 *     tombstones  entity key → deletion time, ms
 *   log.mdb, what the main thread writes, one transaction per group commit:
 *     segments    id (a growing integer) → one JSON text: the changes of a group commit (fold.ts, Segment),
 *                 deleted once folded
 *     outbox      id (a growing integer) → the events of one step, written with the step before they
 *                 are emitted and deleted once every sink took them over (see StoredEvent)
 * The baseline is the table with the segments after `folded` applied in order.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Map as ImmutableMap } from 'immutable';
import { createRequire } from 'node:module';
import type { Database, RootDatabase, open as OpenLmdb } from 'lmdb';
import { type BaselineEntry, type BaselineState, entityEvent, entryOf, restoreBaseline } from '../../operators/diffAgainstBaseline.js';
import { type Logger, errorMessage, silentLogger } from '../log.js';
import type { Entity, EntityEvent, EntityRef, EntityType } from '../model.js';
import { type Segment, type SegmentHeader, type SegmentRow, type StoredEntry, createFolder, unpackRow } from './fold.js';

export const STATE_FORMAT = 'synchronizer.state';
/** Bump on an incompatible change of the layout, and add the step from the previous one to MIGRATIONS. */
export const STATE_VERSION = 4;
const FILE = 'baseline.mdb';
const LOG_FILE = 'log.mdb';
/** What LMDB keeps in the folder: the data files and their lock files. */
const OWN_FILES = new Set([FILE, `${FILE}-lock`, LOG_FILE, `${LOG_FILE}-lock`]);

interface Databases {
  meta: Database;
  entities: Database;
  tombstones: Database;
  /** baseline.mdb's outbox, format 3 (gone in 4). */
  outbox: Database;
  /** log.mdb's outbox (format 4). */
  logOutbox: Database;
}

/**
 * Steps from an older format version to the next (index = the old version). A store of a version
 * without a step here is refused.
 */
const MIGRATIONS: Record<number, (store: Databases) => void> = {
  // 1 → 2: entries from {entity, at, bySnapshot, misses} objects to StoredEntry arrays.
  1: ({ entities }) => {
    for (const { key, value } of entities.getRange()) {
      const v = value as { entity: Entity; at: number; bySnapshot: boolean; misses: number };
      entities.putSync(key, stored({ entity: v.entity, at: v.at, bySnapshot: v.bySnapshot, misses: v.misses }));
    }
  },
  // 2 → 3: the outbox database, empty (a version-2 store acked only what it had written).
  2: () => undefined,
  // 3 → 4: the outbox moves to log.mdb (same ids, same records). Copied first, then emptied here in
  // the transaction that sets version 4: a crash in between copies the same records again.
  3: ({ outbox, logOutbox }) => {
    for (const { key, value } of outbox.getRange()) logOutbox.putSync(key, value);
    outbox.clearSync();
  },
};

/** The state folder cannot be used: foreign, corrupt, or from another version. Nothing in it was changed. */
export class StateError extends Error {
  override name = 'StateError';
}

/** The events of one step, kept from before they are emitted until every sink took them over. */
export interface OutboxEntry {
  id: number;
  events: readonly EntityEvent[];
}

/** What the store holds, ready for the hub. */
export interface StoredBaseline {
  state: BaselineState;
  /** Entity type → the source that owns its snapshots. */
  owners: Map<EntityType, string>;
  /** Events written but not known to have reached every sink, oldest first: emit them again. */
  outbox: OutboxEntry[];
  /** The highest outbox id held (0 for none); new entries are numbered after it, so ids keep the order. */
  lastOutboxId: number;
}

/** What one group commit writes: the changes from the last persisted state to `next`. */
export interface BaselineDelta {
  prev: BaselineState;
  next: BaselineState;
  /**
   * Keys whose entries changed since `prev` (a key may repeat): each is written as `next` holds
   * it (removed if `next` has none), without comparing it with `prev`. Undefined: compare every
   * entry with `prev` (a snapshot whose step did not say what it touched).
   */
  keys: Iterable<string> | undefined;
  owners: ReadonlyMap<EntityType, string>;
  /** Outbox entries to add (the events of the steps up to `next`) and ids to delete, in the same transaction. */
  outbox?: { add: readonly OutboxEntry[]; remove: readonly number[] };
}

export interface BaselineStore {
  readonly dir: string;
  /** The stored baseline (synchronous: LMDB reads are memory-mapped). Once per open store: it closes baseline.mdb for this thread. */
  load(): StoredBaseline;
  /** Writes one delta as one transaction; resolves once it is committed. */
  write(delta: BaselineDelta): Promise<void>;
  /** Bytes written to the log and not yet folded into the table (the commit line's backpressure). */
  unfoldedBytes?(): number;
  close(): Promise<void>;
}

/*
 * A stored entry (StoredEntry, fold.ts) is the entity's fields and the entry's, by position. Not
 * `raw` (never persisted: memory and disk), not `key` (the database key). Positions rather than an
 * object: measured on 100k Nova servers, JSON.stringify of the array takes ~0.6× the time of the
 * object (whose copy without `raw` cost a rest spread too) and 384 bytes instead of 574, and
 * parsing it back is faster.
 */

/**
 * An outbox event: a create or an update names its entity by key only (the entity is the entry
 * written in the same transaction, so a snapshot's 100k creates cost 100k keys, not a second copy of
 * 100k entities); a delete carries the entity, which the baseline no longer holds. Re-emitted, a
 * create or update shows the entity as the store holds it then (the newest state: a consumer
 * applies an event as the current state); one whose entity was deleted since is left out, as a
 * later outbox entry holds that delete.
 */
type StoredEvent =
  | [action: 'create' | 'update', origin: 's' | 'n', key: string, changed: string[] | 0]
  | [action: 'delete', origin: 's' | 'n', key: string, changed: 0, entity: StoredEntity];

/** The entity's part of a StoredEntry. */
type StoredEntity = [
  type: EntityType,
  id: string,
  name: string | null,
  state: string,
  project: string | null,
  parents: EntityRef[],
  children: EntityRef[],
  observedAt: string,
  source: string,
  attributes: Record<string, unknown>,
];

const NO_REFS: EntityRef[] = Object.freeze([]) as unknown as EntityRef[];

function storedEvent(e: EntityEvent): StoredEvent {
  const origin = e.origin === 'snapshot' ? 's' : 'n';
  if (e.action === 'delete') {
    const x = e.entity;
    return ['delete', origin, x.key, 0, [x.type, x.id, x.name ?? null, x.state, x.project ?? null, x.parents, x.children, x.observedAt, x.source, x.attributes]];
  }
  return [e.action, origin, e.entity.key, e.changed ?? 0];
}

/** An outbox event back, or undefined for a create/update whose entity is gone since. */
function restoredEvent(v: StoredEvent, entries: ReadonlyMap<string, BaselineEntry>): EntityEvent | undefined {
  const origin = v[1] === 's' ? 'snapshot' : 'notification';
  const entity = v[0] === 'delete' ? restoredEntity(v[2], v[4]) : entries.get(v[2])?.entity;
  if (entity === undefined) return undefined;
  return entityEvent(v[0], origin, entity, v[3] === 0 ? undefined : v[3]);
}

function stored(entry: BaselineEntry): StoredEntry {
  const e = entry.entity;
  const v: StoredEntry = [e.type, e.id, e.name ?? null, e.state, e.project ?? null, e.parents, e.children, e.observedAt, e.source, e.attributes, entry.at, entry.bySnapshot ? 1 : 0, entry.misses];
  if (e.scope !== undefined) v.push(e.scope);
  return v;
}

/** An entry back from its stored form, the entity in normalizeEntity's shape (one hidden class for all). */
function restored(key: string, v: StoredEntry): BaselineEntry {
  return { entity: restoredEntity(key, v), at: v[10], bySnapshot: v[11] === 1, misses: v[12] };
}

function restoredEntity(key: string, v: StoredEntity | StoredEntry): Entity {
  return {
    key,
    type: v[0],
    id: v[1],
    scope: v[13],
    name: v[2] ?? undefined,
    state: v[3],
    project: v[4] ?? undefined,
    // Share one frozen empty list, as normalizeEntity does (memory per entity).
    parents: v[5].length === 0 ? NO_REFS : v[5],
    children: v[6].length === 0 ? NO_REFS : v[6],
    observedAt: v[7],
    source: v[8],
    attributes: v[9],
  };
}

/** Refuses a folder that holds anything but LMDB's two files: it is someone else's. */
function checkFolder(dir: string): void {
  if (!existsSync(dir)) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new StateError(`cannot create the state folder ${dir}: ${errorMessage(e)}`, { cause: e });
    }
    return;
  }
  if (!statSync(dir).isDirectory()) throw new StateError(`state.dir ${dir} is not a folder`);
  const foreign = readdirSync(dir).filter((f) => !OWN_FILES.has(f));
  if (foreign.length > 0) {
    throw new StateError(
      `state.dir ${dir} holds files that are not the synchronizer's (${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', …' : ''}): ` +
        'give it an empty or new folder; nothing was changed',
    );
  }
}

/**
 * lmdb is loaded on the first open, not with this module: the CLI and the library without
 * `state` do not pay for a native module they do not use (a noticeable part of start-up).
 */
let lmdbOpen: typeof OpenLmdb | undefined;
function openLmdb(...args: Parameters<typeof OpenLmdb>): ReturnType<typeof OpenLmdb> {
  lmdbOpen ??= (createRequire(import.meta.url)('lmdb') as { open: typeof OpenLmdb }).open;
  return lmdbOpen(...args);
}

/** LMDB's meta pages (the first two) start with this magic number, after the 16-byte page header. */
const LMDB_MAGIC = 0xbeefc0de;

/**
 * LMDB trusts its file (a garbage one crashes the process in native code), so the data file's
 * first meta page is checked before it is opened.
 */
function checkDataFile(file: string): void {
  if (!existsSync(file)) return;
  const { size } = statSync(file);
  if (size === 0) return;
  const header = Buffer.alloc(32);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, 32, 0);
  } finally {
    closeSync(fd);
  }
  if (size < 2 * 4096 || header.readUInt32LE(24) !== LMDB_MAGIC) {
    throw new StateError(`${file} is not an LMDB data file (corrupt, or someone else's): it is left as it is; move the folder away to start afresh`);
  }
}

/** Loggers of the stores open now: where lmdb-js's own error output goes instead of the console. */
const lmdbLogs = new Set<Logger>();
let consoleWrapped = false;

/** True when console.error was called from lmdb-js's code (the frame after the wrapper's). */
function calledFromLmdb(): boolean {
  const frames = (new Error().stack ?? '').split('\n');
  // [0] "Error", [1] this function, [2] the wrapper, [3] its caller.
  return /[\\/]lmdb[\\/]/.test(frames[3] ?? '');
}

/**
 * lmdb-js writes a failed commit's error to console.error itself (`Error: Input/output error`),
 * outside our log format; the same failure rejects the write, which the commit line reports (state
 * health, our log). While a store is open, an Error lmdb-js hands to console.error goes to the
 * store's log at debug instead; anything else passes through untouched.
 */
function routeLmdbConsole(log: Logger): () => void {
  lmdbLogs.add(log);
  if (!consoleWrapped) {
    consoleWrapped = true;
    const original = console.error;
    console.error = function (this: unknown, ...args: unknown[]): void {
      const [first] = lmdbLogs;
      if (first !== undefined && args.length === 1 && args[0] instanceof Error && calledFromLmdb()) {
        first.debug('state: lmdb reported an error (the failed write reports it too)', { error: args[0] });
        return;
      }
      original.apply(this, args);
    };
  }
  return () => void lmdbLogs.delete(log);
}

const utf8 = new TextEncoder();

/** The segment header of an entry: what most rows of a snapshot's write have in common. */
function header(entry: BaselineEntry): SegmentHeader {
  const e = entry.entity;
  return [e.type, e.source, entry.at, entry.bySnapshot ? 1 : 0, entry.misses, e.observedAt];
}

/**
 * An entry as a segment row: compact when it has the header's common fields, no scope, and the
 * key `<type>:<id>` (as entityKey makes it), so the id need not be written.
 */
function row(key: string, entry: BaselineEntry, h: SegmentHeader): SegmentRow {
  const e = entry.entity;
  if (
    e.scope === undefined &&
    e.type === h[0] &&
    e.source === h[1] &&
    entry.at === h[2] &&
    (entry.bySnapshot ? 1 : 0) === h[3] &&
    entry.misses === h[4] &&
    e.observedAt === h[5] &&
    key.length === h[0].length + 1 + e.id.length &&
    key.endsWith(e.id)
  ) {
    return [key, e.name ?? null, e.state, e.project ?? null, e.parents, e.children, e.attributes];
  }
  return [key, ...stored(entry)];
}

/**
 * Opens (creating if needed) the store in `dir`. Throws a StateError for a foreign, corrupt or
 * newer folder, and leaves it as it was. `log` takes what lmdb-js itself would print.
 */
export function openBaselineStore(dirOption: string, { log = silentLogger }: { log?: Logger } = {}): BaselineStore {
  const dir = resolve(dirOption);
  checkFolder(dir);
  checkDataFile(join(dir, FILE));
  checkDataFile(join(dir, LOG_FILE));
  let root!: RootDatabase;
  let meta!: Database;
  let entities!: Database<StoredEntry, string>;
  let tombstones!: Database<number, string>;
  let oldOutbox!: Database<StoredEvent[], number>;
  let logRoot!: RootDatabase;
  let segments!: Database<Uint8Array, number>;
  let outbox!: Database<StoredEvent[], number>;
  const openLog = (): void => {
    logRoot = openLmdb({ path: join(dir, LOG_FILE), maxDbs: 4 });
    segments = logRoot.openDB<Uint8Array, number>({ name: 'segments', encoding: 'binary' });
    outbox = logRoot.openDB<StoredEvent[], number>({ name: 'outbox', encoding: 'json' });
  };
  try {
    root = openLmdb({ path: join(dir, FILE), maxDbs: 8 });
    meta = root.openDB({ name: 'meta', encoding: 'json' });
    entities = root.openDB<StoredEntry, string>({ name: 'entities', encoding: 'json' });
    tombstones = root.openDB<number, string>({ name: 'tombstones', encoding: 'json' });
    oldOutbox = root.openDB<StoredEvent[], number>({ name: 'outbox', encoding: 'json' });
    openLog();
  } catch (e) {
    throw new StateError(`cannot open the state store in ${dir} (corrupt, or not a synchronizer state folder): ${errorMessage(e)}; nothing was changed`, { cause: e });
  }
  const refuse = (why: string, cause?: unknown): never => {
    void root.close();
    void logRoot.close();
    throw new StateError(`state.dir ${dir}: ${why}; nothing was changed`, cause === undefined ? undefined : { cause });
  };
  let format: { format?: unknown; version?: unknown } | undefined;
  try {
    format = meta.get('format') as typeof format;
  } catch (e) {
    refuse(`cannot read the store (corrupt?): ${errorMessage(e)}`, e);
  }
  const foreignIn = (env: RootDatabase, own: readonly string[]): string[] =>
    [...env.getKeys({ limit: 10 })].map(String).filter((k) => !own.includes(k));
  const foreignLog = foreignIn(logRoot, ['segments', 'outbox']);
  if (foreignLog.length > 0) refuse(`${LOG_FILE} is an LMDB file but not a synchronizer state log (it holds ${foreignLog.join(', ')})`);
  if (format === undefined) {
    // A new store, or an LMDB file of someone else's.
    const names = foreignIn(root, ['meta', 'entities', 'tombstones', 'outbox']);
    if (names.length > 0) refuse(`${FILE} is an LMDB file but not a synchronizer state store (it holds ${names.join(', ')})`);
    meta.putSync('format', { format: STATE_FORMAT, version: STATE_VERSION });
  } else if (format.format !== STATE_FORMAT || typeof format.version !== 'number') {
    refuse(`${FILE} is not a synchronizer state store (format ${JSON.stringify(format)})`);
  } else if (format.version > STATE_VERSION) {
    refuse(`the store was written by a newer synchronizer (format version ${format.version}; this one reads up to ${STATE_VERSION}): upgrade, or start afresh with a new folder`);
  } else if (format.version < STATE_VERSION) {
    for (let v = format.version; v < STATE_VERSION; v++) {
      const step = MIGRATIONS[v];
      if (!step) refuse(`the store has format version ${format.version}, which this synchronizer cannot migrate (it reads ${STATE_VERSION}): start afresh with a new folder`);
      // A step writing log.mdb too does so in a transaction of its own, inside this one.
      logRoot.transactionSync(() =>
        root.transactionSync(() => {
          step!({ meta, entities, tombstones, outbox: oldOutbox, logOutbox: outbox });
          meta.putSync('format', { format: STATE_FORMAT, version: v + 1 });
        }),
      );
    }
  }

  const unroute = routeLmdbConsole(log);
  const folder = createFolder(join(dir, FILE), log, (id) => {
    const bytes = segments.get(id);
    return bytes === undefined ? undefined : Buffer.from(bytes);
  });
  /** The next segment's id (ids only grow: folded ones are compared with `folded`). */
  let nextSegment = 1;
  /** Segments folded (or found folded at load), to delete in the next log write. */
  let foldedIds: number[] = [];
  /** The owners as the last segment wrote them (JSON). */
  let lastOwners: string | undefined;
  /** The last commit failed: the log environment is opened again before the next write. */
  let failed = false;
  /**
   * baseline.mdb is read here only by load(), then closed: the fold worker is its only user. While
   * this thread held it open, a worker whose open failed (an I/O error, a file made immutable) left
   * lmdb-js's environment for that path unusable in the process: every later worker failed with
   * "No transaction to renew", and the fold was never retried (found by state-fold.test.ts).
   */
  let tableClosed: Promise<void> | undefined;
  return {
    dir,
    load() {
      if (tableClosed) throw new Error(`state: the store in ${dir} was loaded already (load() once per open)`);
      /** What the store holds, entry by entry: the table, then the segments not folded yet. */
      const held = new Map<string, BaselineEntry>();
      for (const { key, value } of entities.getRange()) held.set(key, restored(key, value));
      const deleted = new Map<string, number>();
      for (const { key, value } of tombstones.getRange()) deleted.set(key, value);
      let syncedAt = (meta.get('syncedAt') as Record<string, number> | undefined) ?? {};
      let clock = (meta.get('clock') as number | undefined) ?? 0;
      let owners = (meta.get('owners') as Record<string, string> | undefined) ?? {};
      lastOwners = JSON.stringify(owners);
      const folded = (meta.get('folded') as number | undefined) ?? 0;
      // The segments not folded yet (a crash, or a stop before the fold ended), in order.
      for (const { key: id, value } of segments.getRange()) {
        nextSegment = id + 1;
        if (id <= folded) {
          foldedIds.push(id);
          continue;
        }
        // A copy: what getRange hands out may be lmdb-js's own memory, and the copy is transferred.
        const bytes = Buffer.from(value);
        const s = JSON.parse(bytes.toString()) as Segment;
        for (const r of s.e) held.set(r[0], restored(r[0], unpackRow(r, s.h)));
        for (const key of s.r) held.delete(key);
        for (const [key, at] of s.t) deleted.set(key, at);
        for (const key of s.tr) deleted.delete(key);
        if (s.s !== undefined) syncedAt = s.s;
        if (s.c !== undefined) clock = s.c;
        owners = s.o;
        lastOwners = JSON.stringify(owners);
        folder.fold(id, bytes);
      }
      nextSegment = Math.max(nextSegment, folded + 1);
      const entries = ImmutableMap<string, BaselineEntry>().withMutations((map) => {
        for (const [key, entry] of held) map.set(key, entry);
      });
      const unconfirmed: OutboxEntry[] = [];
      for (const { key, value } of outbox.getRange()) {
        const events: EntityEvent[] = [];
        for (const v of value) {
          const e = restoredEvent(v, held);
          if (e) events.push(e);
        }
        unconfirmed.push({ id: key, events });
      }
      tableClosed = root.close();
      const state = restoreBaseline({ entities: entries, tombstones: ImmutableMap(deleted), syncedAt: ImmutableMap<EntityType, number>(Object.entries(syncedAt)), clock });
      return { state, owners: new Map(Object.entries(owners)), outbox: unconfirmed, lastOutboxId: unconfirmed.at(-1)?.id ?? 0 };
    },
    unfoldedBytes: () => folder.unfoldedBytes(),
    async write(delta) {
      if (failed) {
        // Not awaited: after a failed commit lmdb-js's close() never resolves either.
        logRoot.close().catch(() => undefined);
        openLog();
        failed = false;
      }
      return writeDelta(delta);
    },
    async close() {
      // The fold of what was written, then the deletion of the folded segments: a clean stop
      // leaves the table whole and the log empty (the fold flushed before the deletion).
      await folder.close();
      foldedIds.push(...folder.takeFolded());
      if (!failed && foldedIds.length > 0) {
        const ids = foldedIds;
        foldedIds = [];
        await logRoot.batch(() => {
          for (const id of ids) void segments.remove(id);
        }).then(undefined, () => undefined);
      }
      // After a failed commit lmdb-js's close() never resolves: do not wait for it then.
      if (failed) void logRoot.close().catch(() => undefined);
      else await logRoot.close();
      await (tableClosed ?? root.close());
      unroute();
    },
  };

  function writeDelta({ prev, next, keys, owners, outbox: box }: BaselineDelta): Promise<void> {
    // The entries to write: the keys named, as `next` holds them, without comparing them with what
    // the store holds (the commit line names only keys a step changed). A key named twice (two
    // steps in one write) is written twice, the same entry (the newest state's): harmless, and
    // cheaper than a Set of 100,000 keys. A removed key the store never held (created and deleted
    // in one write) is removed again in the fold, which does nothing. Measured: a Map of what the
    // store held, updated after each flush, cost the main thread ~50 ms per 100,000-entry write
    // and kept a second 100,000-entry index alive (docs/store.md, "Session 8: the persist ratio, attributed").
    const putKeys: string[] = [];
    const putEntries: BaselineEntry[] = [];
    const removed: string[] = [];
    if (prev.entities !== next.entities) {
      if (keys !== undefined) {
        for (const key of keys) {
          const entry = entryOf(next, key);
          if (entry === undefined) removed.push(key);
          else {
            putKeys.push(key);
            putEntries.push(entry);
          }
        }
      } else {
        // No keys named: compare every entry with `prev` (Immutable lookups: slow, but only for a
        // caller that cannot say what changed).
        next.entities.forEach((entry, key) => {
          if (entry !== prev.entities.get(key)) {
            putKeys.push(key);
            putEntries.push(entry);
          }
        });
        if (prev.entities.size > 0) prev.entities.forEach((_entry, key) => void (next.entities.has(key) || removed.push(key)));
      }
    }
    // The whole write is one segment, one JSON text: measured, one JSON.stringify of all rows
    // costs about half of encoding and putting each entry (lmdb-js's per-put work is the other
    // half), and the compact rows leave out what they have in common. The fold worker puts the
    // entries one by one in baseline.mdb, off the main thread.
    const h = putEntries.length > 0 ? header(putEntries[0]!) : 0;
    const rows: SegmentRow[] = new Array<SegmentRow>(putKeys.length);
    if (h !== 0) for (let i = 0; i < putKeys.length; i++) rows[i] = row(putKeys[i]!, putEntries[i]!, h);
    const segment: Segment = { h, e: rows, r: removed, t: [], tr: [], o: Object.fromEntries(owners) };
    if (prev.tombstones !== next.tombstones) {
      next.tombstones.forEach((at, key) => {
        if (prev.tombstones.get(key) !== at) segment.t.push([key, at]);
      });
      prev.tombstones.forEach((_at, key) => {
        if (!next.tombstones.has(key)) segment.tr.push(key);
      });
    }
    if (prev.syncedAt !== next.syncedAt) segment.s = next.syncedAt.toObject();
    if (prev.clock !== next.clock) segment.c = next.clock;
    const ownersText = JSON.stringify(segment.o);
    // A write that only deletes confirmed outbox entries (or folded segments) adds no segment.
    const empty = rows.length === 0 && removed.length === 0 && segment.t.length === 0 && segment.tr.length === 0 && segment.s === undefined && segment.c === undefined && ownersText === lastOwners;
    // UTF-8 once, here: lmdb-js writes these bytes at the commit, and after the flush the same
    // buffer is handed (transferred) to the fold worker. TextEncoder rather than Buffer.from: measured on a 31 MB segment text, 31 against 47 ms.
    const bytes = empty ? undefined : utf8.encode(JSON.stringify(segment));
    const id = empty ? 0 : nextSegment++;
    const deleting = foldedIds.concat(folder.takeFolded());
    foldedIds = [];
    // One transaction in log.mdb: the segment, the outbox entries, the deletion of folded segments.
    // Each write's own promise rejects too when the commit fails (the batch's promise reports it).
    const quiet = (p: Promise<unknown>): void => void p.catch(() => undefined);
    const done = logRoot.batch(() => {
      if (bytes !== undefined) quiet(segments.put(id, bytes));
      for (const folded of deleting) quiet(segments.remove(folded));
      if (box) {
        for (const entry of box.add) quiet(outbox.put(entry.id, entry.events.map(storedEvent)));
        for (const outboxId of box.remove) quiet(outbox.remove(outboxId));
      }
    });
    // A big batch is started on lmdb's write thread before its callback returns, under a second
    // commit promise that only `committed` reaches; after a failed commit (disk full) it rejects,
    // and unhandled it would end the process (found with the disk-full test).
    logRoot.committed.then(undefined, () => undefined);
    // A small batch's first write also opens lmdb-js's event-turn batch, whose commit promise is
    // made in a setImmediate and fails with the same commit: handled once it exists (disk-full test).
    const env = logRoot;
    setImmediate(() => void env.committed.then(undefined, () => undefined));
    // With overlappingSync (lmdb-js's default on Linux) a commit may resolve before its pages are
    // flushed; `flushed` waits for that, so nothing is settled (acked) that a machine crash could
    // still take back. Measured: no cost in the persist benchmark beyond this box's noise.
    return done.then(() => logRoot.flushed).then(
      () => {
        if (bytes === undefined) return;
        lastOwners = ownersText;
        folder.fold(id, bytes);
      },
      async (error: unknown) => {
        // After a failed commit (disk full) lmdb-js's next writes never complete: the next write
        // opens the environment afresh (measured on a full tmpfs, then one made larger). The
        // segment's id is not reused (ids need only grow); the deletions are tried again.
        failed = true;
        foldedIds = deleting.concat(foldedIds);
        const commitError = (error as { commitError?: Promise<unknown> } | undefined)?.commitError;
        const cause = commitError ? await Promise.race([commitError.then(() => error, (e: unknown) => e), new Promise((r) => setTimeout(() => r(error), 100))]) : error;
        throw cause instanceof Error ? cause : new Error(String(cause));
      },
    );
  }
}
