/**
 * A local OpenStack for tests and benchmarks: one node:http server on 127.0.0.1 (random port)
 * serving Keystone v3, Nova, Neutron, Cinder, Heat, Aodh, Ironic, Octavia and Trove from the real samples in
 * ../shared/fixtures (a real Zed's responses, upstream api-ref samples), scaled up on demand and
 * split into pages with real `*_links`, like the services do. Its state is plain data a test may
 * change between polls; fault switches make it fail the way real services fail.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { FIXTURES, readFixture } from './fixtures.js';

type Json = Record<string, unknown>;

export { FIXTURES };

/** A fixture file parsed as JSON (see readFixture). */
export function fixture<T = Json>(...parts: string[]): T {
  return readFixture<T>(...parts);
}

const REAL = ['wire', 'real-openstack', 'api'];
const clone = <T>(v: T): T => structuredClone(v);

/** A fault a request may meet: an answer instead of the real one, a hang, or a broken body. */
export interface Fault {
  /** Which requests: gets the path (without query) and the parsed URL. */
  when: (path: string, url: URL, method: string) => boolean;
  status?: number;
  /** With status 429/503: the Retry-After header, seconds. */
  retryAfter?: number;
  /** Never answer (the client must time out). */
  hang?: boolean;
  /** Answer 200 with a truncated JSON body. */
  malformed?: boolean;
  /** How many matching requests it hits (default: all until cleared). */
  times?: number;
}

export interface OpenStackServerOptions {
  /** Number of servers (default: the 3 of the real recording; more are cloned from them). */
  servers?: number;
  /** Nova's max_limit: pages never hold more, whatever the client asks (default 1000). */
  novaMaxLimit?: number;
  /** Page size of Neutron and Cinder lists (their pagination with `*_links`; default 1000). */
  pageSize?: number;
  /** Token lifetime, ms (default 1 h). */
  tokenTtlMs?: number;
  username?: string;
  password?: string;
  applicationCredential?: { id: string; secret: string };
  /** Serve HTTPS with this key and certificate; with `ca`, ask for a client certificate signed by it (mutual TLS). */
  tls?: { key: string; cert: string; ca?: string };
  /**
   * Render each page of Nova's servers once and serve it again until {@link OpenStackServer.serversChanged}
   * names a server on it. For benchmarks: rendering 100,000 servers at every poll took most of a
   * core on a 2-core machine, the CPU the client under test is measured on (a real Nova runs
   * elsewhere).
   */
  novaPageCache?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  token?: string;
  headers: IncomingMessage['headers'];
  /** When it arrived (Date.now()). */
  at: number;
}

