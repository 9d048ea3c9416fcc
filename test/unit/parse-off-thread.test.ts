/**
 * Streamed JSON bodies read on the parse worker (src/parseOffThread.ts) against the reader on
 * this thread: random documents cut into random chunks give the same elements (picked by the
 * same shapes), keys, rest and errors; over HTTP (a real local server), a worker that dies fails
 * the request retryably and the next one reads on a new worker, an abort frees the stream in the
 * worker, and the records a pick keeps still carry the pages' marker.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError, createHttpClient, fetchAllPages } from '../../src/http.js';
import { JsonSelectStream, type SelectKey } from '../../src/jsonStream.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { PARSE_WORKER_NICE, WINDOW_BYTES, parseOffThread, parseWorkerForTests, parseWorkerStreams } from '../../src/parseOffThread.js';
import { type PickShape, applyShape } from '../../src/pick.js';
import { ALARM_PICK } from '../../sources/openstack/aodh.js';
import { NODE_PICK } from '../../sources/openstack/ironic.js';

interface Read {
  elements: [unknown, SelectKey[]][];
  rest?: unknown;
  error?: { name: string; message: string; kind?: unknown; offset?: unknown };
}

interface Bounds {
  select: string;
  pick: PickShape | undefined;
  maxBytes: number;
  maxElements: number;
  maxDepth: number;
}

function errorOf(e: unknown): Read['error'] {
  const { name, message, kind, offset } = e as { name: string; message: string; kind?: unknown; offset?: unknown };
  return { name, message, kind, offset };
}

function readHere(chunks: Buffer[], b: Bounds): Read {
  const elements: Read['elements'] = [];
  const reader = new JsonSelectStream({ ...b, onElement: (e, keys) => elements.push([b.pick === undefined ? e : applyShape(e, b.pick), [...keys]]) });
  try {
    for (const c of chunks) reader.write(c);
    return { elements, rest: reader.end() };
  } catch (e) {
    return { elements, error: errorOf(e) };
  }
}

async function readOffThread(chunks: Buffer[], b: Bounds): Promise<Read> {
  const elements: Read['elements'] = [];
  const parse = parseOffThread({ ...b, ...(b.pick !== undefined ? { pick: b.pick } : {}), onElement: (e, keys) => elements.push([e, [...keys]]), log: silentLogger });
  try {
    for (const c of chunks) await parse.write(c);
    return { elements, rest: await parse.end() };
  } catch (e) {
    return { elements, error: errorOf(e) };
  } finally {
    parse.drop();
  }
}

const SHAPE: PickShape = { id: true, name: true, flavor: { original_name: true }, fixed_ips: { ip_address: true } };
const value = fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' });
/** An element: a record with some of the shape's fields (and others), or any JSON value. */
const element = fc.oneof(
  fc.record(
    {
      id: fc.oneof(fc.uuid(), fc.integer()),
      name: fc.string({ unit: 'grapheme' }),
      flavor: fc.oneof(fc.record({ original_name: fc.string({ unit: 'binary' }), id: value }, { requiredKeys: [] }), value),
      fixed_ips: fc.oneof(fc.array(fc.oneof(fc.record({ ip_address: fc.ipV4(), subnet_id: fc.uuid() }, { requiredKeys: [] }), value), { maxLength: 3 }), value),
      other: value,
    },
    { requiredKeys: [] },
  ),
  value,
);
const elements = fc.array(element, { maxLength: 12 });
/** A document and the path of its elements. */
const document = fc.oneof(
  elements.map((list) => ({ select: '[*]', doc: list as unknown })),
  fc.tuple(elements, value).map(([list, around]) => ({ select: 'servers[*]', doc: { before: around, servers: list, servers_links: [{ rel: 'next', href: 'http://x/?marker=a"b\\c' }] } as unknown })),
  fc.tuple(fc.dictionary(fc.string({ unit: 'binary' }), element, { maxKeys: 6 }), value).map(([map, around]) => ({ select: 'data.hostlist.*', doc: { data: { hostlist: map, around }, result: { type: 'ok' } } as unknown })),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 4 }), element, { maxKeys: 3 }), { maxKeys: 3 }).map((map) => ({ select: 'data.servicelist.*.*', doc: { data: { servicelist: map } } as unknown })),
);
/** What is done to the text: nothing, cut short, a byte replaced, a byte order mark put in front. */
const damage = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'none' as const }) },
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('garble' as const), at: fc.nat(), byte: fc.constantFrom(...'{}[],:"\\x 0'.split('').map((c) => c.charCodeAt(0)), 0xc3) }),
  fc.constant({ kind: 'bom' as const }),
);
const bounds = fc.record({
  maxBytes: fc.oneof(fc.constant(64 * 1024 * 1024), fc.integer({ min: 8, max: 400 })),
  maxElements: fc.oneof(fc.constant(Number.POSITIVE_INFINITY), fc.integer({ min: 0, max: 6 })),
  maxDepth: fc.oneof(fc.constant(512), fc.integer({ min: 1, max: 4 })),
  picked: fc.boolean(),
});

