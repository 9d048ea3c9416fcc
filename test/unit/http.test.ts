import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError, createHttpClient, fetchAllPages, parseRetryAfter, safeUrl } from '../../src/http.js';
import { createLogger } from '../../src/log.js';
import { SLICE_MS, setSliceMs, turnBudget } from '../../src/pause.js';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;
let handler: Handler = (_req, res) => res.end('{}');
let requests: { url: string; headers: IncomingMessage['headers'] }[] = [];
const server = createServer((req, res) => {
  requests.push({ url: req.url ?? '', headers: req.headers });
  handler(req, res, new URL(req.url ?? '/', 'http://127.0.0.1'));
});
let base = '';

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function client(extra: Parameters<typeof createHttpClient>[0] = {}) {
  requests = [];
  return createHttpClient({ baseUrl: base, backoff: { initialMs: 5, jitter: 0 }, timeoutMs: 2000, ...extra });
}

describe('HttpClient', () => {
  it('retries 5xx with backoff, then succeeds', async () => {
    let n = 0;
    handler = (_req, res) => {
      n += 1;
      if (n < 3) {
        res.statusCode = 503;
        res.end('busy');
      } else res.end('{"ok":true}');
    };
    expect(await client().get('/flaky')).toEqual({ ok: true });
    expect(requests).toHaveLength(3);
  });

  it('gives up after `retries` and names method, URL and status, never the token', async () => {
    handler = (_req, res) => {
      res.statusCode = 500;
      res.end('boom');
    };
    const error = await client({ retries: 2 }).get('/down', { params: { token: 's3cret', a: 1 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).message).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/down\?token=\*\*\*&a=1 failed with 500/);
    expect((error as HttpError).message).not.toContain('s3cret');
    expect(requests).toHaveLength(3);
  });

  it('fails at once on other 4xx', async () => {
    handler = (_req, res) => {
      res.statusCode = 404;
      res.end('{"itemNotFound":{"message":"nope"}}');
    };
    const error = (await client().get('/missing').catch((e: unknown) => e)) as HttpError;
    expect(error.status).toBe(404);
    expect(error.message).toContain('/missing failed with 404');
    expect(requests).toHaveLength(1);
  });

  it('waits Retry-After on 429', async () => {
    let n = 0;
    handler = (_req, res) => {
      n += 1;
      if (n === 1) {
        res.statusCode = 429;
        res.setHeader('Retry-After', '1');
        res.end();
      } else res.end('[]');
    };
    const started = Date.now();
    await client().get('/limited');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(requests).toHaveLength(2);
  });

  it('times out a hung request and retries it', async () => {
    let n = 0;
    handler = (_req, res) => {
      n += 1;
      if (n > 1) res.end('"late"');
    };
    expect(await client({ timeoutMs: 100 }).get('/hang')).toBe('late');
    expect(requests).toHaveLength(2);
  });

  it('rejects malformed JSON with the URL', async () => {
    handler = (_req, res) => res.end('{"servers": [');
    await expect(client().get('/bad')).rejects.toThrow(/GET .*\/bad answered 200 with a body that is not valid JSON/);
  });

  it('stops when its AbortSignal fires', async () => {
    const controller = new AbortController();
    // Aborted once the server holds the request (which it never answers).
    handler = () => controller.abort();
    await expect(client({ timeoutMs: 10_000 }).get('/never', { signal: controller.signal })).rejects.toThrow(/aborted/);
    expect(requests).toHaveLength(1);
  });

  it('sends basic auth and returns text', async () => {
    handler = (req, res) => res.end(req.headers.authorization ?? 'none');
    expect(await client({ basicAuth: { username: 'nagios', password: 'pw' } }).getText('/cgi')).toBe(`Basic ${Buffer.from('nagios:pw').toString('base64')}`);
  });

  it('renews the auth headers once on a 401', async () => {
    let token = 'old';
    const renewals: string[] = [];
    handler = (req, res) => {
      if (req.headers['x-auth-token'] !== 'new') {
        res.statusCode = 401;
        res.end();
      } else res.end('1');
    };
    const http = client({
      auth: {
        headers: () => Promise.resolve({ 'X-Auth-Token': token }),
        unauthorized: (h) => {
          renewals.push(h['X-Auth-Token']!);
          token = 'new';
        },
      },
    });
    expect(await http.get('/x')).toBe(1);
    expect(renewals).toEqual(['old']);
    token = 'revoked';
    handler = (_req, res) => {
      res.statusCode = 401;
      res.end();
    };
    await expect(http.get('/x')).rejects.toThrow(/401.*also after renewing/);
  });
});

