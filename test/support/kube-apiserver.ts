import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';

/**
 * A Kubernetes API server for tests: the core/v1 collections `nodes`, `pods` and `services`, kept
 * with an etcd-like history, served with the documented list/watch protocol (API concepts,
 * "Efficient detection of changes", "Retrieving large results sets in chunks"):
 *
 * - one revision counter for every object: each write gets the next `metadata.resourceVersion`;
 * - `GET /api/v1/<collection>` lists the current state, `limit` pages it with `continue` tokens
 *   that stay consistent with the first page's resourceVersion (410 Expired once compacted);
 * - `?watch=true&resourceVersion=N` streams, as chunked JSON lines, every change after N, then
 *   the live ones; BOOKMARK events when `allowWatchBookmarks=true`; an ERROR event with a 410
 *   Status when N is older than the compacted history; the stream ends after `timeoutSeconds`;
 * - a Bearer token is required.
 *
 * Fault injection: {@link cutWatches} ends every open watch in the middle of its next event.
 */
export type Collection = 'nodes' | 'pods' | 'services';

const KIND: Record<Collection, string> = { nodes: 'Node', pods: 'Pod', services: 'Service' };

interface Meta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  [key: string]: unknown;
}

export interface KubeObject {
  metadata: Meta;
  [key: string]: unknown;
}

interface Change {
  rv: number;
  collection: Collection;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  key: string;
  object: KubeObject;
}

interface Watcher {
  collection: Collection;
  bookmarks: boolean;
  res: ServerResponse;
  /** The next event is written half, then the connection is destroyed. */
  cut: boolean;
}

/** A request the server answered, for assertions. */
export interface SeenRequest {
  collection: Collection;
  watch: boolean;
  query: Record<string, string>;
}