function damaged(text: Buffer, d: { kind: string; at?: number; byte?: number }): Buffer {
  if (d.kind === 'truncate') return text.subarray(0, d.at! % (text.length + 1));
  if (d.kind === 'garble' && text.length > 0) {
    const copy = Buffer.from(text);
    copy[d.at! % copy.length] = d.byte!;
    return copy;
  }
  if (d.kind === 'bom') return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), text]);
  return text;
}

function cut(text: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of [...at, text.length]) {
    chunks.push(text.subarray(from, c));
    from = c;
  }
  return chunks;
}

/** The nice value of each of this process's threads (Linux: /proc/self/task/TID/stat, field 19). */
function threadNices(): Map<number, number> {
  const nices = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      nices.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return nices;
}

describe('the parse worker reads what the reader on this thread reads', () => {
  it.skipIf(!existsSync('/proc/thread-self'))('runs at a lower priority than this thread, which keeps its own (Linux: per-thread nice)', async () => {
    const parse = parseOffThread({ select: '[*]', pick: { id: true }, maxBytes: 1 << 20, maxElements: 10, maxDepth: 8, onElement: () => undefined, log: silentLogger });
    await parse.write(Buffer.from('[{"id":1}]'));
    expect(await parse.end()).toEqual([]);
    const nices = threadNices();
    expect(nices.get(process.pid)).toBe(0);
    expect([...nices.values()].filter((n) => n === PARSE_WORKER_NICE).length).toBeGreaterThanOrEqual(1);
  });

  it('holds a writer back while more than WINDOW_BYTES wait for the worker, and lets it go when they are read', async () => {
    const seen: unknown[] = [];
    const parse = parseOffThread({ select: '[*]', maxBytes: 1 << 20, maxElements: 1000, maxDepth: 8, onElement: (e) => seen.push(e), log: silentLogger });
    const item = `"${'x'.repeat(1000)}"`;
    const body = Buffer.from(`[${Array.from({ length: Math.ceil(WINDOW_BYTES / 1000) + 10 }, () => item).join(',')}]`);
    expect(body.length).toBeGreaterThan(WINDOW_BYTES);
    // A chunk that owns its buffer, as a socket's do: it is transferred, not copied.
    const chunk = Buffer.alloc(body.length);
    body.copy(chunk);
    let released = false;
    const written = parse.write(chunk).then(() => (released = true));
    // Microtasks only: the worker's answers come in a later turn, so a writer let go now was never
    // held back (a warm worker could have answered within a turn, when this waited for one).
    for (let i = 0; i < 5; i += 1) await Promise.resolve();
    expect(released).toBe(false);
    await written;
    expect(seen.length).toBe(Math.ceil(WINDOW_BYTES / 1000) + 10);
    expect(await parse.end()).toEqual([]);
  });

  it('the same elements, keys, rest and errors, whatever the document, its damage, its bounds and its cuts', async () => {
    let failures = 0;
    await fc.assert(
      fc.asyncProperty(document, damage, bounds, fc.nat({ max: 2 }), fc.array(fc.nat(), { maxLength: 8 }), async ({ select, doc }, d, b, indent, cuts) => {
        const text = damaged(Buffer.from(JSON.stringify(doc, null, indent)), d);
        const chunks = cut(text, cuts);
        const options: Bounds = { select, pick: b.picked ? SHAPE : undefined, maxBytes: b.maxBytes, maxElements: b.maxElements, maxDepth: b.maxDepth };
        const here = readHere(chunks, options);
        if (here.error) failures += 1;
        expect(await readOffThread(chunks, options)).toStrictEqual(here);
      }),
      { numRuns: 300 },
    );
    // The errors are checked too, not only the happy path.
    expect(failures).toBeGreaterThan(20);
    expect(await parseWorkerStreams()).toBe(0);
  });

  it('a body of many chunks and elements arrives whole and in order (batches, and a writer held back by the window)', async () => {
    const items = Array.from({ length: 5000 }, (_, i) => ({ id: `s-${i}`, name: 'ü'.repeat(i % 50), flavor: { original_name: 'm1', vcpus: i }, pad: 'x'.repeat(300) }));
    const text = Buffer.from(JSON.stringify({ servers: items, servers_links: [] }));
    const chunks = cut(text, Array.from({ length: 400 }, (_, i) => i * 4099 + 7));
    const options: Bounds = { select: 'servers[*]', pick: SHAPE, maxBytes: 1 << 20, maxElements: 10_000, maxDepth: 64 };
    const off = await readOffThread(chunks, options);
    expect(off.elements).toHaveLength(5000);
    expect(off).toStrictEqual(readHere(chunks, options));
    expect(off.elements[4999]).toStrictEqual([{ id: 's-4999', name: 'ü'.repeat(4999 % 50), flavor: { original_name: 'm1' } }, [4999]]);
  });
});

