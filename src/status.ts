/**
 * The live status page's data, served by the service on its listener next to the page itself
 * (web/: plain HTML, CSS and JS, no build step).
 *
 * | path                  | answers                                                                 |
 * |-----------------------|-------------------------------------------------------------------------|
 * | `/`, `/status.js`, `/status.css` | the page                                                     |
 * | `/api/status`         | sources (health, ready), entity counts by type, the hub's counters      |
 * | `/api/events`         | Server-Sent Events: the latest events, then each new one as it happens  |
 * | `/api/entities?q=`    | entities whose key or name contains `q` (at most `limit`, default 50)   |
 * | `/api/entity?key=`    | one entity, its parents and its children (both ways of the relation)    |
 * | `/api/topology?key=`  | the graph around one entity: ancestors, descendants, alarms on them     |
 */
import { existsSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Subscription } from 'rxjs';
import { type Entity, type EntityEvent, type EntityRef, entityKey } from './model.js';
import type { Routes } from './routes.js';
import type { SourceHealth, Synchronizer } from './synchronizer.js';

/** What the page shows of an event. */
interface EventView {
  action: string;
  origin: string;
  key: string;
  type: string;
  name?: string;
  state: string;
  source: string;
  observedAt: string;
  changed?: string[];
}

const eventView = (e: EntityEvent): EventView => ({
  action: e.action,
  origin: e.origin,
  key: e.entity.key,
  type: e.entity.type,
  ...(e.entity.name !== undefined ? { name: e.entity.name } : {}),
  state: e.entity.state,
  source: e.entity.source,
  observedAt: e.entity.observedAt,
  ...(e.changed ? { changed: e.changed } : {}),
});

/** What the page shows of an entity in a list or a graph. */
const entityView = (e: Entity): { key: string; type: string; id: string; name?: string; state: string } => ({
  key: e.key,
  type: e.type,
  id: e.id,
  ...(e.name !== undefined ? { name: e.name } : {}),
  state: e.state,
});

/** Entity types that are alarms on other entities: shown around a resource in its topology. */
const isAlarm = (type: string): boolean => /^(nagios\.service|alertmanager\.|prometheus\.|zabbix\.)/.test(type);

/** web/ beside dist/ (the built service) or beside src/ (tests that import the sources). */
function webDir(): string {
  for (const rel of ['../../web/', '../web/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  throw new Error('the status page (web/index.html) is missing from the installation');
}

const json = (res: ServerResponse, body: unknown, status = 200): void => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(body));
};

export interface StatusOptions {
  /** Per source: whether it is ready (see /readyz). */
  ready: (health: SourceHealth) => boolean;
  /** Events kept for a page that opens (default 50). */
  recent?: number;
  /** A page that reads slower than this many bytes behind is disconnected (its browser reconnects). */
  maxLagBytes?: number;
}