/** The stable id of the n-th generated server. */
export function serverId(n: number): string {
  return `5e7e0000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

/** The records the server serves; tests change them between polls. */
export interface OpenStackState {
  servers: Json[];
  hypervisors: Json[];
  zones: Json[];
  networks: Json[];
  ports: Json[];
  volumes: Json[];
  stacks: Json[];
  /** Aodh alarms (recorded), Ironic nodes (recorded + upstream), Octavia (recorded), Trove (upstream). */
  alarms: Json[];
  nodes: Json[];
  loadbalancers: Json[];
  listeners: Json[];
  pools: Json[];
  /** pool id → its members. */
  members: Record<string, Json[]>;
  troveInstances: Json[];
  troveClusters: Json[];
}

export class OpenStackServer {
  readonly state: OpenStackState;
  readonly requests: RecordedRequest[] = [];
  /** Tokens issued so far. */
  tokensIssued = 0;
  readonly projectId: string;
  readonly username: string;
  readonly password: string;
  private readonly faults: Fault[] = [];
  private readonly tokens = new Map<string, number>();
  private readonly server: Server;
  private baseUrl = '';
  /** With `novaPageCache`: the rendered pages of servers by query, with the range of servers each holds. */
  private readonly serverPages = new Map<string, { first: number; count: number; body: Buffer }>();
  private readonly options: Required<Pick<OpenStackServerOptions, 'novaMaxLimit' | 'pageSize' | 'tokenTtlMs'>> & OpenStackServerOptions;

  constructor(options: OpenStackServerOptions = {}) {
    this.options = { novaMaxLimit: 1000, pageSize: 1000, tokenTtlMs: 3_600_000, ...options };
    this.username = options.username ?? 'admin';
    this.password = options.password ?? 'devstacker';
    const auth = fixture<{ token: { project: { id: string } } }>(...REAL, 'api-keystone-post-auth-tokens.json');
    this.projectId = auth.token.project.id;
    this.state = buildState(options.servers);
    const tls = options.tls;
    this.server = tls
      ? createHttpsServer({ key: tls.key, cert: tls.cert, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}) }, (req, res) => this.handle(req, res))
      : createServer((req, res) => this.handle(req, res));
  }

  /** Starts listening on 127.0.0.1 at a free port. */
  async start(): Promise<this> {
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.baseUrl = `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }

  /** Keystone's auth_url (as clouds.yaml has it). */
  get authUrl(): string {
    return `${this.baseUrl}/identity/v3`;
  }

  get url(): string {
    return this.baseUrl;
  }

  /** Credentials for a source's `auth:` option. */
  get auth(): Record<string, string> {
    return { auth_url: this.authUrl, username: this.username, password: this.password, project_name: 'admin', user_domain_name: 'Default', project_domain_name: 'Default' };
  }

  /** Adds a fault; returns a function that removes it. */
  inject(fault: Fault): () => void {
    this.faults.push(fault);
    return () => {
      const i = this.faults.indexOf(fault);
      if (i >= 0) this.faults.splice(i, 1);
    };
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Every token issued so far stops working (as after expiry or a Keystone restart): services answer 401. */
  expireTokens(): void {
    this.tokens.clear();
  }

  /** With `novaPageCache`: the servers at these positions of `state.servers` changed, render their pages again. */
  serversChanged(positions: Iterable<number>): void {
    for (const n of positions) {
      for (const [query, page] of this.serverPages) if (n >= page.first && n < page.first + page.count) this.serverPages.delete(query);
    }
  }

  /** Requests whose path ends with `suffix`. */
  requestsTo(suffix: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path.endsWith(suffix));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const method = req.method ?? 'GET';
    const token = typeof req.headers['x-auth-token'] === 'string' ? req.headers['x-auth-token'] : undefined;
    this.requests.push({ method, path: url.pathname, query: url.search, headers: req.headers, at: Date.now(), ...(token ? { token } : {}) });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const fault = this.faults.find((f) => f.when(url.pathname, url, method) && (f.times ?? Infinity) > 0);
      if (fault) {
        if (fault.times !== undefined) fault.times -= 1;
        if (fault.hang) return;
        if (fault.malformed) return send(res, 200, '{"servers": [{"id": "trunc');
        if (fault.status !== undefined) {
          const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'Retry-After': String(fault.retryAfter) } : {};
          return send(res, fault.status, JSON.stringify({ error: { code: fault.status, message: 'injected fault' } }), headers);
        }
      }
      try {
        this.route(method, url, token, Buffer.concat(chunks).toString('utf8'), res);
      } catch (e) {
        send(res, 500, JSON.stringify({ error: { message: e instanceof Error ? e.message : String(e) } }));
      }
    });
  }

  private route(method: string, url: URL, token: string | undefined, body: string, res: ServerResponse): void {
    const path = url.pathname.replace(/\/+$/, '');
    if (method === 'POST' && path === '/identity/v3/auth/tokens') return this.authenticate(body, res);
    const expires = token ? this.tokens.get(token) : undefined;
    if (expires === undefined || expires <= Date.now()) {
      return send(res, 401, JSON.stringify({ error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } }));
    }
    const q = url.searchParams;
    const p = this.projectId;
    const routes: Record<string, () => void> = {
      '/compute/v2.1/servers/detail': () => send(res, 200, this.serversPage(q)),
      '/compute/v2.1/os-hypervisors/detail': () => send(res, 200, JSON.stringify(this.novaPage('hypervisors', this.state.hypervisors, q, '/compute/v2.1/os-hypervisors/detail'))),
      '/compute/v2.1/os-availability-zone/detail': () => send(res, 200, JSON.stringify({ availabilityZoneInfo: this.state.zones })),
      '/network/v2.0/networks': () => send(res, 200, JSON.stringify(this.linkedPage('networks', this.state.networks, q, '/network/v2.0/networks'))),
      '/network/v2.0/ports': () => send(res, 200, JSON.stringify(this.linkedPage('ports', this.state.ports, q, '/network/v2.0/ports'))),
      [`/volume/v3/${p}/volumes/detail`]: () => send(res, 200, JSON.stringify(this.linkedPage('volumes', this.state.volumes, q, `/volume/v3/${p}/volumes/detail`))),
      // Like Heat: nested stacks (those with a parent) only with show_nested.
      // Aodh: a bare array, exactly `limit` long when asked, by marker (alarm_id); its own project without all_projects.
      '/alarming/v2/alarms': () => {
        const all = q.get('q.field') === 'all_projects' && q.get('q.value') === 'true' ? this.state.alarms : this.state.alarms.filter((a) => a.project_id === p);
        send(res, 200, JSON.stringify(page(all, q, q.has('limit') ? Number(q.get('limit')) : all.length, 'alarm_id').items));
      },
      // Ironic: `next` whenever the page is full (so an empty last page), at most pageSize (max_limit).
      '/baremetal/v1/nodes/detail': () => {
        const size = Math.min(q.has('limit') ? Number(q.get('limit')) : this.options.pageSize, this.options.pageSize);
        const { items, last } = page(this.state.nodes, q, size, 'uuid');
        const out: Json = { nodes: items };
        if (items.length === size && last) out.next = `${this.baseUrl}/baremetal/v1/nodes/detail?sort_key=id&sort_dir=asc&limit=${size}&marker=${last}`;
        send(res, 200, JSON.stringify(out));
      },
      '/load-balancer/v2/lbaas/loadbalancers': () => send(res, 200, JSON.stringify(this.fullPage('loadbalancers', this.state.loadbalancers, q, '/load-balancer/v2/lbaas/loadbalancers'))),
      '/load-balancer/v2/lbaas/listeners': () => send(res, 200, JSON.stringify(this.fullPage('listeners', this.state.listeners, q, '/load-balancer/v2/lbaas/listeners'))),
      '/load-balancer/v2/lbaas/pools': () => send(res, 200, JSON.stringify(this.fullPage('pools', this.state.pools, q, '/load-balancer/v2/lbaas/pools'))),
      ...Object.fromEntries(
        Object.entries(this.state.members).map(([pool, members]) => {
          const at = `/load-balancer/v2/lbaas/pools/${pool}/members`;
          return [at, () => send(res, 200, JSON.stringify(this.fullPage('members', members, q, at)))];
        }),
      ),
      // Trove: a top-level `links` list.
      [`/database/v1.0/${p}/mgmt/instances`]: () => send(res, 200, JSON.stringify(this.troveLinks('instances', this.state.troveInstances, q, `/database/v1.0/${p}/mgmt/instances`))),
      [`/database/v1.0/${p}/mgmt/clusters`]: () => send(res, 200, JSON.stringify(this.troveLinks('clusters', this.state.troveClusters, q, `/database/v1.0/${p}/mgmt/clusters`))),
      [`/heat/v1/${p}/stacks`]: () => {
        const stacks = /^(true|1)$/i.test(q.get('show_nested') ?? '') ? this.state.stacks : this.state.stacks.filter((s) => !s.parent);
        send(res, 200, JSON.stringify({ stacks: page(stacks, q, this.options.pageSize).items }));
      },
    };
    const handler = method === 'GET' ? routes[path] : undefined;
    if (!handler) return send(res, 404, JSON.stringify({ itemNotFound: { code: 404, message: `no route for ${method} ${path}` } }));
    handler();
  }

  private authenticate(body: string, res: ServerResponse): void {
    let request: { auth?: { identity?: { methods?: string[]; password?: { user?: { name?: string; password?: string } }; application_credential?: { id?: string; secret?: string } } } };
    try {
      request = JSON.parse(body) as typeof request;
    } catch {
      return send(res, 400, JSON.stringify({ error: { code: 400, message: 'malformed request body' } }));
    }
    const identity = request.auth?.identity;
    const method = identity?.methods?.[0];
    const ok =
      method === 'password'
        ? identity?.password?.user?.name === this.username && identity.password.user.password === this.password
        : method === 'application_credential'
          ? this.options.applicationCredential !== undefined &&
            identity?.application_credential?.id === this.options.applicationCredential.id &&
            identity.application_credential.secret === this.options.applicationCredential.secret
          : false;
    if (!ok) return send(res, 401, JSON.stringify({ error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } }));
    this.tokensIssued += 1;
    const id = `gAAAAA-test-token-${this.tokensIssued}`;
    const now = Date.now();
    const expiresAt = now + this.options.tokenTtlMs;
    this.tokens.set(id, expiresAt);
    const real = fixture<{ token: Json }>(...REAL, 'api-keystone-post-auth-tokens.json');
    const token = { ...real.token, methods: [method], issued_at: new Date(now).toISOString(), expires_at: new Date(expiresAt).toISOString(), catalog: this.catalog(real.token.catalog as CatalogEntry[]) };
    send(res, 201, JSON.stringify({ token }), { 'X-Subject-Token': id });
  }

  /** The real catalog, pointed at this server (and with Heat, which the recorded cloud lacked). */
  private catalog(real: CatalogEntry[]): CatalogEntry[] {
    const at: Record<string, string> = {
      compute: `${this.baseUrl}/compute/v2.1`,
      network: `${this.baseUrl}/network`,
      volumev3: `${this.baseUrl}/volume/v3/${this.projectId}`,
      identity: `${this.baseUrl}/identity/v3/`,
      orchestration: `${this.baseUrl}/heat/v1/${this.projectId}`,
      alarming: `${this.baseUrl}/alarming`,
      baremetal: `${this.baseUrl}/baremetal`,
      'load-balancer': `${this.baseUrl}/load-balancer`,
      database: `${this.baseUrl}/database/v1.0/${this.projectId}`,
    };
    const services = real.filter((s) => at[s.type]);
    const template = services[0]!;
    services.push({ ...clone(template), id: 'heat0000000000000000000000000000', type: 'orchestration', name: 'heat' });
    for (const [type, name] of [['alarming', 'aodh'], ['baremetal', 'ironic'], ['load-balancer', 'octavia'], ['database', 'trove']] as const) {
      services.push({ ...clone(template), id: `${name}`.padEnd(32, '0'), type, name });
    }
    return services.map((s) => ({
      ...s,
      endpoints: [
        ...s.endpoints.map((e) => ({ ...e, url: e.interface === 'public' ? at[s.type]! : `${at[s.type]!.replace('127.0.0.1', '127.0.0.2')}` })),
        // Another region's endpoint: a client that ignores region_name would go astray.
        { id: `${s.id}-r2`, interface: 'public', region: 'RegionTwo', region_id: 'RegionTwo', url: 'http://127.0.0.3:9/region-two' },
      ],
    }));
  }

  /** Nova: at most max_limit per page whatever `limit` asks; `<key>_links` next when the page is full. */
  private serversPage(q: URLSearchParams): string | Buffer {
    const render = (): string => JSON.stringify(this.novaPage('servers', this.state.servers, q, '/compute/v2.1/servers/detail'));
    if (!this.options.novaPageCache) return render();
    const query = q.toString();
    const cached = this.serverPages.get(query);
    if (cached) return cached.body;
    const body = Buffer.from(render());
    const marker = q.get('marker');
    const first = marker === null ? 0 : this.state.servers.findIndex((s) => s.id === marker) + 1;
    this.serverPages.set(query, { first, count: Math.min(q.has('limit') ? Number(q.get('limit')) : Infinity, this.options.novaMaxLimit), body });
    return body;
  }

  private novaPage(key: string, all: Json[], q: URLSearchParams, path: string): Json {
    const max = this.options.novaMaxLimit;
    const asked = q.has('limit') ? Number(q.get('limit')) : max;
    const { items, last } = page(all, q, Math.min(asked, max));
    const out: Json = { [key]: items };
    if (items.length === Math.min(asked, max) && last) {
      const next = new URLSearchParams(q);
      next.set('limit', String(Math.min(asked, max)));
      next.set('marker', last);
      out[`${key}_links`] = [{ href: `${this.baseUrl}${path}?${next.toString()}`, rel: 'next' }];
    }
    return out;
  }

  /** Octavia: `<key>_links` next whenever the page is full (so an empty last page); `[]` otherwise. */
  private fullPage(key: string, all: Json[], q: URLSearchParams, path: string): Json {
    const size = Math.min(q.has('limit') ? Number(q.get('limit')) : this.options.pageSize, this.options.pageSize);
    const { items, last } = page(all, q, size);
    const links = items.length === size && last ? [{ href: `${this.baseUrl}${path}?limit=${size}&marker=${last}`, rel: 'next' }] : [];
    return { [key]: items, [`${key}_links`]: links };
  }

  /** Trove: pages of pageSize, the next one in a top-level `links` list while more remain. */
  private troveLinks(key: string, all: Json[], q: URLSearchParams, path: string): Json {
    const size = Math.min(q.has('limit') ? Number(q.get('limit')) : this.options.pageSize, this.options.pageSize);
    const { items, last, more } = page(all, q, size);
    const next = new URLSearchParams(q);
    if (last) next.set('marker', last);
    next.set('limit', String(size));
    return { [key]: items, links: more && last ? [{ href: `${this.baseUrl}${path}?${next.toString()}`, rel: 'next' }] : [] };
  }

  /** Neutron/Cinder: pages of pageSize with `<key>_links` next while more remain. */
  private linkedPage(key: string, all: Json[], q: URLSearchParams, path: string): Json {
    const size = Math.min(q.has('limit') ? Number(q.get('limit')) : this.options.pageSize, this.options.pageSize);
    const { items, last, more } = page(all, q, size);
    const out: Json = { [key]: items };
    if (more && last) {
      const next = new URLSearchParams(q);
      next.set('limit', String(size));
      next.set('marker', last);
      out[`${key}_links`] = [{ href: `${this.baseUrl}${path}?${next.toString()}`, rel: 'next' }];
    }
    return out;
  }
}

