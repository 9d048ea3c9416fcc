/**
 * The fold: a worker thread that applies the log's flushed segments to the per-entity table in
 * `baseline.mdb`, so that the main thread writes each step as ONE value (a segment in `log.mdb`)
 * and never encodes or puts an entity one by one (docs/store.md, "Format 4").
 *
 *   main: segment flushed in log.mdb ─▶ post(id, its bytes, transferred) ─▶ worker: parse, one transaction in
 *   baseline.mdb (the entries, and `folded` = id), flushed ─▶ main: deletes the segment in its
 *   next log write
 *
 * The two environments have a write lock each, so a fold never makes a step's write wait (the
 * prototype that folded in the same environment did). The worker is the only writer of
 * `baseline.mdb` once the store is open; a segment is deleted only after its fold is flushed, and
 * one left behind by a crash is skipped at load (its id ≤ `folded`), so no order of crashes loses
 * or applies twice an entry.
 *
 * The worker's code is a plain JavaScript string run with `eval`: the same code then runs from
 * the build (dist/) and from the TypeScript sources under vitest, which cannot start a worker
 * from a .ts file. It unpacks rows as {@link unpackRow} does; the fold test checks both agree.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { backoffDelay } from '../backoff.js';
import type { Logger } from '../log.js';
import type { EntityRef, EntityType } from '../model.js';

/**
 * A stored entry: the entity's fields and the entry's, by position (see lmdb.ts). Not `raw`, not
 * `key` (the database key).
 */
