/**
 * The state store: the baseline kept in LMDB (lmdb-js) in a folder, so a restart is not amnesia.
 * Chosen by measurement among stores that install from the npm registry alone (docs/store.md):
 * LMDB's copy-on-write B-tree survives kill -9 at any point with the last committed transaction,
 * reads are synchronous and fast (the load at start), and one transaction takes a whole snapshot.
 *
 * Layout (one environment, `baseline.mdb`, with named databases):
 *   meta        format → {format, version}; syncedAt → {type: ms}; clock → ms; owners → {type: source}
 *   entities    entity key → [type, id, name, state, project, parents, children, observedAt, source,
 *                                 attributes, at, bySnapshot (0/1), misses, scope?]   (version 2; see StoredEntry)
 *   tombstones  entity key → deletion time, ms
 *   outbox      id (a growing integer) → the events of one step, written with the step before they
 *               are emitted and deleted once every sink took them over (version 3; see StoredEvent)
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Map as ImmutableMap } from 'immutable';
import { createRequire } from 'node:module';
import type { Database, RootDatabase, open as OpenLmdb } from 'lmdb';
import { type BaselineEntry, type BaselineState, restoreBaseline } from '../../operators/diffAgainstBaseline.js';
import { type Logger, errorMessage, silentLogger } from '../log.js';
import { entityHash } from '../hash.js';
import type { Entity, EntityEvent, EntityRef, EntityType } from '../model.js';

export const STATE_FORMAT = 'synchronizer.state';
/** Bump on an incompatible change of the layout, and add the step from the previous one to MIGRATIONS. */
export const STATE_VERSION = 3;
const FILE = 'baseline.mdb';
/** What LMDB keeps in the folder: the data file and its lock file. */
const OWN_FILES = new Set([FILE, `${FILE}-lock`]);

/**
 * Steps from an older format version to the next (index = the old version). A store of a version
 * without a step here is refused.
 */
const MIGRATIONS: Record<number, (store: { meta: Database; entities: Database; tombstones: Database; outbox: Database }) => void> = {
  // 1 → 2: entries from {entity, at, bySnapshot, misses} objects to StoredEntry arrays.
  1: ({ entities }) => {
    for (const { key, value } of entities.getRange()) {
      const v = value as { entity: Entity; at: number; bySnapshot: boolean; misses: number };
      entities.putSync(key, stored({ entity: v.entity, at: v.at, bySnapshot: v.bySnapshot, misses: v.misses }));
    }
  },
  // 2 → 3: the outbox database, empty (a version-2 store acked only what it had written).
  2: () => undefined,
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
  /** Keys whose entries may have changed; undefined: compare every entry (a snapshot was applied). */
  keys: ReadonlySet<string> | undefined;
  owners: ReadonlyMap<EntityType, string>;
  /** Outbox entries to add (the events of the steps up to `next`) and ids to delete, in the same transaction. */
  outbox?: { add: readonly OutboxEntry[]; remove: readonly number[] };
}

export interface BaselineStore {
  readonly dir: string;
  /** The stored baseline (synchronous: LMDB reads are memory-mapped). */
  load(): StoredBaseline;
  /** Writes one delta as one transaction; resolves once it is committed. */
  write(delta: BaselineDelta): Promise<void>;
  close(): Promise<void>;
}

/**
 * A stored entry: the entity's fields and the entry's, by position. Not `raw` (never persisted:
 * memory and disk), not `key` (the database key). Positions rather than an object: measured on
 * 100k Nova servers, JSON.stringify of the array takes ~0.6× the time of the object (whose copy
 * without `raw` cost a rest spread too) and 384 bytes instead of 574, and parsing it back is faster.
 */
type StoredEntry = [
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
  at: number,
  bySnapshot: 0 | 1,
  misses: number,
  /** Only for a scoped entity: an unscoped entry is what format 2 always wrote, so no migration. */
  scope?: string,
];

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
  const changed = v[3] === 0 ? {} : { changed: v[3] };
  return { action: v[0], origin, entity, ...changed, hash: entityHash(entity) };
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