type Handler = (req: IncomingMessage, res: ServerResponse) => unknown;
let handler: Handler = (_req, res) => res.end('[]');
const server = createServer((req, res) => void handler(req, res));
let base = '';
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Answers the first half of a list, and the rest when `release` is called. */
function halfThenRest(): { release: () => void } {
  let release = (): void => undefined;
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"items":[{"id":1},{"id":2},');
    release = () => res.end('{"id":3}]}');
  };
  return { release: () => release() };
}

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { ...silentLogger, warn: (message: string) => warnings.push(message), warnings } as Logger & { warnings: string[] };
}

describe('the parse worker behind the HTTP transport', () => {
  it('a worker that dies mid-body fails the request retryably (logged), and the next request reads on a new worker', async () => {
    const log = recordingLogger();
    const http = createHttpClient({ baseUrl: base, retries: 0, log });
    const body = halfThenRest();
    let first!: () => void;
    const arrived = new Promise<void>((resolve) => (first = resolve));
    const request = http.getEach('/items', { select: 'items[*]', pick: { id: true }, each: (item) => (first(), item) });
    await arrived;
    const dying = parseWorkerForTests()!;
    await dying.terminate();
    const error = await request.then(
      () => undefined,
      (e: unknown) => e,
    );
    body.release();
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).retryable).toBe(true);
    expect((error as HttpError).message).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/items failed while reading the body at byte \d+: the JSON parse worker exited \(code 1\)$/);
    expect(log.warnings).toEqual(['the JSON parse worker exited (code 1); the request reading through it is retried']);

    handler = (_req, res) => res.writeHead(200).end('{"items":[{"id":1},{"id":2}]}');
    const { records } = await http.getEach('/items', { select: 'items[*]', pick: { id: true }, each: (item) => item });
    expect(records).toEqual([{ id: 1 }, { id: 2 }]);
    expect(parseWorkerForTests()).not.toBe(dying);
    expect(parseWorkerForTests()!.threadId).not.toBe(dying.threadId);
  });

  it('with a retry, the same request reads again on a new worker and succeeds', async () => {
    let sent = 0;
    handler = (_req, res) => {
      sent += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      if (sent === 1) res.write('{"items":[{"id":1},');
      else res.end('{"items":[{"id":1},{"id":2}]}');
    };
    const http = createHttpClient({ baseUrl: base, retries: 1, backoff: { initialMs: 1, maxMs: 1 } });
    let killed = false;
    const { records } = await http.getEach('/items', {
      select: 'items[*]',
      pick: { id: true },
      each: (item) => {
        if (!killed) {
          killed = true;
          void parseWorkerForTests()!.terminate();
        }
        return item;
      },
    });
    expect(sent).toBe(2);
    expect(records).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('an abort mid-body frees the stream in the worker', async () => {
    const http = createHttpClient({ baseUrl: base, retries: 0 });
    const body = halfThenRest();
    const controller = new AbortController();
    let first!: () => void;
    const arrived = new Promise<void>((resolve) => (first = resolve));
    const request = http.getEach('/items', { select: 'items[*]', pick: { id: true }, each: (item) => (first(), item), signal: controller.signal });
    await arrived;
    expect(await parseWorkerStreams()).toBe(1);
    controller.abort();
    await expect(request).rejects.toThrow(/\/items aborted$/);
    expect(await parseWorkerStreams()).toBe(0);
    body.release();
  });

  it('a select without a shape is read on this thread: nothing would be saved by cloning whole elements back', async () => {
    const http = createHttpClient({ baseUrl: base, retries: 0 });
    const body = halfThenRest();
    let first!: () => void;
    const arrived = new Promise<void>((resolve) => (first = resolve));
    const request = http.getEach('/items', { select: 'items[*]', each: (item) => (first(), item) });
    await arrived;
    expect(await parseWorkerStreams()).toBe(0);
    body.release();
    expect((await request).records).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
  });

  it('a pick that keeps the marker pages on by it; one that drops it stops after the first page (aodh and ironic keep theirs)', async () => {
    expect(ALARM_PICK.alarm_id).toBe(true);
    expect(NODE_PICK.uuid).toBe(true);
    const alarms = Array.from({ length: 7 }, (_, i) => ({ alarm_id: `a${i}`, name: `n${i}`, type: 'event', event_rule: { event_type: 'compute.instance.*' }, alarm_actions: ['log://'] }));
    handler = (req, res) => {
      const q = new URL(req.url!, base).searchParams;
      const from = q.has('marker') ? alarms.findIndex((a) => a.alarm_id === q.get('marker')) + 1 : 0;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(alarms.slice(from, from + Number(q.get('limit')))));
    };
    const http = createHttpClient({ baseUrl: base, retries: 0 });
    const markerOf = (r: unknown): string | undefined => (r as { alarm_id?: string } | null)?.alarm_id;
    const all = await fetchAllPages(http, '/v2/alarms', { key: null, limit: 3, markerOf, pick: ALARM_PICK });
    expect(all).toEqual(alarms.map(({ alarm_actions: _, ...kept }) => kept));
    const { alarm_id: _, ...withoutMarker } = ALARM_PICK;
    expect(await fetchAllPages(http, '/v2/alarms', { key: null, limit: 3, markerOf, pick: withoutMarker })).toHaveLength(3);
  });
});

