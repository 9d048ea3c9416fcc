import { fetchAllPages } from '../../src/http.js';
import { Kept } from '../../src/kept.js';
import { type PickShape, pickBy } from '../../src/pick.js';
import { type EntityDraft, ref, unreachable } from '../../src/model.js';
import { defineSource } from '../../src/source.js';
import { instanceDraft } from './instance.js';
import { type OpenStackPollOptions, allParts, openstackSource, readOpenStackPollOptions } from './poller.js';

/**
 * `use: openstack.nova` — instances, hosts and availability zones from Nova's API (compute
 * microversion {@link NOVA_MICROVERSION}, so servers embed their flavor with `original_name`):
 *
 * | entity          | request                                   | id                   | state                       | parents   |
 * | --------------- | ----------------------------------------- | -------------------- | --------------------------- | --------- |
 * | `nova.instance` | GET /servers/detail?all_tenants=1 (pages) | `id`                 | `status`                    | nova.host |
 * | `nova.host`     | GET /os-hypervisors/detail (pages)        | `service.host`       | `state` (UP/DOWN)           | nova.zone |
 * | `nova.zone`     | GET /os-availability-zone/detail          | `zoneName`           | AVAILABLE / UNAVAILABLE     | —         |
 *
 * A host is named by its compute service host, which is what a server's `OS-EXT-SRV-ATTR:host`
 * and the notifications' `host` name, so instance → host references meet.
 */
export const NOVA_MICROVERSION = '2.53';

/** The fields of a server record (GET /servers/detail, microversion ≥ 2.47) this source reads. */
export interface ApiServer {
  id: string;
  name?: string | null;
  status?: string | null;
  tenant_id?: string | null;
  user_id?: string | null;
  'OS-EXT-STS:vm_state'?: string | null;
  'OS-EXT-STS:task_state'?: string | null;
  'OS-EXT-SRV-ATTR:host'?: string | null;
  'OS-EXT-AZ:availability_zone'?: string | null;
  flavor?: { original_name?: string | null; id?: string | null } | null;
  /** `""` for a server booted from a volume. */
  image?: { id?: string | null } | string | null;
}

/**
 * What {@link serverDraft} reads of a server record, and nothing else (fetchAllPages' `pick`): a
 * 100,000-server poll then holds about 0.2 KB per server until its last page, not 1.7 KB, and
 * only that much is copied from the parse worker.
 */
export const SERVER_PICK: PickShape = {
  id: true,
  name: true,
  status: true,
  tenant_id: true,
  user_id: true,
  'OS-EXT-STS:vm_state': true,
  'OS-EXT-STS:task_state': true,
  'OS-EXT-SRV-ATTR:host': true,
  'OS-EXT-AZ:availability_zone': true,
  flavor: { original_name: true },
  image: { id: true },
};

/** {@link SERVER_PICK} as a function. */
export const pickServer = pickBy<ApiServer>(SERVER_PICK);

/**
 * A page's server as a Nova record: a copy of this, not a literal. A literal whose objects once
 * outlived a scavenge (a poll read faster than normalized) gets them made in the old generation for
 * good (V8's pretenuring), where a page's records, dead a page later, wait for a major collection
 * (docs/scale.md, "Pages prepared as they arrive"). A spread has no allocation site.
 */
const SERVER_RECORD = JSON.parse('{"kind":"server","server":null}') as Extract<NovaRecord, { kind: 'server' }>;

/** The fields of a hypervisor record (GET /os-hypervisors/detail, microversion ≥ 2.53) this source reads. */
export interface ApiHypervisor {
  id: string | number;
  hypervisor_hostname?: string | null;
  hypervisor_type?: string | null;
  host_ip?: string | null;
  state?: string | null;
  status?: string | null;
  service?: { host?: string | null; disabled_reason?: string | null } | null;
}

/** An availability zone (GET /os-availability-zone/detail). */
export interface ApiZone {
  zoneName: string;
  zoneState?: { available?: boolean | null } | null;
  /** host → service binary → status; null for zones without hosts. */
  hosts?: Record<string, Record<string, { available?: boolean; active?: boolean } | null> | null> | null;
}

/** The nova.instance entity of a server record (through the shared {@link instanceDraft}). */
export function serverDraft(s: ApiServer): EntityDraft {
  const image = typeof s.image === 'object' && s.image !== null ? s.image.id : undefined;
  return instanceDraft({
    id: s.id,
    name: s.name,
    status: s.status,
    vmState: s['OS-EXT-STS:vm_state'],
    taskState: s['OS-EXT-STS:task_state'],
    project: s.tenant_id,
    host: s['OS-EXT-SRV-ATTR:host'],
    availabilityZone: s['OS-EXT-AZ:availability_zone'],
    flavor: s.flavor?.original_name,
    image,
    user: s.user_id,
  });
}

/** The compute hosts of a zone: those running nova-compute (control services sit in `internal`). */
function computeHosts(zone: ApiZone): string[] {
  return Object.entries(zone.hosts ?? {})
    .filter(([, services]) => services !== null && 'nova-compute' in services)
    .map(([host]) => host)
    .sort();
}

/** compute host → its zone's name. */
export function zoneOfHosts(zones: readonly ApiZone[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const zone of zones) for (const host of computeHosts(zone)) out.set(host, zone.zoneName);
  return out;
}