export type StoredEntry = [
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

/** What the rows of a segment have in common, left out of each compact row. */
export type SegmentHeader = [type: EntityType, source: string, at: number, bySnapshot: 0 | 1, misses: number, observedAt: string];

/**
 * One entry in a segment: compact, `[key, name, state, project, parents, children, attributes]`
 * (7 fields: the id is the key's part after `<type>:`, the rest is the header's), or whole,
 * `[key, ...StoredEntry]` (14 or 15).
 */
export type SegmentRow = [key: string, ...rest: unknown[]];

/** One write of the main thread: the changes from the last persisted state, as one JSON value in log.mdb. */
export interface Segment {
  h: SegmentHeader | 0;
  /** Entries put. */
  e: SegmentRow[];
  /** Entries removed. */
  r: string[];
  /** Tombstones put: [key, deletion time]. */
  t: [string, number][];
  /** Tombstones removed. */
  tr: string[];
  /** syncedAt, when it changed. */
  s?: Record<string, number>;
  /** clock, when it changed. */
  c?: number;
  /** Type ownership (always: it is small). */
  o: Record<string, string>;
}

const COMPACT = 7;

/** A segment row back as a StoredEntry. */
export function unpackRow(row: SegmentRow, h: SegmentHeader | 0): StoredEntry {
  if (row.length !== COMPACT || h === 0) return row.slice(1) as StoredEntry;
  const r = row as unknown[];
  return [h[0], row[0].slice(h[0].length + 1), r[1], r[2], r[3], r[4], r[5], h[5], h[1], r[6], h[2], h[3], h[4]] as StoredEntry;
}

/**
 * The worker: messages `{id, bytes}` (a flushed segment's UTF-8 JSON, in id order) and `{close: true}` (fold
 * what is queued, then exit); it answers `{folded: id}` once the fold up to id is flushed, or
 * `{error}` and exits when a fold fails (the main thread starts a new worker after a delay).
 */
const WORKER = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const { open } = require(workerData.lmdb);
const root = open({ path: workerData.path, maxDbs: 8 });
const meta = root.openDB({ name: 'meta', encoding: 'json' });
const entities = root.openDB({ name: 'entities', encoding: 'json' });
const tombstones = root.openDB({ name: 'tombstones', encoding: 'json' });
function unpack(row, h) {
  if (row.length !== ${COMPACT} || h === 0) return row.slice(1);
  return [h[0], row[0].slice(h[0].length + 1), row[1], row[2], row[3], row[4], row[5], h[5], h[1], row[6], h[2], h[3], h[4]];
}
let queue = [];
let closing = false;
let busy = false;
async function fold() {
  if (busy) return;
  busy = true;
  try {
    while (queue.length > 0) {
      // Every segment queued goes into one transaction: one fsync for a burst of small writes.
      const batch = queue;
      queue = [];
      root.transactionSync(() => {
        for (const { bytes } of batch) {
          const s = JSON.parse(Buffer.from(bytes).toString());
          for (const row of s.e) entities.putSync(row[0], unpack(row, s.h));
          for (const key of s.r) entities.removeSync(key);
          for (const [key, at] of s.t) tombstones.putSync(key, at);
          for (const key of s.tr) tombstones.removeSync(key);
          if (s.s !== undefined) meta.putSync('syncedAt', s.s);
          if (s.c !== undefined) meta.putSync('clock', s.c);
          meta.putSync('owners', s.o);
        }
        meta.putSync('folded', batch[batch.length - 1].id);
      });
      await root.flushed;
      parentPort.postMessage({ folded: batch[batch.length - 1].id });
    }
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
    process.exit(1);
  }
  busy = false;
  if (closing) await finish();
}
async function finish() {
  await root.close();
  parentPort.close();
}
parentPort.on('message', (m) => {
  if (m.close) {
    closing = true;
    if (!busy) void fold();
    return;
  }
  queue.push(m);
  void fold();
});
`;

export interface Folder {
  /**
   * A segment flushed in the log: fold it (in id order). Its bytes are handed over (transferred
   * when they fill their ArrayBuffer: a copy of 40 MB costs the main thread ~50 ms).
   */
  fold(id: number, bytes: Uint8Array): void;
  /** Bytes of the segments handed over and not folded yet. */
  unfoldedBytes(): number;
  /** Ids folded (and flushed in baseline.mdb) since the last call: the log may delete them. */
  takeFolded(): number[];
  /** Folds what was handed over, then ends the worker; resolves when it has ended. */
  close(): Promise<void>;
}

/**
 * Starts the fold of segments into `path` (baseline.mdb), lazily: no worker until the first
 * segment. `read` reads a segment back from the log, for a new worker after one failed.
 */
export function createFolder(path: string, log: Logger, read: (id: number) => Buffer | undefined): Folder {
  const lmdb = createRequire(import.meta.url).resolve('lmdb');
  /** Segments handed over and not yet folded: handed again (read back) to a new worker after a failure. */
  const unfolded = new Map<number, number>();
  let unfoldedBytes = 0;
  let folded: number[] = [];
  let worker: Worker | undefined;
  let failures = 0;
  let restart: NodeJS.Timeout | undefined;
  let closing = false;
  let ended: Promise<void> = Promise.resolve();

  const spawn = (): void => {
    const w = new Worker(WORKER, { eval: true, workerData: { lmdb, path } });
    worker = w;
    ended = new Promise<void>((resolve) => {
      w.on('message', (m: { folded?: number; error?: string }) => {
        if (m.folded !== undefined) {
          failures = 0;
          for (const [id, size] of unfolded) {
            if (id > m.folded) break;
            unfolded.delete(id);
            unfoldedBytes -= size;
            folded.push(id);
          }
        } else if (m.error !== undefined) {
          log.warn('state: folding the log into baseline.mdb failed; the log keeps the segments, retried', { error: m.error, segments: unfolded.size });
        }
      });
      w.on('error', (error) => log.warn('state: the fold worker failed', { error }));
      w.on('exit', () => {
        if (worker === w) worker = undefined;
        resolve();
        if (unfolded.size > 0 && !closing) {
          failures += 1;
          restart = setTimeout(() => {
            restart = undefined;
            if (closing || worker) return;
            for (const id of unfolded.keys()) {
              const bytes = read(id);
              if (bytes !== undefined) post(id, bytes);
            }
          }, backoffDelay(failures, { initialMs: 1000, maxMs: 30_000 }));
          restart.unref();
        }
      });
    });
    // A store that folds nothing holds no thread open: the process may end without close().
    w.unref();
  };
  const post = (id: number, bytes: Uint8Array): void => {
    if (!worker) spawn();
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    const data = whole ? bytes.buffer : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    worker!.postMessage({ id, bytes: data }, [data as ArrayBuffer]);
  };

  return {
    fold(id, bytes) {
      unfolded.set(id, bytes.byteLength);
      unfoldedBytes += bytes.byteLength;
      if (restart === undefined) post(id, bytes);
    },
    unfoldedBytes: () => unfoldedBytes,
    takeFolded() {
      const ids = folded;
      folded = [];
      return ids;
    },
    async close() {
      closing = true;
      if (restart !== undefined) clearTimeout(restart);
      const w = worker;
      if (!w) return;
      // Held open until the fold has ended (the worker is unref'd while the store is in use).
      w.ref();
      w.postMessage({ close: true });
      await ended;
    },
  };
}
