/**
 * Streamed JSON bodies read on a worker thread. Reading a big poll's pages (scan, JSON.parse of
 * each element, the pick) took 48 % of the main thread's busy time during the `isolation`
 * benchmark's polls (docs/scale.md, "Parsing off the main thread"): that work needs nothing of the
 * synchronizer's state, so it moves to one worker, and the main thread only reads the socket and
 * receives the picked elements (a structured clone costs a third to a half of the JSON.parse it
 * replaces, and the pick leaves little to copy).
 *
 * One worker per process, started at the first stream, shared by every client and request (each
 * stream has an id), referenced only while a stream is open so that it never keeps a process
 * alive. A worker that dies fails the streams in flight ({@link ParseWorkerError}, retried by the
 * transport); the next stream starts a new one. At most {@link WINDOW_BYTES} of chunks wait for the
 * worker: a writer waits for it to catch up, so the socket is read no faster than it parses.
 *
 * A stream opened with `kept` (src/kept.ts) gets the elements its poll's base had as they are
 * only by id: `onKept` says what to hand to `onElement` instead (the baseline's entity), or that
 * the element must be read in full; those are asked of the worker, one message per batch, and
 * come back as a batch of their own before the stream's end.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { JsonStreamError, type SelectKey } from './jsonStream.js';
import { type Logger, errorMessage } from './log.js';
import { turnBudget } from './pause.js';
import type { PickShape } from './pick.js';

/** What the main thread tells the worker. */
export type ToParseWorker =
  | { t: 'open'; id: number; select: string; shape: PickShape | undefined; maxBytes: number; maxElements: number; maxDepth: number; batch: number; kept?: KeptStream }
  | { t: 'chunk'; id: number; bytes: ArrayBuffer }
  | { t: 'end'; id: number }
  | { t: 'want'; id: number; batch: number; want: number[] }
  | { t: 'drop'; id: number }
  | { t: 'count' };

/**
 * What the worker answers. `bytes`: the chunk a batch answers (0 when the batch was full before the
 * chunk ended). `kept`: the ids (and keys) of elements the base had as they are, held by the
 * worker until a 'want' of the same `batch` names those to send in full (by their position).
 */
export type FromParseWorker =
  | { t: 'batch'; id: number; elements: unknown[]; keys: SelectKey[]; bytes: number; kept?: { batch: number; ids: string[]; keys: SelectKey[] } }
  | { t: 'end'; id: number; rest: unknown }
  | { t: 'error'; id: number; message: string; offset: number; kind: JsonStreamError['kind'] | 'other' }
  | { t: 'count'; streams: number; keptBytes: number; generations: Record<string, number[]>; byBytes: number; cpuMs: number };

/** How a stream's elements are remembered, and compared with a poll's before (src/kept.ts). */
export interface KeptStream {
  /** What the poll's elements are remembered under with its generation: a source and a request path. */
  family: string;
  /** This poll's (src/kept.ts nextGeneration). */
  generation: number;
  /** The poll to compare with: the one whose snapshot the baseline applied last, if any. */
  base: number | undefined;
  /** The element's field that names it (a string or number value); an element without one is read in full. */
  id: string;
  /**
   * False: every element is parsed before it is compared, none kept by its bytes (src/parseWorker.ts).
   * For measurements (the `parse` benchmark compares the two); the transport leaves it on.
   */
  bytes?: boolean;
}

/** The worker died, or could not be started: the stream may be read again (by a new worker). */
export class ParseWorkerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ParseWorkerError';
  }
}

/** Chunk bytes sent and not yet answered, at most: a page of Nova servers is 1.7 MB, a socket read 64 KiB. */
export const WINDOW_BYTES = 512 * 1024;
/**
 * Elements per batch at most: the `each` calls of one batch run in one turn of the event loop,
 * and before them, outside any budget, the batch's structured clone is read (256 picked Nova
 * servers: up to 2.6–3.9 ms of a loaded core in the isolation benchmark's profile; docs/scale.md,
 * "Turns that hold no more than their budget").
 */
const BATCH_ELEMENTS = 64;