/** Adds the status page and its API to `routes`; unsubscribe the result to stop following events. */
export function addStatusRoutes(routes: Routes, sync: Synchronizer, options: StatusOptions): Subscription {
  const { ready, recent = 50, maxLagBytes = 1 << 20 } = options;
  const dir = webDir();
  const asset = (file: string, type: string): void => {
    // Read once: the page is small and ships with the package.
    const body = readFileSync(dir + file);
    routes.add(file === 'index.html' ? '/' : `/${file}`, (_req, res) => {
      res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache' }).end(body);
    });
  };
  asset('index.html', 'text/html; charset=utf-8');
  asset('status.js', 'text/javascript; charset=utf-8');
  asset('status.css', 'text/css; charset=utf-8');

  const latest: EventView[] = [];
  const clients = new Set<ServerResponse>();
  const following = sync.entity$.subscribe((event) => {
    const view = eventView(event);
    latest.push(view);
    if (latest.length > recent) latest.shift();
    if (clients.size === 0) return;
    const frame = `event: entity\ndata: ${JSON.stringify(view)}\n\n`;
    for (const res of clients) {
      if (res.writableLength > maxLagBytes) res.destroy();
      else res.write(frame);
    }
  });
  following.add(() => {
    for (const res of clients) res.end();
    clients.clear();
  });

  routes.add('/api/status', (_req, res) => {
    const counts: Record<string, number> = {};
    for (const e of sync.snapshot()) counts[e.type] = (counts[e.type] ?? 0) + 1;
    const sources = Object.values(sync.health()).map((h) => ({ ...h, ready: ready(h) }));
    json(res, { time: new Date().toISOString(), sources, counts, metrics: sync.metrics() });
  });

  routes.add('/api/events', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.write(`retry: 2000\n\n`);
    for (const view of latest) res.write(`event: entity\ndata: ${JSON.stringify(view)}\n\n`);
    clients.add(res);
    const forget = (): void => void clients.delete(res);
    req.on('close', forget);
    res.on('error', forget);
  });

  routes.add('/api/entities', (_req, res, url) => {
    const q = (url.searchParams.get('q') ?? '').trim().toLowerCase();
    const limit = Math.min(500, Math.max(1, Number(url.searchParams.get('limit')) || 50));
    const found: ReturnType<typeof entityView>[] = [];
    let total = 0;
    for (const e of sync.snapshot()) {
      if (q && !e.key.toLowerCase().includes(q) && !(e.name ?? '').toLowerCase().includes(q)) continue;
      total += 1;
      if (found.length < limit) found.push(entityView(e));
    }
    json(res, { total, entities: found });
  });

  /** Every entity by key, and who names each key as a parent (the other way of the relation). */
  const graph = (): { byKey: Map<string, Entity>; childrenOf: Map<string, Set<string>> } => {
    const byKey = new Map<string, Entity>();
    const childrenOf = new Map<string, Set<string>>();
    const link = (parent: string, child: string): void => {
      let set = childrenOf.get(parent);
      if (!set) childrenOf.set(parent, (set = new Set()));
      set.add(child);
    };
    for (const e of sync.snapshot()) {
      byKey.set(e.key, e);
      for (const p of e.parents) link(keyOf(p), e.key);
      for (const c of e.children) link(e.key, keyOf(c));
    }
    return { byKey, childrenOf };
  };
  const keyOf = (r: EntityRef): string => entityKey(r.type, r.id);
  const refView = (byKey: Map<string, Entity>, key: string): { key: string; known: boolean; type?: string; name?: string; state?: string } => {
    const e = byKey.get(key);
    return e ? { known: true, ...entityView(e) } : { key, known: false };
  };

  routes.add('/api/entity', (_req, res, url) => {
    const key = url.searchParams.get('key') ?? '';
    const { byKey, childrenOf } = graph();
    const entity = byKey.get(key);
    if (!entity) return json(res, { error: `no entity ${key}` }, 404);
    const parents = entity.parents.map((p) => refView(byKey, keyOf(p)));
    const children = [...(childrenOf.get(key) ?? [])].sort().map((k) => refView(byKey, k));
    const { raw: _raw, ...shown } = entity;
    json(res, { entity: shown, parents, children });
  });

  routes.add('/api/topology', (_req, res, url) => {
    const key = url.searchParams.get('key') ?? '';
    const { byKey, childrenOf } = graph();
    if (!byKey.has(key)) return json(res, { error: `no entity ${key}` }, 404);
    const MAX = 80;
    const nodes = new Map<string, string>(); // key -> role
    const edges = new Set<string>(); // "child\tparent"
    nodes.set(key, 'self');
    // Up: instance -> host -> zone, port -> network, volume -> instance -> …
    const up = [key];
    while (up.length > 0 && nodes.size < MAX) {
      const k = up.shift()!;
      for (const p of byKey.get(k)?.parents ?? []) {
        const pk = keyOf(p);
        edges.add(`${k}\t${pk}`);
        if (!nodes.has(pk)) {
          nodes.set(pk, 'ancestor');
          up.push(pk);
        }
      }
    }
    // Down two levels from the entity (its ports, volumes, alarms and theirs), and the alarms on its ancestors.
    let level = [key];
    for (let depth = 0; depth < 2 && nodes.size < MAX; depth++) {
      const next: string[] = [];
      for (const k of level) {
        for (const c of childrenOf.get(k) ?? []) {
          if (nodes.size >= MAX) break;
          edges.add(`${c}\t${k}`);
          if (!nodes.has(c)) {
            nodes.set(c, isAlarm(byKey.get(c)?.type ?? '') ? 'alarm' : 'descendant');
            next.push(c);
          }
        }
      }
      level = next;
    }
    // The other parents of what hangs off it: a port's network, a volume's other instances.
    for (const [k, role] of [...nodes]) {
      if (role !== 'descendant' && role !== 'alarm') continue;
      for (const p of byKey.get(k)?.parents ?? []) {
        const pk = keyOf(p);
        if (nodes.size >= MAX && !nodes.has(pk)) break;
        edges.add(`${k}\t${pk}`);
        if (!nodes.has(pk)) nodes.set(pk, 'related');
      }
    }
    for (const [k, role] of [...nodes]) {
      if (role !== 'ancestor') continue;
      for (const c of childrenOf.get(k) ?? []) {
        if (nodes.size >= MAX) break;
        if (!isAlarm(byKey.get(c)?.type ?? '')) continue;
        edges.add(`${c}\t${k}`);
        if (!nodes.has(c)) nodes.set(c, 'alarm');
      }
    }
    json(res, {
      key,
      nodes: [...nodes].map(([k, role]) => ({ ...refView(byKey, k), role })),
      edges: [...edges].filter((e) => e.split('\t').every((k) => nodes.has(k))).map((e) => {
        const [from, to] = e.split('\t') as [string, string];
        return { from, to };
      }),
    });
  });

  return following;
}
