/**
 * Streamed JSON answers over HTTP (`getEach`), against a real local HTTP server: the recorded
 * answers of Nagios, Alertmanager and Prometheus sent in random pieces (plain and gzip) give what
 * JSON.parse gives; hostile bodies (endless, one huge element, deep nesting, not JSON, a gzip
 * bomb) fail with errors naming the source and the URL, without reading the rest; a connection
 * lost mid-body is retried from scratch; a body already all in the kernel's buffer is read over
 * several turns of the event loop.
 */
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants, createGzip, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpClientOptions, HttpError, createHttpClient } from '../../src/http.js';
import type { SelectKey } from '../../src/jsonStream.js';
import { SLICE_MS } from '../../src/pause.js';
import { fixturePath } from '../support/fixtures.js';
import { WIRE, byKeys, expectedSelection } from '../support/json-select.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => unknown;
let handler: Handler = (_req, res) => res.end('[]');
let requests = 0;
const server = createServer((req, res) => {
  requests += 1;
  void handler(req, res);
});
let base = '';
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Sends `body` in the pieces `cuts` makes, each flushed on its own (through gzip when asked). */
function inPieces(body: Buffer, cuts: number[], gzip: boolean): Handler {
  return async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
    const z = gzip ? createGzip() : undefined;
    z?.pipe(res);
    const at = [...new Set(cuts.map((c) => Math.min(c, body.length)))].sort((a, b) => a - b);
    let from = 0;
    for (const to of [...at, body.length]) {
      const piece = body.subarray(from, to);
      from = to;
      if (z) await new Promise<void>((resolve) => z.write(piece, () => z.flush(constants.Z_SYNC_FLUSH, () => resolve())));
      else res.write(piece);
      await tick();
    }
    if (z) z.end();
    else res.end();
  };
}

/** Writes `head`, then `step` until the client goes away; `sent()` tells how much it wrote. */
function endless(head: string, step: string, contentEncoding?: string): { handler: Handler; sent: () => number; closed: Promise<void> } {
  let sent = 0;
  let closed!: () => void;
  const done = new Promise<void>((resolve) => (closed = resolve));
  return {
    sent: () => sent,
    closed: done,
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', ...(contentEncoding ? { 'content-encoding': contentEncoding } : {}) });
      let open = true;
      res.on('close', () => {
        open = false;
        closed();
      });
      res.write(head);
      sent += head.length;
      const more = (): void => {
        while (open && res.write(step)) sent += step.length;
        if (open) res.once('drain', more);
      };
      more();
    },
  };
}

const client = (options: HttpClientOptions = {}) => createHttpClient({ baseUrl: base, name: 'monitoring', retries: 0, timeoutMs: 10_000, backoff: { initialMs: 1, jitter: 0 }, ...options });
const pairs = (element: unknown, keys: readonly SelectKey[]): [SelectKey[], unknown] => [[...keys], element];

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the request to fail');
}

describe('a streamed answer over HTTP is what JSON.parse gives', () => {
  it('the recorded answers, cut anywhere, plain and gzip', async () => {
    for (const [file, select] of WIRE) {
      const body = readFileSync(fixturePath(...file));
      const want = expectedSelection(body.toString('utf8'), select);
      await fc.assert(
        fc.asyncProperty(fc.array(fc.integer({ min: 0, max: body.length }), { maxLength: 25 }), fc.boolean(), async (cuts, gzip) => {
          handler = inPieces(body, cuts, gzip);
          const { records, rest } = await client().getEach('/answer', { select, each: pairs });
          expect(byKeys(records)).toEqual(byKeys(want.elements));
          expect(rest).toEqual(want.rest);
        }),
        { numRuns: 12 },
      );
    }
  });

  it('counts what it read (progress logs), and a record `each` drops is not kept', async () => {
    const body = readFileSync(fixturePath('wire', 'prometheus', 'targets.json'));
    handler = inPieces(body, [100, 900], false);
    const http = client();
    const { records } = await http.getEach('/targets', { select: 'data.activeTargets[*]', each: (t, [i]) => (i === 0 ? undefined : t) });
    const all = (JSON.parse(body.toString('utf8')) as { data: { activeTargets: unknown[] } }).data.activeTargets;
    expect(records).toEqual(all.slice(1));
    expect(http.received).toEqual({ responses: 1, bytes: body.length, records: all.length });
  });
});