export interface OffThreadOptions {
  select: string;
  /** Applied to each element in the worker, before it is copied back. */
  pick?: PickShape;
  maxBytes: number;
  maxElements: number;
  maxDepth: number;
  /** Called on the main thread with each (picked) element; what it throws ends the stream. */
  onElement: (element: unknown, keys: readonly SelectKey[]) => void;
  /**
   * Unchanged elements sent by id (see above): `onKept(id)` is what `onElement` is then given in
   * place of the element, or undefined when the element must be read in full (it then comes later,
   * before the end). What it throws ends the stream.
   */
  kept?: KeptStream & { onKept: (id: string) => unknown };
  /**
   * The stream failed (a bad body, `onElement` threw, the worker died) while no write or end
   * waited: the reader may be waiting for the socket, and stops it (the error is then `failure()`).
   */
  onFailure?: () => void;
  /** Where a dying worker is told about. */
  log: Logger;
}

/** One body being read: write its chunks, then end it (or drop it). */
export interface OffThreadParse {
  /**
   * Hands a chunk over (its buffer may be transferred: do not read it afterwards); resolves once
   * fewer than WINDOW_BYTES wait in the worker. Rejects with the stream's error.
   */
  write(chunk: Buffer): Promise<void>;
  /** The body ended: resolves with the document without its elements, after every element was handed to `onElement`. */
  end(): Promise<unknown>;
  /** The reader gives up (abort, error): the worker forgets the stream. */
  drop(): void;
  /** Why the stream failed, if it has. */
  failure(): unknown;
}

interface Stream {
  options: OffThreadOptions;
  waiting: number;
  failure: unknown;
  wake: (() => void) | undefined;
  done: ((rest: unknown) => void) | undefined;
  fail: ((e: unknown) => void) | undefined;
}

const moduleUrl = import.meta.url;
const workerUrl = new URL(`./parseWorker${moduleUrl.endsWith('.ts') ? '.ts' : '.js'}`, moduleUrl);

/**
 * The parse worker's nice value (Linux keeps one per thread): a poll's parse is background work,
 * the main thread's push path is not, and on a machine whose cores are all busy (a 2-core one
 * with the broker beside it) the scheduler gives the core to the main thread first. 10 leaves the
 * worker about a tenth of a contended core (the kernel's weights: 110 against 1024), all of an
 * idle one. Measured with the isolation benchmark (docs/scale.md, "The parse worker yields the core").
 */
export const PARSE_WORKER_NICE = 10;

