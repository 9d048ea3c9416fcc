/**
 * What the HTTP transport does with a hostile or careless server: redirects to another origin,
 * oversized and compressed-bomb bodies, and what its errors carry. Two real local servers (two
 * origins: different ports of 127.0.0.1).
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError, createHttpClient } from '../../src/http.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function serve(): { server: Server; seen: Seen[]; handle: (h: Handler) => void; url: () => string } {
  const seen: Seen[] = [];
  let handler: Handler = (_req, res) => res.end('{}');
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      handler(req, res);
    });
  });
  return { server, seen, handle: (h) => (handler = h), url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const a = serve();
const b = serve();
beforeAll(async () => {
  await Promise.all([a, b].map((s) => new Promise<void>((ok) => s.server.listen(0, '127.0.0.1', ok))));
});
afterAll(async () => {
  await Promise.all([a, b].map((s) => new Promise<void>((ok) => s.server.close(() => ok()))));
});

const redirect = (status: number, to: () => string): Handler => (_req, res) => {
  res.writeHead(status, { location: to() }).end();
};

const TOKEN = 'gAAAAA-secret-token-0123456789';
const PASSWORD = 'hunter2-secret-password';

describe('redirects never carry credentials to another origin', () => {
  it('a token-bearing GET redirected (302) to another origin is refused, and the other origin sees nothing', async () => {
    a.seen.length = 0;
    b.seen.length = 0;
    a.handle(redirect(302, () => `${b.url()}/steal`));
    const http = createHttpClient({ baseUrl: a.url(), retries: 0, auth: { headers: () => Promise.resolve({ 'X-Auth-Token': TOKEN }) } });
    const error = await http.get('/servers').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).message).toMatch(/answered 302 redirecting to another origin, http:\/\/127\.0\.0\.1:\d+\/steal: not followed/);
    expect(b.seen).toEqual([]);
  });

  it('a 307 of a POST with a password body to another origin is refused (the body is never re-sent)', async () => {
    b.seen.length = 0;
    a.handle(redirect(307, () => `${b.url()}/v3/auth/tokens`));
    const http = createHttpClient({ baseUrl: a.url(), retries: 0 });
    const error = await http.post('/v3/auth/tokens', { auth: { password: PASSWORD } }).catch((e: unknown) => e);
    expect((error as HttpError).message).toMatch(/redirecting to another origin/);
    expect(b.seen).toEqual([]);
  });

  it('basic auth never follows to another origin either', async () => {
    b.seen.length = 0;
    a.handle(redirect(301, () => `${b.url()}/cgi-bin/statusjson.cgi`));
    const http = createHttpClient({ baseUrl: a.url(), retries: 0, basicAuth: { username: 'nagiosadmin', password: PASSWORD } });
    await expect(http.get('/cgi-bin/statusjson.cgi')).rejects.toThrow(/another origin/);
    expect(b.seen).toEqual([]);
  });

  it('within the origin a redirect is followed with its credentials (the other direction)', async () => {
    a.seen.length = 0;
    a.handle((req, res) => {
      if (req.url === '/old') res.writeHead(308, { location: '/new' }).end();
      else res.end(JSON.stringify({ at: req.url }));
    });
    const http = createHttpClient({ baseUrl: a.url(), retries: 0, auth: { headers: () => Promise.resolve({ 'X-Auth-Token': TOKEN }) } });
    expect(await http.get('/old')).toEqual({ at: '/new' });
    expect(a.seen.map((r) => [r.url, r.headers['x-auth-token']])).toEqual([
      ['/old', TOKEN],
      ['/new', TOKEN],
    ]);
  });

  it('a request without credentials follows a redirect to another origin; a 303 after a POST becomes a GET', async () => {
    b.seen.length = 0;
    a.handle(redirect(302, () => `${b.url()}/public`));
    b.handle((_req, res) => res.end('{"public":true}'));
    const http = createHttpClient({ baseUrl: a.url(), retries: 0 });
    expect(await http.get('/x')).toEqual({ public: true });
    expect(b.seen.map((r) => [r.method, r.url, r.headers['x-auth-token'], r.headers.authorization])).toEqual([['GET', '/public', undefined, undefined]]);

    a.seen.length = 0;
    a.handle((req, res) => (req.url === '/form' ? res.writeHead(303, { location: '/done' }).end() : res.end('{"ok":1}')));
    await http.post('/form', { x: 1 });
    expect(a.seen.map((r) => [r.method, r.url, r.body])).toEqual([
      ['POST', '/form', '{"x":1}'],
      ['GET', '/done', ''],
    ]);
  });

  it('a redirect loop stops after 5 hops', async () => {
    a.handle((req, res) => res.writeHead(302, { location: `/loop${(req.url ?? '').length}` }).end());
    await expect(createHttpClient({ baseUrl: a.url(), retries: 0 }).get('/l')).rejects.toThrow(/redirected more than 5 times/);
  });
});

describe('response bodies are bounded', () => {
  it('an oversized body fails the request with a clear, non-retried error', async () => {
    a.seen.length = 0;
    a.handle((_req, res) => res.end(JSON.stringify({ servers: 'x'.repeat(200_000) })));
    const http = createHttpClient({ baseUrl: a.url(), retries: 3, maxResponseBytes: 100_000, name: 'nova' });
    const error = (await http.get('/servers/detail').catch((e: unknown) => e)) as HttpError;
    expect(error.message).toMatch(/^nova: GET http:\/\/127\.0\.0\.1:\d+\/servers\/detail answered with a body larger than 100000 bytes/);
    expect(error.retryable).toBe(false);
    expect(a.seen).toHaveLength(1);
  });

  it('a gzip bomb is counted after decompression', async () => {
    const bomb = gzipSync(Buffer.from(JSON.stringify({ servers: '0'.repeat(5_000_000) })));
    expect(bomb.length).toBeLessThan(100_000);
    a.handle((_req, res) => res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'application/json' }).end(bomb));
    const http = createHttpClient({ baseUrl: a.url(), retries: 0, maxResponseBytes: 1_000_000 });
    await expect(http.get('/servers/detail')).rejects.toThrow(/larger than 1000000 bytes \(counted after decompression/);
  });

  it('a body under the cap goes through', async () => {
    a.handle((_req, res) => res.end(JSON.stringify({ n: 'y'.repeat(1000) })));
    expect(await createHttpClient({ baseUrl: a.url(), maxResponseBytes: 10_000 }).get<{ n: string }>('/')).toMatchObject({ n: expect.any(String) });
  });
});

describe('errors carry no credential', () => {
  it('inspecting an HttpError (cause included) shows neither the token, the basic auth nor the password body', async () => {
    const port = a.url().split(':')[2];
    a.server.closeAllConnections();
    // A connection error: axios's own error would hold the whole request config.
    const closed = createServer();
    await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
    const dead = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((ok) => closed.close(() => ok()));
    for (const http of [
      createHttpClient({ baseUrl: dead, retries: 0, auth: { headers: () => Promise.resolve({ 'X-Auth-Token': TOKEN }) } }),
      createHttpClient({ baseUrl: dead, retries: 0, basicAuth: { username: 'nagiosadmin', password: PASSWORD } }),
    ]) {
      const error = await http.post('/v3/auth/tokens', { auth: { password: PASSWORD } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpError);
      const text = inspect(error, { depth: 10, showHidden: true });
      expect(text).toMatch(/ECONNREFUSED/);
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(Buffer.from(`nagiosadmin:${PASSWORD}`).toString('base64'));
    }
    // And a status error of a server that echoes nothing secret.
    a.handle((_req, res) => res.writeHead(500).end('boom'));
    const error = await createHttpClient({ baseUrl: a.url(), retries: 0, auth: { headers: () => Promise.resolve({ 'X-Auth-Token': TOKEN }) } })
      .post('/x', { password: PASSWORD })
      .catch((e: unknown) => e);
    expect(inspect(error, { depth: 10, showHidden: true })).not.toContain(TOKEN);
    expect(port).toBeDefined();
  });
});