describe('the same answer read on the worker and on this thread (parseOffThread: false)', () => {
  const bodies: Record<string, string> = {
    whole: '{"servers":[{"id":"a","name":"ü\\"x","flavor":{"original_name":"m1","ram":1}},{"id":"b","image":""}],"servers_links":[]}',
    truncated: '{"servers":[{"id":"a"},{"id":"b"',
    garbled: '{"servers":[{"id":"a"},{"id" "b"}]}',
    'not JSON': '<html><body>502 Bad Gateway</body></html>',
    'too many': `{"servers":[${Array.from({ length: 5 }, (_, i) => `{"id":${i}}`).join(',')}]}`,
    'too big': `{"servers":[{"id":"a","pad":"${'x'.repeat(300)}"}]}`,
    'too deep': `{"servers":[${'['.repeat(600)}${']'.repeat(600)}]}`,
  };
  it.each(Object.keys(bodies))('%s', async (name) => {
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(bodies[name]);
    const outcome = async (parseOffThread: boolean): Promise<unknown> => {
      const http = createHttpClient({ baseUrl: base, retries: 0, maxResponseBytes: 256, maxResponseItems: 4, parseOffThread });
      const keys: unknown[] = [];
      try {
        const read = await http.getEach('/servers', { select: 'servers[*]', pick: { id: true, flavor: { original_name: true } }, each: (s, k) => (keys.push(k), s) });
        return { read, keys };
      } catch (e) {
        const { message, retryable, status } = e as HttpError;
        return { error: { message, retryable, status }, keys };
      }
    };
    const here = await outcome(false);
    expect(await outcome(true)).toStrictEqual(here);
    if (name === 'whole') expect(here).toStrictEqual({ read: { records: [{ id: 'a', flavor: { original_name: 'm1' } }, { id: 'b' }], rest: { servers: [], servers_links: [] } }, keys: [[0], [1]] });
    else expect(here).toMatchObject({ error: { retryable: false, status: 200 } });
  });
});