describe('fetchAllPages', () => {
  it('follows *_links rel=next, keeping the asked-for URL and the original params', async () => {
    handler = (_req, res, url) => {
      const m = Number(url.searchParams.get('marker') ?? 0);
      const body: Record<string, unknown> = { items: [{ id: String(m + 1) }, { id: String(m + 2) }] };
      // A link prefix the client can't reach, as behind a proxy.
      if (m < 4) body.items_links = [{ rel: 'next', href: `http://internal.invalid:1/items?marker=${m + 2}&limit=2&all_tenants=1` }];
      res.end(JSON.stringify(body));
    };
    const records = await fetchAllPages<{ id: string }>(client(), '/items', { key: 'items', params: { all_tenants: 1 } });
    expect(records.map((r) => r.id)).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(requests.map((r) => r.url)).toEqual(['/items?all_tenants=1', '/items?all_tenants=1&marker=2&limit=2', '/items?all_tenants=1&marker=4&limit=2']);
  });

  it('counts what it received (responses, body bytes, records) for the poll\'s progress and says nothing itself', async () => {
    handler = (_req, res, url) => {
      const m = Number(url.searchParams.get('marker') ?? 0);
      res.end(JSON.stringify({ stacks: m < 4 ? [{ id: String(m + 1) }, { id: String(m + 2) }] : [{ id: '5' }] }));
    };
    const lines: string[] = [];
    const http = client({ name: 'heat', log: createLogger('info', (l) => lines.push(l)) });
    await fetchAllPages<{ id: string }>(http, '/stacks', { key: 'stacks', limit: 2 });
    expect(http.received).toEqual({ responses: 3, bytes: 2 * '{"stacks":[{"id":"1"},{"id":"2"}]}'.length + '{"stacks":[{"id":"5"}]}'.length, records: 5 });
    // Progress is the poll's to log (pollSnapshots), over every client of the source.
    expect(lines).toEqual([]);
  });

  it('uses marker/limit when a full page carries no links', async () => {
    handler = (_req, res, url) => {
      const m = Number(url.searchParams.get('marker') ?? 0);
      res.end(JSON.stringify({ stacks: m < 4 ? [{ id: String(m + 1) }, { id: String(m + 2) }] : [{ id: '5' }] }));
    };
    const records = await fetchAllPages<{ id: string }>(client(), '/stacks', { key: 'stacks', limit: 2 });
    expect(records.map((r) => r.id)).toEqual(['1', '2', '3', '4', '5']);
  });

  it('keeps what pick returns for each object record, as its page arrives, and other values as they are', async () => {
    handler = (_req, res, url) => {
      const m = Number(url.searchParams.get('marker') ?? 0);
      res.end(JSON.stringify({ items: m === 0 ? [{ id: '1', big: 'x'.repeat(100) }, null, 'odd'] : [{ id: '2', big: 'y' }] }));
    };
    const picked: string[] = [];
    const records = await fetchAllPages<{ id: string } | null | string>(client(), '/items', {
      key: 'items',
      limit: 3,
      markerOf: () => '1',
      pick: (r) => {
        const { id } = r as { id: string };
        picked.push(id);
        return { id };
      },
    });
    expect(records).toEqual([{ id: '1' }, null, 'odd', { id: '2' }]);
    expect(picked).toEqual(['1', '2']);
  });

  it('reads a page record by record as its bytes arrive, not once the page has ended', async () => {
    const picked: string[] = [];
    handler = (_req, res) => {
      res.write('{"items":[{"id":"1"},');
      // The rest of the page is sent only once the first record was read: a page parsed whole
      // would wait for its end, and the request would time out.
      const more = setInterval(() => {
        if (picked.length === 0) return;
        clearInterval(more);
        res.end('{"id":"2"}]}');
      }, 5);
      res.on('close', () => clearInterval(more));
    };
    const records = await fetchAllPages<{ id: string }>(client({ retries: 0 }), '/items', { key: 'items', pick: (r) => (picked.push(r.id), r) });
    expect(records).toEqual([{ id: '1' }, { id: '2' }]);
  });

  it('bounds one record of a page by maxResponseSize, not the page', async () => {
    const page = { items: Array.from({ length: 50 }, (_, i) => ({ id: String(i), pad: 'x'.repeat(80) })) };
    handler = (_req, res) => res.end(JSON.stringify(page));
    expect(await fetchAllPages(client({ maxResponseBytes: 1000 }), '/items', { key: 'items' })).toHaveLength(50);
    page.items[7]!.pad = 'x'.repeat(2000);
    await expect(fetchAllPages(client({ maxResponseBytes: 1000 }), '/items', { key: 'items' })).rejects.toThrow(/GET .*\/items.*maxResponseSize/);
  });

  it('pages a bare JSON array by limit and marker, the marker read by markerOf (Aodh)', async () => {
    handler = (_req, res, url) => {
      const m = Number(url.searchParams.get('marker') ?? 0);
      res.end(JSON.stringify(m < 4 ? [{ alarm_id: String(m + 1) }, { alarm_id: String(m + 2) }] : [{ alarm_id: '5' }]));
    };
    const records = await fetchAllPages<{ alarm_id: string }>(client(), '/v2/alarms', { key: null, limit: 2, markerOf: (r) => (r as { alarm_id: string }).alarm_id });
    expect(records.map((r) => r.alarm_id)).toEqual(['1', '2', '3', '4', '5']);
    expect(requests.map((r) => r.url)).toEqual(['/v2/alarms?limit=2', '/v2/alarms?limit=2&marker=2', '/v2/alarms?limit=2&marker=4']);
    handler = (_req, res) => res.end(JSON.stringify({ alarms: [] }));
    await expect(fetchAllPages(client(), '/v2/alarms', { key: null })).rejects.toThrow(/GET .*\/v2\/alarms: expected a JSON array/);
  });

  it("follows a page's own `next` URL until a page has none, even an empty last page (Ironic)", async () => {
    handler = (_req, res, url) => {
      const m = Number(url.searchParams.get('marker') ?? 0);
      const nodes = m < 2 ? [{ uuid: String(m + 1) }] : [];
      res.end(JSON.stringify(nodes.length ? { nodes, next: `http://internal.invalid:1/v1/nodes/detail?limit=1&sort_key=id&marker=${m + 1}` } : { nodes }));
    };
    const records = await fetchAllPages<{ uuid: string }>(client(), '/v1/nodes/detail', { key: 'nodes', next: 'next', limit: 1 });
    expect(records.map((r) => r.uuid)).toEqual(['1', '2']);
    expect(requests.map((r) => r.url)).toEqual(['/v1/nodes/detail?limit=1', '/v1/nodes/detail?limit=1&sort_key=id&marker=1', '/v1/nodes/detail?limit=1&sort_key=id&marker=2']);
  });

  it('follows rel=next in another list of links (Trove: `links`)', async () => {
    handler = (_req, res, url) => {
      const m = Number(url.searchParams.get('marker') ?? 0);
      res.end(JSON.stringify({ instances: [{ id: String(m + 1) }], links: m < 2 ? [{ rel: 'next', href: `/v1.0/p/instances?marker=${m + 1}` }] : [] }));
    };
    const records = await fetchAllPages<{ id: string }>(client(), '/instances', { key: 'instances', next: { links: 'links' } });
    expect(records.map((r) => r.id)).toEqual(['1', '2', '3']);
  });

  it('fails as a whole when one page fails', async () => {
    handler = (_req, res, url) => {
      if (url.searchParams.get('marker') === '2') {
        res.statusCode = 400;
        res.end();
        return;
      }
      res.end(JSON.stringify({ items: [{ id: '1' }, { id: '2' }], items_links: [{ rel: 'next', href: '/items?marker=2' }] }));
    };
    await expect(fetchAllPages(client(), '/items', { key: 'items' })).rejects.toThrow(/marker=2 failed with 400/);
  });

  it('refuses a server that repeats a page', async () => {
    handler = (_req, res) => res.end(JSON.stringify({ items: [{ id: '1' }], items_links: [{ rel: 'next', href: '/items?marker=1' }] }));
    await expect(fetchAllPages(client(), '/items', { key: 'items' })).rejects.toThrow(/pagination loop/);
  });

  it('knows a repeated page by its query, whatever the order of its parameters, and names its URL', async () => {
    handler = (_req, res, url) => {
      // The same page again and again, its link's parameters in another order each time.
      const next = url.searchParams.get('b') === null ? '/items?b=1&a=2' : url.search.startsWith('?b') ? '/items?a=2&b=1' : '/items?b=1&a=2';
      res.end(JSON.stringify({ items: [{ id: '1' }], items_links: [{ rel: 'next', href: next }] }));
    };
    const http = client();
    await expect(fetchAllPages(http, '/items', { key: 'items' })).rejects.toThrow(/^http:\/\/127\.0\.0\.1:\d+\/items\?a=2&b=1: the server sent the same next page twice \(pagination loop\)$/);
    expect(requests.map((r) => r.url)).toEqual(['/items', '/items?b=1&a=2']);
  });
});