const keyOf = (o: KubeObject): string => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export class KubeApiServer {
  readonly token = `t-${randomUUID()}`;
  readonly requests: SeenRequest[] = [];
  private server: Server | undefined;
  private revision = 1;
  /** Versions up to this one are compacted away: not served to watches or continue tokens. */
  private compacted = 1;
  private readonly history: Change[] = [];
  private readonly current = new Map<Collection, Map<string, KubeObject>>([
    ['nodes', new Map()],
    ['pods', new Map()],
    ['services', new Map()],
  ]);
  private readonly watchers = new Set<Watcher>();
  url = '';

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /**
   * A kubeconfig (YAML) for this server and token. client-node refuses plain HTTP unless TLS
   * verification is off, so it is turned off here: loopback only, and TLS is not what is tested.
   */
  kubeconfig(context = 'test'): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      `current-context: ${context}`,
      'clusters:',
      `- name: ${context}`,
      '  cluster:',
      `    server: ${this.url}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      `- name: ${context}`,
      '  user:',
      `    token: ${this.token}`,
      'contexts:',
      `- name: ${context}`,
      '  context:',
      `    cluster: ${context}`,
      `    user: ${context}`,
      '',
    ].join('\n');
  }

  get resourceVersion(): number {
    return this.revision;
  }

  /** Creates or replaces an object (ADDED or MODIFIED); returns it as stored. */
  put(collection: Collection, object: KubeObject): KubeObject {
    const map = this.current.get(collection)!;
    const key = keyOf(object);
    const prev = map.get(key);
    const rv = ++this.revision;
    const stored: KubeObject = structuredClone({
      ...object,
      kind: KIND[collection],
      apiVersion: 'v1',
      metadata: { ...object.metadata, uid: prev?.metadata.uid ?? object.metadata.uid ?? randomUUID(), resourceVersion: String(rv) },
    });
    map.set(key, stored);
    this.record({ rv, collection, type: prev ? 'MODIFIED' : 'ADDED', key, object: stored });
    return stored;
  }

  /** Deletes an object (DELETED carries its last state at the deletion's version). */
  remove(collection: Collection, name: string, namespace?: string): void {
    const map = this.current.get(collection)!;
    const key = namespace ? `${namespace}/${name}` : name;
    const prev = map.get(key);
    if (!prev) throw new Error(`no ${collection} ${key}`);
    map.delete(key);
    const rv = ++this.revision;
    const object = structuredClone({ ...prev, metadata: { ...prev.metadata, resourceVersion: String(rv) } });
    this.record({ rv, collection, type: 'DELETED', key, object });
  }

  /** Forgets the history up to now (etcd compaction): a watch or a continue token from an older version gets 410. */
  compact(): void {
    this.compacted = this.revision;
  }

  /** A BOOKMARK at the current version to every watch that allows them. */
  bookmark(): void {
    for (const w of this.watchers) if (w.bookmarks) this.write(w, { type: 'BOOKMARK', object: { kind: KIND[w.collection], apiVersion: 'v1', metadata: { resourceVersion: String(this.revision) } } });
  }

  /** Every open watch of `collection` breaks in the middle of its next event: half a line, then the connection dies. */
  cutWatches(collection: Collection): void {
    for (const w of this.watchers) if (w.collection === collection) w.cut = true;
  }

  /** Watches open now, per collection. */
  openWatches(collection: Collection): number {
    return [...this.watchers].filter((w) => w.collection === collection).length;
  }

  private record(change: Change): void {
    this.history.push(change);
    for (const w of this.watchers) if (w.collection === change.collection) this.write(w, { type: change.type, object: change.object });
  }

  private write(w: Watcher, event: unknown): void {
    const line = `${JSON.stringify(event)}\n`;
    if (!w.cut) {
      w.res.write(line);
      return;
    }
    this.watchers.delete(w);
    w.res.write(line.slice(0, Math.floor(line.length / 2)), () => w.res.socket?.destroy());
  }

  /** The collection's objects as they were at `rv` (the history is kept whole for this; compaction only hides it). */
  private stateAt(collection: Collection, rv: number): Map<string, KubeObject> {
    const state = new Map<string, KubeObject>();
    for (const c of this.history) {
      if (c.rv > rv) break;
      if (c.collection !== collection) continue;
      if (c.type === 'DELETED') state.delete(c.key);
      else state.set(c.key, c.object);
    }
    return state;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query = Object.fromEntries(url.searchParams);
    const json = (code: number, body: unknown): void => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.token}`) return json(401, status(401, 'Unauthorized', 'Unauthorized'));
    const m = /^\/api\/v1\/(nodes|pods|services)$/.exec(url.pathname);
    if (!m || req.method !== 'GET') return json(404, status(404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`));
    const collection = m[1] as Collection;
    const watch = query.watch === 'true' || query.watch === '1';
    this.requests.push({ collection, watch, query });
    if (watch) this.watch(collection, query, res);
    else this.list(collection, query, json);
  }

  private list(collection: Collection, query: Record<string, string>, json: (code: number, body: unknown) => void): void {
    let rv = this.revision;
    let after = '';
    if (query.continue) {
      const token = JSON.parse(Buffer.from(query.continue, 'base64url').toString()) as { rv: number; after: string };
      if (token.rv < this.compacted) {
        return json(
          410,
          status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.'),
        );
      }
      ({ rv, after } = token);
    }
    const items = [...this.stateAt(collection, rv).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).filter(([key]) => key > after);
    const limit = query.limit ? Number(query.limit) : Infinity;
    const page = items.slice(0, limit);
    const more = items.length > page.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
    if (more) {
      metadata.continue = Buffer.from(JSON.stringify({ rv, after: page[page.length - 1]![0] })).toString('base64url');
      metadata.remainingItemCount = items.length - page.length;
    }
    json(200, { kind: `${KIND[collection]}List`, apiVersion: 'v1', metadata, items: page.map(([, o]) => o) });
  }

  private watch(collection: Collection, query: Record<string, string>, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { collection, bookmarks: query.allowWatchBookmarks === 'true', res, cut: false };
    const from = query.resourceVersion === undefined || query.resourceVersion === '' || query.resourceVersion === '0' ? undefined : Number(query.resourceVersion);
    if (from !== undefined && from < this.compacted) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${this.compacted})`) })}\n`);
      return;
    }
    if (from === undefined) {
      for (const object of this.current.get(collection)!.values()) this.write(w, { type: 'ADDED', object });
    } else {
      for (const c of this.history) if (c.rv > from && c.collection === collection) this.write(w, { type: c.type, object: c.object });
    }
    this.watchers.add(w);
    const timeoutSeconds = query.timeoutSeconds ? Number(query.timeoutSeconds) : 1800;
    const timer = setTimeout(() => {
      this.watchers.delete(w);
      res.end();
    }, timeoutSeconds * 1000);
    res.on('close', () => {
      clearTimeout(timer);
      this.watchers.delete(w);
    });
  }
}

/** A node as the OpenStack cloud provider registers it. */
export function node(name: string, serverId: string, ready: 'True' | 'False' | 'Unknown' = 'True'): KubeObject {
  return {
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    spec: { providerID: `openstack:///${serverId}` },
    status: {
      conditions: [
        { type: 'MemoryPressure', status: 'False', lastHeartbeatTime: new Date().toISOString(), reason: 'KubeletHasSufficientMemory' },
        { type: 'Ready', status: ready, lastHeartbeatTime: new Date().toISOString(), reason: 'KubeletReady' },
      ],
      addresses: [{ type: 'InternalIP', address: '10.0.0.5' }],
      nodeInfo: { kubeletVersion: 'v1.31.2' },
    },
  };
}

/** A pod of a namespace, scheduled on `nodeName` when given. */
export function pod(namespace: string, name: string, nodeName: string | undefined, phase = 'Running', restarts = 0): KubeObject {
  return {
    metadata: { name, namespace },
    spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'main', image: 'nginx:1.27' }] },
    status: {
      phase,
      conditions: [{ type: 'Ready', status: phase === 'Running' ? 'True' : 'False' }],
      ...(phase === 'Running' ? { podIP: '10.244.0.7' } : {}),
      containerStatuses: [{ name: 'main', ready: phase === 'Running', restartCount: restarts, image: 'nginx:1.27', imageID: '', state: phase === 'Running' ? { running: {} } : { waiting: { reason: 'ContainerCreating' } } }],
    },
  };
}