function startWorker(): Worker {
  const workerData = { nice: PARSE_WORKER_NICE };
  if (!workerUrl.pathname.endsWith('.ts')) return new Worker(workerUrl, { workerData });
  // The sources run as TypeScript (vitest, Stryker's sandbox): Node 20 reads no .ts, and a
  // worker's `execArgv: ['--import', 'tsx']` is not applied to it there, but tsx's tsImport is.
  // Its ESM entry, read from its exports: require.resolve names the CommonJS one, which cannot
  // register the hooks from an eval'd worker.
  const manifest = createRequire(moduleUrl).resolve('tsx/package.json');
  const entry = (JSON.parse(readFileSync(manifest, 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api']!.import.default;
  const tsx = pathToFileURL(join(dirname(manifest), entry)).href;
  const url = JSON.stringify(workerUrl.href);
  return new Worker(`import(${JSON.stringify(tsx)}).then((api) => (api.tsImport ?? api.default.tsImport)(${url}, ${url}))`, { eval: true, workerData });
}

let worker: Worker | undefined;
let nextId = 1;
const streams = new Map<number, Stream>();
const counts: ((m: Extract<FromParseWorker, { t: 'count' }> | undefined) => void)[] = [];

function settle(stream: Stream, error: unknown): void {
  if (stream.failure !== undefined) return;
  stream.failure = error;
  if (stream.wake === undefined && stream.fail === undefined) stream.options.onFailure?.();
  stream.wake?.();
  stream.fail?.(error);
}

function forget(id: number): void {
  streams.delete(id);
  if (streams.size === 0 && counts.length === 0) worker?.unref();
}

function receive(m: FromParseWorker): void {
  if (m.t === 'count') {
    counts.shift()?.(m);
    if (streams.size === 0 && counts.length === 0) worker?.unref();
    return;
  }
  // Node hands over every message that has arrived in one callback: the `each` calls of many
  // batches would run in one turn. They are queued, and run as sliced work in the turn's budget
  // that the hub's slices and the page reader share (src/pause.ts).
  inbox.push(m);
  if (!draining) void drain();
}

/** Batches, ends and errors not yet handled, in their order of arrival. */
const inbox: FromParseWorker[] = [];
let draining = false;

async function drain(): Promise<void> {
  draining = true;
  try {
    if (turnBudget.spent()) await turnBudget.pause(true);
    for (;;) {
      const until = turnBudget.deadline();
      // At least one batch per slice (at most 256 elements): the stream always moves on.
      do handle(inbox.shift()!);
      while (inbox.length > 0 && performance.now() < until);
      if (inbox.length === 0) break;
      await turnBudget.pause();
    }
  } finally {
    draining = false;
  }
  turnBudget.release();
}

function handle(m: FromParseWorker): void {
  if (m.t === 'count') return;
  const stream = streams.get(m.id);
  if (stream === undefined) return;
  switch (m.t) {
    case 'batch': {
      const width = m.elements.length === 0 ? 0 : m.keys.length / m.elements.length;
      try {
        for (let i = 0; i < m.elements.length; i += 1) stream.options.onElement(m.elements[i], m.keys.slice(i * width, (i + 1) * width));
        if (m.kept !== undefined) answer(m.id, stream, m.kept);
      } catch (e) {
        worker?.postMessage({ t: 'drop', id: m.id } satisfies ToParseWorker);
        forget(m.id);
        return settle(stream, e);
      }
      stream.waiting -= m.bytes;
      if (stream.waiting < WINDOW_BYTES && stream.wake !== undefined) {
        const wake = stream.wake;
        stream.wake = undefined;
        wake();
      }
      return;
    }
    case 'end':
      forget(m.id);
      return stream.done?.(m.rest);
    case 'error':
      forget(m.id);
      return settle(stream, m.kind === 'other' ? new Error(`the JSON reader failed: ${m.message}`) : new JsonStreamError(m.message, m.offset, m.kind));
  }
}

/**
 * The ids of a batch: each the hub vouches for is handed over as its record, the others are asked
 * of the worker in full (an empty answer too: the worker then lets the batch's elements go).
 */
function answer(id: number, stream: Stream, kept: { batch: number; ids: string[]; keys: SelectKey[] }): void {
  const { onKept } = stream.options.kept!;
  const width = kept.ids.length === 0 ? 0 : kept.keys.length / kept.ids.length;
  const want: number[] = [];
  for (let i = 0; i < kept.ids.length; i += 1) {
    const record = onKept(kept.ids[i]!);
    if (record === undefined) want.push(i);
    else stream.options.onElement(record, kept.keys.slice(i * width, (i + 1) * width));
  }
  worker?.postMessage({ t: 'want', id, batch: kept.batch, want } satisfies ToParseWorker);
}

function lost(w: Worker, what: string, cause?: unknown): void {
  if (worker !== w) return;
  worker = undefined;
  const inFlight = [...streams.values()];
  streams.clear();
  for (const resolve of counts.splice(0)) resolve(undefined);
  for (const stream of inFlight) {
    stream.options.log.warn(`the JSON parse worker ${what}; the request reading through it is retried`, { streams: inFlight.length });
    settle(stream, new ParseWorkerError(`the JSON parse worker ${what}`, cause === undefined ? undefined : { cause }));
  }
}

function running(): Worker {
  if (worker !== undefined) return worker;
  const w = startWorker();
  worker = w;
  w.on('message', receive);
  w.on('error', (e) => lost(w, `failed: ${errorMessage(e)}`, e));
  w.on('exit', (code) => lost(w, `exited (code ${code})`));
  w.unref();
  return w;
}

/**
 * Reads one streamed JSON body on the parse worker.
 *
 * Example:
 * ```ts
 * const parse = parseOffThread({ select: 'servers[*]', pick: { id: true }, maxBytes: 1 << 26, maxElements: 1e7, maxDepth: 512, onElement: (s) => servers.push(s), log });
 * for await (const chunk of body) await parse.write(chunk);
 * const rest = await parse.end(); // { servers: [], servers_links: […] }
 * ```
 */
export function parseOffThread(options: OffThreadOptions): OffThreadParse {
  const id = nextId;
  nextId += 1;
  const stream: Stream = { options, waiting: 0, failure: undefined, wake: undefined, done: undefined, fail: undefined };
  let w: Worker;
  try {
    w = running();
  } catch (e) {
    throw new ParseWorkerError(`the JSON parse worker could not be started: ${errorMessage(e)}`, { cause: e });
  }
  if (streams.size === 0) w.ref();
  streams.set(id, stream);
  const { select, pick, maxBytes, maxElements, maxDepth, kept } = options;
  const keptStream = kept === undefined ? undefined : { family: kept.family, generation: kept.generation, base: kept.base, id: kept.id, ...(kept.bytes === false ? { bytes: false } : {}) };
  w.postMessage({ t: 'open', id, select, shape: pick, maxBytes, maxElements, maxDepth, batch: BATCH_ELEMENTS, ...(keptStream !== undefined ? { kept: keptStream } : {}) } satisfies ToParseWorker);
  return {
    write(chunk) {
      if (stream.failure !== undefined) return Promise.reject(stream.failure);
      // Transferred, not cloned. A chunk that is all of its buffer is the socket read's own (every
      // chunk of a plain body): it moves to the worker as it is, and the caller must not read it
      // afterwards. One that is a view (a gzip body's, a chunked body's) may share its buffer with
      // others: its bytes are copied first. The copies doubled the buffers this thread allocated,
      // and the collections they brought (docs/scale.md).
      const whole = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && !(chunk.buffer instanceof SharedArrayBuffer);
      const bytes = (whole ? chunk.buffer : chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength)) as ArrayBuffer;
      // Counted before it is sent: a transferred buffer's length is then 0.
      stream.waiting += chunk.byteLength;
      w.postMessage({ t: 'chunk', id, bytes } satisfies ToParseWorker, [bytes]);
      if (stream.waiting < WINDOW_BYTES) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        stream.wake = () => (stream.failure === undefined ? resolve() : reject(stream.failure));
      });
    },
    end() {
      if (stream.failure !== undefined) return Promise.reject(stream.failure);
      return new Promise<unknown>((resolve, reject) => {
        stream.done = resolve;
        stream.fail = reject;
        w.postMessage({ t: 'end', id } satisfies ToParseWorker);
      });
    },
    drop() {
      if (!streams.has(id)) return;
      forget(id);
      if (worker === w) w.postMessage({ t: 'drop', id } satisfies ToParseWorker);
      settle(stream, new Error('the stream was dropped'));
    },
    failure: () => stream.failure,
  };
}

