import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Logger, asError, silentLogger } from './log.js';

/** Handles one request to its path; `url` is parsed (its query is the handler's to read or ignore). */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface Route {
  handler: RouteHandler;
  /** Methods it answers (default GET and HEAD); any other gets 405 with an Allow header. */
  methods: readonly string[];
}

/**
 * The service listener's routes, by exact path: the service adds its own (/, /livez, /readyz,
 * /health, /metrics, the status page's), and a part that needs a push endpoint (a webhook) adds
 * its path and methods the same way. Unknown paths get 404; query strings never select a route.
 */
export class Routes {
  private readonly table = new Map<string, Route>();

  /** `log` is told of every handler that failed (a 500), with the error's stack at debug. */
  constructor(private readonly log: Logger = silentLogger) {}

  /** Adds `path`; a path already taken is refused, so two parts never answer for one URL. */
  add(path: string, handler: RouteHandler, methods: readonly string[] = ['GET', 'HEAD']): this {
    if (!path.startsWith('/')) throw new Error(`route ${JSON.stringify(path)}: a path starts with /`);
    if (this.table.has(path)) throw new Error(`route ${path} is already served`);
    this.table.set(path, { handler, methods: methods.map((m) => m.toUpperCase()) });
    return this;
  }

  has(path: string): boolean {
    return this.table.has(path);
  }

  /** Answers one request: its route's handler, or 404/405/500 as plain text. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = this.table.get(url.pathname);
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found: ${url.pathname}\n`);
      return;
    }
    const method = req.method ?? 'GET';
    if (!route.methods.includes(method)) {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: route.methods.join(', ') }).end(`method ${method} not allowed on ${url.pathname}\n`);
      return;
    }
    try {
      await route.handler(req, res, url);
    } catch (e) {
      const error = asError(e);
      this.log.error('request failed', { path: url.pathname, method, error });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${url.pathname} failed: ${error.message}\n`);
    }
  }
}