/**
 * Opens (creating if needed) the store in `dir`. Throws a StateError for a foreign, corrupt or
 * newer folder, and leaves it as it was. `log` takes what lmdb-js itself would print.
 */
export function openBaselineStore(dirOption: string, { log = silentLogger }: { log?: Logger } = {}): BaselineStore {
  const dir = resolve(dirOption);
  checkFolder(dir);
  checkDataFile(join(dir, FILE));
  let root!: RootDatabase;
  let meta!: Database;
  let entities!: Database<StoredEntry, string>;
  let tombstones!: Database<number, string>;
  let outbox!: Database<StoredEvent[], number>;
  const openEnvironment = (): void => {
    root = openLmdb({ path: join(dir, FILE), maxDbs: 8 });
    meta = root.openDB({ name: 'meta', encoding: 'json' });
    entities = root.openDB<StoredEntry, string>({ name: 'entities', encoding: 'json' });
    tombstones = root.openDB<number, string>({ name: 'tombstones', encoding: 'json' });
    outbox = root.openDB<StoredEvent[], number>({ name: 'outbox', encoding: 'json' });
  };
  try {
    openEnvironment();
  } catch (e) {
    throw new StateError(`cannot open the state store in ${dir} (corrupt, or not a synchronizer state folder): ${errorMessage(e)}; nothing was changed`, { cause: e });
  }
  const refuse = (why: string, cause?: unknown): never => {
    void root.close();
    throw new StateError(`state.dir ${dir}: ${why}; nothing was changed`, cause === undefined ? undefined : { cause });
  };
  let format: { format?: unknown; version?: unknown } | undefined;
  try {
    format = meta.get('format') as typeof format;
  } catch (e) {
    refuse(`cannot read the store (corrupt?): ${errorMessage(e)}`, e);
  }
  if (format === undefined) {
    // A new store, or an LMDB file of someone else's.
    const names = [...root.getKeys({ limit: 10 })].map(String).filter((k) => !['meta', 'entities', 'tombstones', 'outbox'].includes(k));
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
      root.transactionSync(() => {
        step!({ meta, entities, tombstones, outbox });
        meta.putSync('format', { format: STATE_FORMAT, version: v + 1 });
      });
    }
  }

  const unroute = routeLmdbConsole(log);
  /**
   * What the store holds, entry by entry (the baseline's own objects): a snapshot's write finds
   * what changed by identity in this plain Map (V8 keeps a string's hash) rather than by looking
   * every key up in the previous Immutable map, which hashes each key again (measured: ~0.45 s of
   * main thread for the second 100k snapshot, 1 % changed, on the loaded box).
   */
  const held = new Map<string, BaselineEntry>();
  /** The last commit failed: the environment is opened again before the next write. */
  let failed = false;
  return {
    dir,
    load() {
      const entries = ImmutableMap<string, BaselineEntry>().withMutations((map) => {
        held.clear();
        for (const { key, value } of entities.getRange()) {
          const entry = restored(key, value);
          held.set(key, entry);
          map.set(key, entry);
        }
      });
      const deleted = ImmutableMap<string, number>().withMutations((map) => {
        for (const { key, value } of tombstones.getRange()) map.set(key, value);
      });
      const syncedAt = ImmutableMap<EntityType, number>(Object.entries((meta.get('syncedAt') as Record<string, number> | undefined) ?? {}));
      const clock = (meta.get('clock') as number | undefined) ?? 0;
      const owners = new Map(Object.entries((meta.get('owners') as Record<string, string> | undefined) ?? {}));
      const unconfirmed: OutboxEntry[] = [];
      for (const { key, value } of outbox.getRange()) {
        const events: EntityEvent[] = [];
        for (const v of value) {
          const e = restoredEvent(v, held);
          if (e) events.push(e);
        }
        unconfirmed.push({ id: key, events });
      }
      return { state: restoreBaseline({ entities: entries, tombstones: deleted, syncedAt, clock }), owners, outbox: unconfirmed, lastOutboxId: unconfirmed.at(-1)?.id ?? 0 };
    },
    async write(delta) {
      if (failed) {
        // Not awaited: after a failed commit lmdb-js's close() never resolves either.
        root.close().catch(() => undefined);
        openEnvironment();
        failed = false;
      }
      return writeDelta(delta);
    },
    async close() {
      // After a failed commit lmdb-js's close() never resolves: do not wait for it then.
      if (failed) void root.close().catch(() => undefined);
      else await root.close();
      unroute();
    },
  };

  function writeDelta({ prev, next, keys, owners, outbox: box }: BaselineDelta): Promise<void> {
    // The entries to write, compared with `held` by identity (entries are immutable values).
    const putKeys: string[] = [];
    const putEntries: BaselineEntry[] = [];
    const removed: string[] = [];
    const check = (entry: BaselineEntry | undefined, key: string): void => {
      if (entry === undefined) {
        if (held.has(key)) removed.push(key);
      } else if (entry !== held.get(key)) {
        putKeys.push(key);
        putEntries.push(entry);
      }
    };
    if (prev.entities !== next.entities) {
      if (keys !== undefined) for (const key of keys) check(next.entities.get(key), key);
      else {
        let kept = 0;
        next.entities.forEach((entry, key) => {
          const old = held.get(key);
          if (old !== undefined) kept++;
          if (entry !== old) {
            putKeys.push(key);
            putEntries.push(entry);
          }
        });
        // Every held key still in `next`: nothing was deleted, no need to look them all up.
        if (kept < held.size) for (const key of held.keys()) if (!next.entities.has(key)) removed.push(key);
      }
    }
    // Asynchronous puts in one batch: one transaction (lmdb-js batches an event turn's writes,
    // and `batch` keeps them together), committed and flushed before the promise resolves, as
    // transaction() was; but the B-tree inserts run on lmdb's write thread, not in a callback on
    // the main thread (measured: ~45 % of transaction()'s main-thread time for 100k entries).
    const done = root.batch(() => {
      for (let i = 0; i < putKeys.length; i++) void entities.put(putKeys[i]!, stored(putEntries[i]!));
      for (const key of removed) void entities.remove(key);
      if (prev.tombstones !== next.tombstones) {
        next.tombstones.forEach((at, key) => {
          if (prev.tombstones.get(key) !== at) void tombstones.put(key, at);
        });
        prev.tombstones.forEach((_at, key) => {
          if (!next.tombstones.has(key)) void tombstones.remove(key);
        });
      }
      if (prev.syncedAt !== next.syncedAt) void meta.put('syncedAt', next.syncedAt.toObject());
      if (prev.clock !== next.clock) void meta.put('clock', next.clock);
      void meta.put('owners', Object.fromEntries(owners));
      if (box) {
        for (const entry of box.add) void outbox.put(entry.id, entry.events.map(storedEvent));
        for (const id of box.remove) void outbox.remove(id);
      }
    });
    // A big batch is started on lmdb's write thread before its callback returns, under a second
    // commit promise that only `committed` reaches; after a failed commit (disk full) it rejects,
    // and unhandled it would end the process (found with the disk-full test).
    root.committed.then(undefined, () => undefined);
    // With overlappingSync (lmdb-js's default on Linux) a commit may resolve before its pages are
    // flushed; `flushed` waits for that, so nothing is settled (acked) that a machine crash could
    // still take back. Measured: no cost in the persist benchmark beyond this box's noise.
    return done.then(() => root.flushed).then(
      () => {
        for (let i = 0; i < putKeys.length; i++) held.set(putKeys[i]!, putEntries[i]!);
        for (const key of removed) held.delete(key);
      },
      async (error: unknown) => {
        // After a failed commit (disk full) lmdb-js's next writes never complete: the next write
        // opens the environment afresh (measured on a full tmpfs, then one made larger).
        failed = true;
        const commitError = (error as { commitError?: Promise<unknown> } | undefined)?.commitError;
        const cause = commitError ? await Promise.race([commitError.then(() => error, (e: unknown) => e), new Promise((r) => setTimeout(() => r(error), 100))]) : error;
        throw cause instanceof Error ? cause : new Error(String(cause));
      },
    );
  }
}
