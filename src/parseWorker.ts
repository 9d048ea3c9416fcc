/**
 * The thread that reads streamed JSON bodies (started by src/parseOffThread.ts, which says why):
 * one JsonSelectStream per stream id, fed the chunks the main thread read off the socket, handing
 * back the selected elements cut down to their shape, in batches. Each chunk is answered (a
 * batch, perhaps empty, naming its bytes) so that the main thread knows how far behind it is.
 *
 * A stream opened with `kept` (src/kept.ts) remembers a digest of each element under its poll's
 * generation (src/keptDigests.ts), and sends an element the base generation had as it is only by
 * its id. It holds those elements until the main thread said which of the batch's ids the hub
 * could not vouch for ('want'), sends these in full, and ends the stream once every batch is
 * answered: what it holds is bounded by the chunks in flight (the main thread answers a batch as
 * it handles it), never by the body's size.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { JsonSelectStream, JsonStreamError, type SelectKey } from './jsonStream.js';
import { type DigestTable, KeptMemory, digestOf, idHash } from './keptDigests.js';
import type { FromParseWorker, ToParseWorker } from './parseOffThread.js';
import { applyShape } from './pick.js';

interface Stream {
  reader: JsonSelectStream;
  elements: unknown[];
  keys: SelectKey[];
  kept: Keeping | undefined;
}

/** A stream's part in keeping unchanged elements. */
interface Keeping {
  /** The element's field that names it. */
  field: string;
  record: DigestTable;
  base: DigestTable | undefined;
  /** The batch being filled: ids sent for elements held here. */
  ids: string[];
  idKeys: SelectKey[];
  held: unknown[];
  /** Batches sent with ids and not answered yet, by number: their elements and keys. */
  waiting: Map<number, { elements: unknown[]; keys: SelectKey[] }>;
  next: number;
  /** The body's end, read while batches were still unanswered: sent once they are. */
  rest: { value: unknown } | undefined;
}

const port = parentPort;
if (port === null) throw new Error('src/parseWorker.js runs as a worker thread (src/parseOffThread.ts starts it)');
const streams = new Map<number, Stream>();
const memory = new KeptMemory();
lowerPriority((workerData as { nice?: number } | null)?.nice);
const post = (message: FromParseWorker): void => port.postMessage(message);

function flush(id: number, stream: Stream, bytes: number): void {
  const k = stream.kept;
  if (k === undefined || k.ids.length === 0) post({ t: 'batch', id, elements: stream.elements, keys: stream.keys, bytes });
  else {
    const batch = k.next;
    k.next += 1;
    k.waiting.set(batch, { elements: k.held, keys: k.idKeys });
    post({ t: 'batch', id, elements: stream.elements, keys: stream.keys, bytes, kept: { batch, ids: k.ids, keys: k.idKeys } });
    k.ids = [];
    k.idKeys = [];
    k.held = [];
  }
  stream.elements = [];
  stream.keys = [];
}

/**
 * Whether `element` is one the base had as it is (then it is held, and only its id is sent). Every
 * element with an id is recorded; one without, or whose id is not a string or a number, is sent.
 */
function keep(k: Keeping, element: unknown, keys: readonly SelectKey[]): boolean {
  if (element === null || typeof element !== 'object' || Array.isArray(element)) return false;
  const value = (element as Record<string, unknown>)[k.field];
  if (typeof value !== 'string' && typeof value !== 'number') return false;
  const id = String(value);
  const hash = idHash(id);
  const digest = digestOf(element);
  k.record.add(hash, digest);
  if (k.base === undefined || !k.base.has(hash, digest)) return false;
  k.ids.push(id);
  for (const key of keys) k.idKeys.push(key);
  k.held.push(element);
  return true;
}