describe('hostile streamed bodies fail with the source and URL, and are not read to their end', () => {
  it('an endless list stops at maxResponseItems, and the connection is closed', async () => {
    const e = endless('[', '{"fingerprint":"a"},');
    handler = e.handler;
    const error = await failure(client({ maxResponseItems: 1000 }).getEach('/api/v2/alerts', { select: '[*]', each: () => 1 }));
    expect(error).toBeInstanceOf(HttpError);
    expect(error.message).toMatch(
      /^monitoring: GET http:\/\/127\.0\.0\.1:\d+\/api\/v2\/alerts answered 200 with more than 1000 elements at \[\*\] \(at byte 20001\) \(counted after decompression; raise maxResponseItems if it is expected\)$/,
    );
    expect((error as HttpError).retryable).toBe(false);
    await e.closed;
  });

  it('an endless body that never completes an element times out (the request timeout covers the body)', async () => {
    const e = endless('[{"a":', ' ');
    handler = e.handler;
    const error = await failure(client({ timeoutMs: 300 }).getEach('/slow', { select: '[*]', each: () => 1 }));
    expect(error.message).toMatch(/^monitoring: GET http:\/\/127\.0\.0\.1:\d+\/slow timed out after 300 ms$/);
    await e.closed;
  });

  it('one element larger than maxResponseSize fails when it passes the bound, not at the end of the body', async () => {
    const e = endless('{"data":{"activeTargets":[{"labels":{"a":"', 'x'.repeat(1024));
    handler = e.handler;
    const error = await failure(client({ maxResponseBytes: 64 * 1024 }).getEach('/api/v1/targets', { select: 'data.activeTargets[*]', each: () => 1 }));
    expect(error.message).toMatch(
      /^monitoring: GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/targets answered 200 with an element of data\.activeTargets\[\*\] starting at byte 26 is larger than 65536 bytes \(counted after decompression; raise maxResponseSize if it is expected\)$/,
    );
    await e.closed;
    expect(e.sent()).toBeLessThan(10 * 1024 * 1024);
  });

  it('a gzip bomb inside one element is counted after decompression', async () => {
    const bomb = gzipSync(Buffer.from(`[{"a":"${'0'.repeat(20 * 1024 * 1024)}"}]`));
    expect(bomb.length).toBeLessThan(64 * 1024);
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(bomb);
    const error = await failure(client({ maxResponseBytes: 1024 * 1024 }).getEach('/bomb', { select: '[*]', each: () => 1 }));
    expect(error.message).toMatch(/answered 200 with an element of \[\*\] starting at byte 1 is larger than 1048576 bytes/);
  });

  it('deep nesting fails at the depth bound', async () => {
    handler = (_req, res) => res.end(`[${'['.repeat(100_000)}`);
    const error = await failure(client().getEach('/deep', { select: '[*]', each: () => 1 }));
    expect(error.message).toMatch(/^monitoring: GET http:\/\/127\.0\.0\.1:\d+\/deep answered 200 with a value nested deeper than 512 levels at byte 513$/);
  });

  it('a body that is not JSON names the byte; a truncated one says so', async () => {
    handler = (_req, res) => res.end('[{"fingerprint":"a"} {"fingerprint":"b"}]');
    expect((await failure(client().getEach('/bad', { select: '[*]', each: () => 1 }))).message).toMatch(
      /^monitoring: GET http:\/\/127\.0\.0\.1:\d+\/bad answered 200 with a body that is not valid JSON: unexpected "\{", expected "," or "\]" at byte 21; it begins: \[\{"fingerprint":"a"\} \{"fingerprint":"b"\}\]$/,
    );
    handler = (_req, res) => res.end('<html>Service Unavailable</html>');
    expect((await failure(client().getEach('/html', { select: '[*]', each: () => 1 }))).message).toMatch(/answered 200 with a body that is not valid JSON: unexpected "<", expected a value at byte 0; it begins: <html>Service Unavailable<\/html>$/);
    handler = (_req, res) => res.end('[{"fingerprint":"a"},');
    expect((await failure(client().getEach('/cut', { select: '[*]', each: () => 1 }))).message).toMatch(/answered 200 with a body that is not valid JSON: the body ended before the document did \(at byte 21\): expected JSON; it begins: \[\{"fingerprint":"a"\},$/);
  });

  it('what `each` throws fails the request as it is, without a retry', async () => {
    requests = 0;
    handler = (_req, res) => res.end('[1,"two"]');
    const error = await failure(
      client({ retries: 3 }).getEach('/alerts', {
        select: '[*]',
        each: (a, [i]) => {
          if (typeof a !== 'number') throw new Error(`monitoring: GET /alerts: [${String(i)}]: expected a number`);
          return a;
        },
      }),
    );
    expect(error.message).toBe('monitoring: GET /alerts: [1]: expected a number');
    expect(requests).toBe(1);
  });

  it('a connection lost mid-body is retried, and the retry starts the records afresh', async () => {
    requests = 0;
    const body = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ fingerprint: `f${i}` })));
    handler = (_req, res) => {
      if (requests === 1) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(body.slice(0, 2000), () => res.destroy());
        return;
      }
      res.end(body);
    };
    const { records } = await client({ retries: 1 }).getEach('/alerts', { select: '[*]', each: (a) => a });
    expect(requests).toBe(2);
    expect(records).toEqual(JSON.parse(body));
  });

  it('an error status is reported with the start of its body, and 5xx is retried', async () => {
    requests = 0;
    handler = (_req, res) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`busy ${'.'.repeat(1_000_000)}`);
    const error = await failure(client({ retries: 1 }).getEach('/alerts', { select: '[*]', each: () => 1 }));
    expect(error.message).toMatch(/^monitoring: GET http:\/\/127\.0\.0\.1:\d+\/alerts failed with 503 Service Unavailable: busy \.{195}…$/);
    expect(requests).toBe(2);
  });
});

