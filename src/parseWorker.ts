/**
 * The thread that reads streamed JSON bodies (started by src/parseOffThread.ts, which says why):
 * one JsonSelectStream per stream id, fed the chunks the main thread read off the socket, handing
 * back the selected elements cut down to their shape, in batches. Each chunk is answered (a
 * batch, perhaps empty, naming its bytes) so that the main thread knows how far behind it is.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { JsonSelectStream, JsonStreamError, type SelectKey } from './jsonStream.js';
import type { FromParseWorker, ToParseWorker } from './parseOffThread.js';
import { applyShape } from './pick.js';

interface Stream {
  reader: JsonSelectStream;
  elements: unknown[];
  keys: SelectKey[];
}

const port = parentPort;
if (port === null) throw new Error('src/parseWorker.js runs as a worker thread (src/parseOffThread.ts starts it)');
const streams = new Map<number, Stream>();
lowerPriority((workerData as { nice?: number } | null)?.nice);
const post = (message: FromParseWorker): void => port.postMessage(message);

function flush(id: number, stream: Stream, bytes: number): void {
  post({ t: 'batch', id, elements: stream.elements, keys: stream.keys, bytes });
  stream.elements = [];
  stream.keys = [];
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
      const stream: Stream = {
        elements: [],
        keys: [],
        reader: new JsonSelectStream({
          select: m.select,
          maxBytes: m.maxBytes,
          maxElements: m.maxElements,
          maxDepth: m.maxDepth,
          onElement: (element, keys) => {
            stream.elements.push(shape === undefined ? element : applyShape(element, shape));
            for (const k of keys) stream.keys.push(k);
            if (stream.elements.length >= batch) flush(id, stream, 0);
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
        streams.delete(m.id);
        return post({ t: 'end', id: m.id, rest });
      } catch (e) {
        flush(m.id, stream, 0);
        return failed(m.id, e);
      }
    }
    case 'drop':
      streams.delete(m.id);
      return;
    case 'count':
      return post({ t: 'count', streams: streams.size });
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
