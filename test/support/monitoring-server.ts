import { readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fixturePath } from './fixtures.js';

/** What the server answers to a request. */
export interface Reply {
  status?: number;
  body: string;
  contentType?: string;
}

/** A request the server received. */
export interface SeenRequest {
  method: string;
  /** Path and query as sent. */
  url: string;
  authorization?: string;
}

export interface MonitoringServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: SeenRequest[];
  /**
   * Answers requests for `path` whose query holds every pair of `query` (later routes win).
   * `reply` may be a function, called per request; a promise holds the answer until it resolves.
   */
  route(path: string, query: Record<string, string>, reply: Reply | (() => Reply | Promise<Reply>)): void;
  close(): Promise<void>;
}

/** A recorded response from ../shared/fixtures/wire, served as the real program served it. */
export function wire(file: string, status = 200): Reply {
  return { status, body: readFileSync(fixturePath('wire', file), 'utf8'), contentType: file.endsWith('.html') ? 'text/html; charset=utf-8' : 'application/json' };
}

/**
 * A local HTTP server on 127.0.0.1 (random port) that plays Nagios CGIs or Alertmanager from
 * recorded responses. With `basicAuth`, a request without those credentials gets 401 as Apache
 * answers it; a request no route matches gets 404.
 */
export async function startMonitoringServer(options: { basicAuth?: { username: string; password: string } } = {}): Promise<MonitoringServer> {
  const routes: { path: string; query: Record<string, string>; reply: Reply | (() => Reply | Promise<Reply>) }[] = [];
  const requests: SeenRequest[] = [];
  const expected = options.basicAuth ? `Basic ${Buffer.from(`${options.basicAuth.username}:${options.basicAuth.password}`).toString('base64')}` : undefined;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    if (expected !== undefined && req.headers.authorization !== expected) {
      res.writeHead(401, { 'Content-Type': 'text/html', 'WWW-Authenticate': 'Basic realm="nagios"' });
      res.end('<html><body><h1>Unauthorized</h1></body></html>');
      return;
    }
    const route = [...routes].reverse().find((r) => r.path === url.pathname && Object.entries(r.query).every(([k, v]) => url.searchParams.get(k) === v));
    if (!route) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end(`no route for ${req.url}`);
      return;
    }
    void Promise.resolve(typeof route.reply === 'function' ? route.reply() : route.reply).then((reply) => {
      res.writeHead(reply.status ?? 200, { 'Content-Type': reply.contentType ?? 'application/json' });
      res.end(reply.body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    route: (path, query, reply) => void routes.push({ path, query, reply }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