/** Streams the worker holds (0 when there is no worker): for tests that check a stream was freed. */
export async function parseWorkerStreams(): Promise<number> {
  return (await parseWorkerMemory()).streams;
}

/**
 * What the worker holds: its streams, the bytes of the digests it remembers (src/keptDigests.ts)
 * and their generations by family; how many elements it kept by their bytes, unparsed, and its
 * thread's time on a core (ms; NaN where /proc/thread-self/schedstat is not), since it started.
 * For tests, and the figures of docs/scale.md and the isolation benchmark.
 */
export function parseWorkerMemory(): Promise<{ streams: number; keptBytes: number; generations: Record<string, number[]>; byBytes: number; cpuMs: number }> {
  const w = worker;
  const none = { streams: 0, keptBytes: 0, generations: {}, byBytes: 0, cpuMs: 0 };
  if (w === undefined) return Promise.resolve(none);
  return new Promise((resolve) => {
    // Referenced until it answers: a process with nothing else to do waits for the answer.
    w.ref();
    counts.push((m) => resolve(m === undefined ? none : { streams: m.streams, keptBytes: m.keptBytes, generations: m.generations, byBytes: m.byBytes, cpuMs: m.cpuMs }));
    w.postMessage({ t: 'count' } satisfies ToParseWorker);
  });
}

/** The worker's thread id, and a way to end it: for tests of a worker dying. */
export function parseWorkerForTests(): Worker | undefined {
  return worker;
}
