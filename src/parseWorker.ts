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
 *
 * Most of a big poll's elements are as they were (1 % churn), and parsing them was most of this
 * thread's work: each element's bytes are offered first (`onRaw`), and bytes that an element of
 * the base poll had (a salted digest of the bytes, src/keptDigests.ts RawMemo) are that element:
 * its id is read where it was, its digest is the base's, and it is held as bytes, parsed only if
 * the main thread wants it in full. The rest are parsed and compared as before.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { JsonSelectStream, JsonStreamError, type SelectKey, memberSpan } from './jsonStream.js';
import { type DigestTable, KeptMemory, type RawMemo, digestOf, idHash, rawDigestOf, rawSalt } from './keptDigests.js';
import type { FromParseWorker, ToParseWorker } from './parseOffThread.js';
import { type PickShape, applyShape } from './pick.js';

interface Stream {
  reader: JsonSelectStream;
  shape: PickShape | undefined;
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
  /** Where the ids are in the bytes of this poll's elements, and of the base's. */
  recordRaw: RawMemo;
  baseRaw: RawMemo | undefined;
  /** The stream's salt for the digests of elements' bytes (src/keptDigests.ts rawSalt). */
  salt: Buffer;
  /** The element being parsed, offered as bytes first: recorded by the digest of its bytes once its id is known. */
  pending: { bytes: Buffer; digest: Uint32Array } | undefined;
}

/** An element held by its bytes, not parsed: parsed (and picked) only if the main thread wants it in full. */
class Unparsed {
  constructor(readonly bytes: Buffer) {}
}

const port = parentPort;
if (port === null) throw new Error('src/parseWorker.js runs as a worker thread (src/parseOffThread.ts starts it)');
const streams = new Map<number, Stream>();
const memory = new KeptMemory();
/** Elements kept by their bytes, unparsed, since this worker started (reported with 'count'). */
let byBytes = 0;
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
  if (k.pending !== undefined) {
    // Where its id is in its bytes, for the next poll to find it there (checked: the same id).
    const span = memberSpan(k.pending.bytes, k.field);
    if (span !== undefined && idAt(k.pending.bytes, span) === id) k.recordRaw.add(k.pending.digest, span[0], span[1]);
    k.pending = undefined;
  }
  if (k.base === undefined || !k.base.has(hash, digest)) return false;
  k.ids.push(id);
  for (const key of keys) k.idKeys.push(key);
  k.held.push(element);
  return true;
}

/**
 * The element's bytes, before they are parsed: whether they are those of an element of the base
 * poll (the digest of its bytes recorded there). If so the element is that one: its id is where
 * it was, its digest the base's for that id, and only its id is sent, without parsing it. Any
 * doubt (bytes not seen, an id the base recorded twice) leaves it to be parsed and compared as
 * every element is.
 */
function keepBytes(k: Keeping, bytes: Buffer, keys: readonly SelectKey[]): boolean {
  const digest = rawDigestOf(k.salt, bytes);
  k.pending = { bytes, digest };
  const span = k.baseRaw?.span(digest);
  if (span === undefined || k.base === undefined) return false;
  const id = idAt(bytes, span);
  if (id === undefined) return false;
  const hash = idHash(id);
  const picked = k.base.digestFor(hash);
  if (picked === undefined) return false;
  k.pending = undefined;
  k.record.add(hash, picked);
  k.recordRaw.add(digest, span[0], span[1]);
  k.ids.push(id);
  for (const key of keys) k.idKeys.push(key);
  k.held.push(new Unparsed(bytes));
  byBytes += 1;
  return true;
}

/** The id (a string or a number, as a string) whose JSON text is at `span` of `bytes`. */
function idAt(bytes: Buffer, span: readonly [number, number]): string | undefined {
  if (span[1] > bytes.length) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8', span[0], span[1]));
  } catch {
    return undefined;
  }
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
}

/** A held element as the main thread gets it: parsed and picked now if it was held by its bytes. */
function inFull(element: unknown, shape: PickShape | undefined): unknown {
  if (!(element instanceof Unparsed)) return element;
  const value: unknown = JSON.parse(element.bytes.toString('utf8'));
  return shape === undefined ? value : applyShape(value, shape);
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
      elements.push(inFull(held.elements[i], stream.shape));
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
          : {
              field: m.kept.id,
              record: opened.record,
              base: opened.base,
              ids: [],
              idKeys: [],
              held: [],
              waiting: new Map(),
              next: 0,
              rest: undefined,
              recordRaw: opened.recordRaw,
              baseRaw: opened.baseRaw,
              salt: rawSalt(shape, m.kept.id),
              pending: undefined,
            };
      const full = (): void => {
        if (stream.elements.length + (kept?.ids.length ?? 0) >= batch) flush(id, stream, 0);
      };
      const stream: Stream = {
        shape,
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
            if (kept !== undefined) kept.pending = undefined;
            full();
          },
          ...(kept === undefined || m.kept?.bytes === false
            ? {}
            : {
                onRaw: (bytes: Buffer, keys: readonly SelectKey[]) => {
                  if (!keepBytes(kept, bytes, keys)) return false;
                  full();
                  return true;
                },
              }),
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
      if (stream === undefined) return;
      try {
        answered(m.id, stream, m.batch, m.want);
      } catch (e) {
        // An element held by its bytes did not parse after all (its bytes parsed in the base poll).
        return failed(m.id, e);
      }
      return;
    }
    case 'drop':
      streams.delete(m.id);
      return;
    case 'count':
      return post({ t: 'count', streams: streams.size, keptBytes: memory.bytes(), generations: memory.generations(), byBytes, cpuMs: cpuMs() });
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

/** This thread's time on a core so far, ms (/proc/thread-self/schedstat), or NaN where there is none. */
function cpuMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}