interface CatalogEntry {
  id: string;
  type: string;
  name: string;
  endpoints: { id: string; interface: string; region: string; region_id: string; url: string }[];
}

function page(all: Json[], q: URLSearchParams, size: number, idField = 'id'): { items: Json[]; last?: string; more: boolean } {
  const marker = q.get('marker');
  let start = 0;
  if (marker !== null) {
    const i = all.findIndex((r) => r[idField] === marker);
    if (i < 0) throw new Error(`marker ${marker} not found`);
    start = i + 1;
  }
  const items = all.slice(start, start + size);
  const last = items[items.length - 1]?.[idField];
  return { items, ...(typeof last === 'string' ? { last } : {}), more: start + size < all.length };
}

function send(res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** The recorded cloud's records, with `servers` servers cloned from the recorded ones. */
function buildState(serverCount?: number): OpenStackState {
  const realServers = fixture<{ servers: Json[] }>(...REAL, 'api-servers-detail-all-tenants.json').servers;
  const servers =
    serverCount === undefined
      ? clone(realServers)
      : Array.from({ length: serverCount }, (_, n) => {
          const s = clone(realServers[n % realServers.length]!);
          s.id = serverId(n);
          s.name = `vm-${n}`;
          s['OS-EXT-SRV-ATTR:hostname'] = `vm-${n}`;
          s['OS-EXT-SRV-ATTR:instance_name'] = `instance-${n.toString(16).padStart(8, '0')}`;
          s.links = (s.links as { href: string; rel: string }[]).map((l) => ({ ...l, href: l.href.replace(String(realServers[n % realServers.length]!.id), serverId(n)) }));
          return s;
        });
  const hypervisors = clone(fixture<{ hypervisors: Json[] }>(...REAL, 'api-os-hypervisors-detail.json').hypervisors);
  // The upstream zone sample, with its compute host renamed to the recorded cloud's.
  const zones = clone(fixture<{ availabilityZoneInfo: Json[] }>('openstack/nova/doc/api_samples/os-availability-zone/availability-zone-detail-resp.json').availabilityZoneInfo);
  const computeHost = (hypervisors[0]!.service as { host: string }).host;
  for (const zone of zones) {
    const hosts = zone.hosts as Record<string, unknown> | null;
    if (hosts && 'compute' in hosts) {
      hosts[computeHost] = hosts.compute;
      delete hosts.compute;
    }
  }
  const networks = [
    ...clone(fixture<{ networks: Json[] }>(...REAL, 'api-neutron-networks.json').networks),
    ...clone(fixture<{ networks: Json[] }>('openstack/neutron-lib/api-ref/source/v2/samples/networks/networks-list-response.json').networks),
  ];
  const upstreamPorts = clone(fixture<{ ports: Json[] }>('openstack/neutron-lib/api-ref/source/v2/samples/ports/ports-list-response.json').ports);
  const portTemplate = upstreamPorts[0]!;
  const netId = networks[0]!.id as string;
  // One port per server, as Nova would create: device_owner compute:<zone>, device_id = the server.
  const serverPorts = servers.map((s, n) => ({
    ...clone(portTemplate),
    id: `90270000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`,
    name: '',
    network_id: netId,
    device_id: s.id,
    device_owner: `compute:${String(s['OS-EXT-AZ:availability_zone'] ?? 'nova')}`,
    project_id: s.tenant_id,
    tenant_id: s.tenant_id,
    mac_address: `fa:16:3e:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`,
    fixed_ips: [{ ip_address: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, subnet_id: (networks[0]!.subnets as string[])[0] }],
  }));
  const realVolumes = clone(fixture<{ volumes: Json[] }>(...REAL, 'api-cinder-volumes-detail.json').volumes);
  const attached = {
    ...clone(realVolumes[0]!),
    id: '7b303ace-0000-4000-8000-000000000001',
    name: 'attached-vol',
    status: 'in-use',
    attachments: [{ server_id: servers[0]!.id, attachment_id: 'a7ac0000-0000-4000-8000-000000000001', volume_id: '7b303ace-0000-4000-8000-000000000001', device: '/dev/vdb', host_name: computeHost }],
  };
  const volumes = [...realVolumes, attached, ...clone(fixture<{ volumes: Json[] }>('openstack/cinder/api-ref/source/v3/samples/volumes/volumes-list-detailed-response.json').volumes)];
  const stacks = clone(fixture<{ stacks: Json[] }>('openstack/heat/api-ref/source/v1/samples/stacks-list-response.json').stacks);
  // A stack nested in the upstream one, as Heat lists it with show_nested.
  const top = stacks[0]!;
  stacks.push({ ...clone(top), id: '5e7e5ed0-0000-4000-8000-000000000001', stack_name: `${String(top.stack_name)}-server_group-x7k2mq`, parent: top.id });
  return { servers, hypervisors, zones, networks, ports: [...upstreamPorts, ...serverPorts], volumes, stacks, ...moreState() };
}

const AODH = ['wire', 'real-openstack', 'aodh', 'api'];
const IRONIC = ['wire', 'real-openstack', 'ironic', 'api'];
const OCTAVIA = ['wire', 'real-openstack', 'octavia', 'api'];

/** Aodh, Ironic, Octavia as recorded (plus Ironic's upstream nodes); Trove from its upstream samples. */
function moreState(): Pick<OpenStackState, 'alarms' | 'nodes' | 'loadbalancers' | 'listeners' | 'pools' | 'members' | 'troveInstances' | 'troveClusters'> {
  const alarms = clone(fixture<Json[]>(...AODH, 'alarms-all-projects.json'));
  const nodes = [
    ...clone(fixture<{ nodes: Json[] }>(...IRONIC, 'nodes-detail.json').nodes),
    ...clone(fixture<{ nodes: Json[] }>('openstack/ironic/api-ref/source/samples/nodes-list-details-response.json').nodes),
  ];
  const pools = clone(fixture<{ pools: Json[] }>(...OCTAVIA, 'pools.json').pools);
  const members: Record<string, Json[]> = Object.fromEntries(pools.map((pool) => [pool.id as string, []]));
  // The recording listed the members of its one pool.
  members[pools[0]!.id as string] = clone(fixture<{ members: Json[] }>(...OCTAVIA, 'members.json').members);
  const troveInstances = clone(fixture<{ instances: Json[] }>('openstack/trove/api-ref/source/samples/instance-mgmt-list-response.json').instances);
  // Trove keeps no cluster sample upstream: one cluster in ClusterView's shape (trove/cluster/views.py), of the first instance.
  const first = troveInstances[0]!;
  const troveClusters: Json[] = [
    { id: 'c1a57e50-0000-4000-8000-000000000001', name: 'test-cluster', task: { id: 1, name: 'NONE', description: 'No tasks for the cluster.' }, datastore: clone(first.datastore), tenant_id: first.tenant_id, instances: [{ id: first.id, name: first.name, type: 'member' }] },
  ];
  return {
    alarms,
    nodes,
    loadbalancers: clone(fixture<{ loadbalancers: Json[] }>(...OCTAVIA, 'loadbalancers.json').loadbalancers),
    listeners: clone(fixture<{ listeners: Json[] }>(...OCTAVIA, 'listeners.json').listeners),
    pools,
    members,
    troveInstances,
    troveClusters,
  };
}

/** Starts a local OpenStack. */
export function startOpenStackServer(options: OpenStackServerOptions = {}): Promise<OpenStackServer> {
  return new OpenStackServer(options).start();
}