/** The main thread answered a batch: the elements it wants in full, then the end if it waited for this. */
function answered(id: number, stream: Stream, batch: number, want: readonly number[]): void {
  const k = stream.kept;
  const held = k?.waiting.get(batch);
  if (k === undefined || held === undefined) return;
  k.waiting.delete(batch);
  if (want.length > 0) {
    const width = held.elements.length === 0 ? 0 : held.keys.length / held.elements.length;
    const elements: unknown[] = [];
    const keys: SelectKey[] = [];
    for (const i of want) {
      elements.push(held.elements[i]);
      for (let j = i * width; j < (i + 1) * width; j += 1) keys.push(held.keys[j]!);
    }
    post({ t: 'batch', id, elements, keys, bytes: 0 });
  }
  if (k.rest !== undefined && k.waiting.size === 0) {
    streams.delete(id);
    post({ t: 'end', id, rest: k.rest.value });
  }
}

function failed(id: number, e: unknown): void {
  streams.delete(id);
  if (e instanceof JsonStreamError) post({ t: 'error', id, message: e.message, offset: e.offset, kind: e.kind });
  else post({ t: 'error', id, message: e instanceof Error ? e.message : String(e), offset: -1, kind: 'other' });
}

port.on('message', (m: ToParseWorker) => {
  switch (m.t) {
    case 'open': {
      const { id, shape, batch } = m;
      const opened = m.kept === undefined ? undefined : memory.open(m.kept.family, m.kept.generation, m.kept.base);
      const kept: Keeping | undefined =
        m.kept === undefined || opened === undefined
          ? undefined
          : { field: m.kept.id, record: opened.record, base: opened.base, ids: [], idKeys: [], held: [], waiting: new Map(), next: 0, rest: undefined };
      const stream: Stream = {
        elements: [],
        keys: [],
        kept,
        reader: new JsonSelectStream({
          select: m.select,
          maxBytes: m.maxBytes,
          maxElements: m.maxElements,
          maxDepth: m.maxDepth,
          onElement: (element, keys) => {
            const picked = shape === undefined ? element : applyShape(element, shape);
            if (kept === undefined || !keep(kept, picked, keys)) {
              stream.elements.push(picked);
              for (const k of keys) stream.keys.push(k);
            }
            if (stream.elements.length + (kept?.ids.length ?? 0) >= batch) flush(id, stream, 0);
          },
        }),
      };
      streams.set(id, stream);
      return;
    }
    case 'chunk': {
      const stream = streams.get(m.id);
      if (stream === undefined) return;
      try {
        stream.reader.write(Buffer.from(m.bytes));
      } catch (e) {
        // The elements before the error are handed over first, as the in-thread reader does.
        flush(m.id, stream, m.bytes.byteLength);
        return failed(m.id, e);
      }
      return flush(m.id, stream, m.bytes.byteLength);
    }
    case 'end': {
      const stream = streams.get(m.id);
      if (stream === undefined) return;
      try {
        const rest = stream.reader.end();
        flush(m.id, stream, 0);
        // Elements held for an unanswered batch come before the end (answered() sends it then).
        if (stream.kept !== undefined && stream.kept.waiting.size > 0) {
          stream.kept.rest = { value: rest };
          return;
        }
        streams.delete(m.id);
        return post({ t: 'end', id: m.id, rest });
      } catch (e) {
        flush(m.id, stream, 0);
        return failed(m.id, e);
      }
    }
    case 'want': {
      const stream = streams.get(m.id);
      if (stream !== undefined) answered(m.id, stream, m.batch, m.want);
      return;
    }
    case 'drop':
      streams.delete(m.id);
      return;
    case 'count':
      return post({ t: 'count', streams: streams.size, keptBytes: memory.bytes(), generations: memory.generations() });
  }
});

/**
 * Lowers this thread's priority to `nice` (src/parseOffThread.ts says why): Linux keeps a nice
 * value per thread, set through its thread id, which /proc/thread-self names. Elsewhere, or if
 * refused, the thread keeps the process's priority: slower to yield, never wrong.
 */
function lowerPriority(nice: number | undefined): void {
  if (nice === undefined) return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, nice);
  } catch {
    // Not Linux (no /proc/thread-self), or not allowed.
  }
}