describe('a streamed answer shares the event loop', () => {
  // The server runs in a worker thread, as a real API runs elsewhere: it refills the socket while
  // this thread reads, so the whole body can be in the kernel's buffer. libuv then reads it up to
  // 32 chunks per callback, and without a yield the reader took a 1.7 MB page in one turn.
  it('yields to other I/O after SLICE_MS of reading, however much of the body is already there', async () => {
    const items = 4000;
    const worker = new Worker(
      `const { createServer } = require('node:http');
       const { parentPort } = require('node:worker_threads');
       const body = JSON.stringify({ items: Array.from({ length: ${items} }, (_, i) => ({ id: i, pad: 'x'.repeat(500) })) });
       const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
       server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
       parentPort.on('message', () => server.close(() => process.exit(0)));`,
      { eval: true },
    );
    try {
      const port = await new Promise<number>((resolve, reject) => worker.once('message', resolve).once('error', reject));
      // Each element costs ~20 µs of this thread, so a chunk (~120 elements) costs ~2.4 ms and
      // the 32 chunks of one libuv callback ~75 ms. Turns are counted by an immediate that
      // re-queues itself; the most elements read between two is what one turn held.
      let read = 0;
      let turns = 0;
      let mostInOneTurn = 0;
      let atTurn = 0;
      let reading = true;
      const spin = (): void => {
        turns += 1;
        mostInOneTurn = Math.max(mostInOneTurn, read - atTurn);
        atTurn = read;
        if (reading) setImmediate(spin);
      };
      setImmediate(spin);
      const busy = (us: number): void => {
        const until = performance.now() + us / 1000;
        while (performance.now() < until);
      };
      // The same kept-alive connection, read fast again and again: the kernel grows its receive
      // window with the rate of the reads (a fresh connection's holds a few chunks), as over a
      // poll's 100 pages. Then read slowly, and count.
      const http = createHttpClient({ baseUrl: `http://127.0.0.1:${port}`, retries: 0 });
      for (let round = 0; round < 8; round++) {
        const slow = round >= 6;
        if (round === 6) {
          mostInOneTurn = 0;
          turns = 0;
          atTurn = read;
        }
        const { records } = await http.getEach('/big', {
          select: 'items[*]',
          each: (item) => {
            if (slow) busy(20);
            read += 1;
            return item;
          },
        });
        expect(records).toHaveLength(items);
      }
      reading = false;
      // SLICE_MS of elements (at most 250 at 20 µs), plus the chunk in hand and one the stream
      // buffered while the reader yielded: a slice, not a page.
      expect(mostInOneTurn).toBeLessThanOrEqual(SLICE_MS * 50 + 2 * 130);
      expect(turns).toBeGreaterThan((2 * items) / (SLICE_MS * 50 + 2 * 130));
    } finally {
      worker.postMessage('close');
      await new Promise((resolve) => worker.once('exit', resolve));
    }
  });
});