/** The nova.zone entity of an availability zone. */
export function zoneDraft(z: ApiZone): EntityDraft {
  const available = z.zoneState?.available;
  return {
    type: 'nova.zone',
    id: z.zoneName,
    name: z.zoneName,
    state: available === true ? 'AVAILABLE' : available === false ? 'UNAVAILABLE' : undefined,
    parents: [],
    children: computeHosts(z).map((host) => ref('nova.host', host)),
    attributes: {},
  };
}

/** The nova.host entity of a hypervisor; `zone` is its availability zone, when known. */
export function hypervisorDraft(h: ApiHypervisor, zone?: string): EntityDraft | undefined {
  const host = h.service?.host ?? undefined;
  // Without a service host nothing could point at it; such records are left out on purpose.
  if (!host) return undefined;
  const attributes: Record<string, unknown> = {};
  // Keys in sorted order: normalizeEntity then keeps the object as is.
  if (h.service?.disabled_reason) attributes.disabled_reason = h.service.disabled_reason;
  if (h.host_ip) attributes.host_ip = h.host_ip;
  attributes.hypervisor_id = String(h.id);
  if (h.hypervisor_type) attributes.hypervisor_type = h.hypervisor_type;
  if (h.status) attributes.status = h.status;
  return {
    type: 'nova.host',
    id: host,
    name: h.hypervisor_hostname ?? undefined,
    state: h.state ?? undefined,
    parents: zone ? [ref('nova.zone', zone)] : [],
    attributes,
  };
}

/** What one Nova poll yields, tagged by collection (a host carries its zone, looked up in the zone list). */
export type NovaRecord =
  | { kind: 'server'; server: ApiServer }
  | { kind: 'hypervisor'; hypervisor: ApiHypervisor; zone?: string }
  | { kind: 'zone'; zone: ApiZone };

export const NOVA_TYPES = ['nova.instance', 'nova.host', 'nova.zone'] as const;
type NovaType = (typeof NOVA_TYPES)[number];

export interface NovaOptions extends OpenStackPollOptions {
  /** Which of nova.instance, nova.host, nova.zone to poll (`types`, default all). */
  types: NovaType[];
}

/**
 * The nova.* entity of a poll record. Called once per record (10,000s per poll): a `switch`, not
 * ts-pattern, whose builder costs about 0.7 µs per call here; `unreachable` keeps it exhaustive.
 */
export function novaRecordDraft(r: NovaRecord): EntityDraft | undefined {
  switch (r.kind) {
    case 'server':
      return serverDraft(r.server);
    case 'hypervisor':
      return hypervisorDraft(r.hypervisor, r.zone);
    case 'zone':
      return zoneDraft(r.zone);
    default:
      return unreachable(r, 'Nova record kind');
  }
}

export default defineSource<NovaOptions, NovaRecord>({
  options: (read) => {
    const types = read.stringList('types', [...NOVA_TYPES]);
    types.forEach((t, i) => {
      if (!(NOVA_TYPES as readonly string[]).includes(t)) read.fail(`types[${i}]`, `expected one of ${NOVA_TYPES.join(', ')}, got ${JSON.stringify(t)}`);
    });
    return { ...readOpenStackPollOptions(read), types: types as NovaType[] };
  },

  create: (options, context) => {
    const want = new Set(options.types);
    return openstackSource<NovaRecord>(
      {
        serviceTypes: ['compute'],
        types: options.types,
        headers: { 'OpenStack-API-Version': `compute ${NOVA_MICROVERSION}`, 'X-OpenStack-Nova-API-Version': NOVA_MICROVERSION },
        fetch: async ({ http, signal, deliver, kept }) => {
          // The servers (the big collection) are handed over page by page, as read; those the
          // previous poll had as they are may come kept (the baseline's entity): a server's entity
          // depends on its picked record alone (serverDraft reads nothing else), so they may.
          const servers = (page: (ApiServer | Kept)[]): void =>
            deliver(
              page.map((server): NovaRecord | Kept => {
                if (server instanceof Kept) return server;
                const record = { ...SERVER_RECORD };
                record.server = server;
                return record;
              }),
            );
          const keptServers = kept === undefined ? undefined : { paging: kept, type: 'nova.instance' as const, id: 'id' };
          const [, hypervisors, zones] = await allParts<[(ApiServer | Kept)[], ApiHypervisor[], ApiZone[]]>(signal, [
            (s) => (want.has('nova.instance') ? fetchAllPages<ApiServer>(http, '/servers/detail', { key: 'servers', params: { all_tenants: 1 }, pick: SERVER_PICK, onPage: servers, kept: keptServers, signal: s }) : Promise.resolve([])),
            (s) => (want.has('nova.host') ? fetchAllPages<ApiHypervisor>(http, '/os-hypervisors/detail', { key: 'hypervisors', signal: s }) : Promise.resolve([])),
            async (s) =>
              want.has('nova.zone') || want.has('nova.host')
                ? ((await http.get<{ availabilityZoneInfo?: ApiZone[] }>('/os-availability-zone/detail', { signal: s })).availabilityZoneInfo ?? [])
                : [],
          ]);
          const zoneOf = zoneOfHosts(zones);
          const records: NovaRecord[] = [];
          for (const hypervisor of hypervisors) {
            const zone = hypervisor.service?.host ? zoneOf.get(hypervisor.service.host) : undefined;
            records.push(zone ? { kind: 'hypervisor', hypervisor, zone } : { kind: 'hypervisor', hypervisor });
          }
          if (want.has('nova.zone')) for (const zone of zones) records.push({ kind: 'zone', zone });
          return records;
        },
        map: novaRecordDraft,
      },
      options,
      context,
    );
  },
});