describe("fetchAllPages and the turn's budget (src/pause.ts)", () => {
  const pages: Handler = (_req, res, url) => {
    const m = Number(url.searchParams.get('marker') ?? 0);
    const body: Record<string, unknown> = { items: [{ id: String(m + 1) }, { id: String(m + 2) }] };
    if (m < 4) body.items_links = [{ rel: 'next', href: `/items?marker=${m + 2}` }];
    res.end(JSON.stringify(body));
  };
  /** A client whose getEach calls are seen: the turn each was made in, and their promises. */
  function watched(extra: Parameters<typeof createHttpClient>[0] = {}) {
    const http = client(extra);
    const events: string[] = [];
    const askedIn: number[] = [];
    const asked: Promise<unknown>[] = [];
    const getEach = http.getEach.bind(http);
    http.getEach = (url, options) => {
      askedIn.push(turnBudget.turn);
      events.push(`get ${String(options.params?.marker ?? 0)}`);
      const answer = getEach(url, options);
      asked.push(answer.catch((e: unknown) => e));
      return answer;
    };
    return { http, events, askedIn, asked };
  }
  async function withSliceMs<T>(ms: number, run: () => Promise<T>): Promise<T> {
    setSliceMs(ms);
    try {
      return await run();
    } finally {
      setSliceMs(SLICE_MS);
    }
  }

  it('asks for the next page before it hands this one over (the server prepares it meanwhile)', async () => {
    handler = pages;
    const { http, events } = watched();
    // A budget that is never spent here: the order is the code's, not the clock's.
    await withSliceMs(60_000, () => fetchAllPages<{ id: string }>(http, '/items', { key: 'items', onPage: (page) => events.push(`page ${page.map((r) => r.id).join(',')}`) }));
    expect(events).toEqual(['get 0', 'get 2', 'page 1,2', 'get 4', 'page 3,4', 'page 5,6']);
  });

  it('never sets a request up in a turn whose budget is spent', async () => {
    handler = pages;
    const { http, askedIn } = watched();
    /** The budget's turn in which each page's last record was read. */
    const readIn: number[] = [];
    await withSliceMs(0.05, () =>
      fetchAllPages<{ id: string }>(http, '/items', {
        key: 'items',
        // Each record's read spends the turn's budget (a few µs of it here): the page's end, and
        // whatever comes in that turn, finds it spent.
        pick: (r) => {
          while (!turnBudget.spent());
          readIn[Math.floor((Number(r.id) - 1) / 2)] = turnBudget.turn;
          return r;
        },
        onPage: () => undefined,
      }),
    );
    expect(askedIn).toHaveLength(3);
    // Each request after the first in a later turn than its page's reading, which spent the budget.
    for (let page = 0; page < 2; page++) expect(askedIn[page + 1], `page ${page + 2}`).toBeGreaterThan(readIn[page]!);
  });

  it('a delivery that throws fails the whole read, and the next page asked for meanwhile is aborted', async () => {
    handler = (_req, res, url) => {
      if (url.searchParams.get('marker') === null) res.end(JSON.stringify({ items: [{ id: '1' }], items_links: [{ rel: 'next', href: '/items?marker=1' }] }));
      // The second page never ends by itself: only an abort (or the request's timeout) frees it.
      else res.write('{"items":[');
    };
    const { http, asked } = watched({ retries: 0 });
    const read = withSliceMs(60_000, () =>
      fetchAllPages<{ id: string }>(http, '/items', {
        key: 'items',
        onPage: () => {
          throw new Error('the sink is gone');
        },
      }),
    );
    await expect(read).rejects.toThrow('the sink is gone');
    expect(asked).toHaveLength(2);
    expect(String(await asked[1])).toMatch(/GET .*\/items\?marker=1 aborted/);
  });
});

describe('helpers', () => {
  it('safeUrl drops userinfo and masks secrets', () => {
    expect(safeUrl('http://u:p@127.0.0.1/x?password=a&b=c')).toBe('http://127.0.0.1/x?password=***&b=c');
  });
  it('parseRetryAfter reads seconds and dates', () => {
    expect(parseRetryAfter('7', 0)).toBe(7000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4000)).toBe(6000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
  });
});
