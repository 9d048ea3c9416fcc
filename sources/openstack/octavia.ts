import { fetchAllPages } from '../../src/http.js';
import type { PickShape } from '../../src/pick.js';
import { type EntityDraft, type EntityRef, ref, unreachable } from '../../src/model.js';
import { defineSource } from '../../src/source.js';
import { type ApiPort, portInstance } from './neutron.js';
import { type OpenStackPollOptions, allParts, openstackSource, readOpenStackPollOptions, withSuffix } from './poller.js';
import { present } from './fields.js';

/**
 * `use: openstack.octavia` — load balancers from Octavia's v2 API (every page, by `*_links`):
 *
 * | entity                 | request                                   | id   | state              | parents                                         |
 * | ---------------------- | ----------------------------------------- | ---- | ------------------ | ----------------------------------------------- |
 * | `octavia.loadbalancer` | GET /v2/lbaas/loadbalancers               | `id` | `operating_status` | its VIP neutron.port and neutron.network        |
 * | `octavia.listener`     | GET /v2/lbaas/listeners                   | `id` | `operating_status` | its load balancers                              |
 * | `octavia.pool`         | GET /v2/lbaas/pools                       | `id` | `operating_status` | its load balancers and listeners                |
 * | `octavia.member`       | GET /v2/lbaas/pools/{pool}/members        | `id` | `operating_status` | its pool, the neutron.port and nova.instance at its address |
 *
 * `provisioning_status` (ACTIVE, PENDING_*, ERROR) is an attribute of each. A member names only an
 * address and subnet: the port there (and the instance that port belongs to) is looked up in
 * Neutron's ports (`GET /v2.0/ports`, keeping ids, devices and fixed IPs) in the same poll, unless
 * `resolveMembers: false`.
 */
export interface ApiLoadBalancer {
  id: string;
  name?: string | null;
  provisioning_status?: string | null;
  operating_status?: string | null;
  project_id?: string | null;
  vip_address?: string | null;
  vip_port_id?: string | null;
  vip_network_id?: string | null;
  provider?: string | null;
}

export interface ApiListener {
  id: string;
  name?: string | null;
  provisioning_status?: string | null;
  operating_status?: string | null;
  project_id?: string | null;
  protocol?: string | null;
  protocol_port?: number | null;
  loadbalancers?: { id: string }[] | null;
}

export interface ApiPool {
  id: string;
  name?: string | null;
  provisioning_status?: string | null;
  operating_status?: string | null;
  project_id?: string | null;
  protocol?: string | null;
  lb_algorithm?: string | null;
  loadbalancers?: { id: string }[] | null;
  listeners?: { id: string }[] | null;
}

export interface ApiMember {
  id: string;
  name?: string | null;
  provisioning_status?: string | null;
  operating_status?: string | null;
  project_id?: string | null;
  address?: string | null;
  protocol_port?: number | null;
  subnet_id?: string | null;
}

/** A member's port and that port's instance, when Neutron has a port at its address. */
export interface MemberTarget {
  port: string;
  instance?: string | undefined;
}

export type OctaviaRecord =
  | { kind: 'loadbalancer'; lb: ApiLoadBalancer }
  | { kind: 'listener'; listener: ApiListener }
  | { kind: 'pool'; pool: ApiPool }
  | { kind: 'member'; member: ApiMember; pool: string; target?: MemberTarget | undefined };

const refs = (type: string, list: { id: string }[] | null | undefined): EntityRef[] => (list ?? []).map((x) => ref(type, x.id));

function base(type: string, r: { id: string; name?: string | null; operating_status?: string | null; project_id?: string | null }, parents: EntityRef[], attributes: Record<string, unknown>): EntityDraft {
  return { type, id: r.id, name: present(r.name), state: present(r.operating_status), project: present(r.project_id), parents, attributes };
}

/** Attributes in sorted key order, without unset ones. */
function attrs(entries: [string, unknown][]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries.sort(([a], [b]) => (a < b ? -1 : 1))) if (v !== null && v !== undefined && v !== '') out[k] = v;
  return out;
}

/** The octavia.* entity of a poll record. */
export function octaviaDraft(r: OctaviaRecord): EntityDraft {
  switch (r.kind) {
    case 'loadbalancer': {
      const { lb } = r;
      const parents = [...(present(lb.vip_port_id) ? [ref('neutron.port', lb.vip_port_id!)] : []), ...(present(lb.vip_network_id) ? [ref('neutron.network', lb.vip_network_id!)] : [])];
      return base('octavia.loadbalancer', lb, parents, attrs([['provisioning_status', lb.provisioning_status], ['vip_address', lb.vip_address], ['provider', lb.provider]]));
    }
    case 'listener': {
      const { listener: l } = r;
      return base('octavia.listener', l, refs('octavia.loadbalancer', l.loadbalancers), attrs([['provisioning_status', l.provisioning_status], ['protocol', l.protocol], ['protocol_port', l.protocol_port]]));
    }
    case 'pool': {
      const { pool: p } = r;
      return base('octavia.pool', p, [...refs('octavia.loadbalancer', p.loadbalancers), ...refs('octavia.listener', p.listeners)], attrs([['provisioning_status', p.provisioning_status], ['protocol', p.protocol], ['lb_algorithm', p.lb_algorithm]]));
    }
    case 'member': {
      const { member: m, target } = r;
      const parents = [ref('octavia.pool', r.pool), ...(target ? [ref('neutron.port', target.port)] : []), ...(target?.instance ? [ref('nova.instance', target.instance)] : [])];
      return base('octavia.member', m, parents, attrs([['provisioning_status', m.provisioning_status], ['address', m.address], ['protocol_port', m.protocol_port], ['subnet_id', m.subnet_id]]));
    }
    default:
      return unreachable(r, 'Octavia record kind');
  }
}

/** What {@link portsByAddress} reads of a port. */
const PORT_TARGET_PICK: PickShape = { id: true, device_id: true, device_owner: true, fixed_ips: true };

/** `subnet_id ip` → the port holding that fixed IP (and its instance). */
export function portsByAddress(ports: readonly ApiPort[]): Map<string, MemberTarget> {
  const out = new Map<string, MemberTarget>();
  for (const p of ports) {
    const instance = portInstance(p);
    for (const ip of p.fixed_ips ?? []) {
      if (ip.subnet_id && ip.ip_address) out.set(`${ip.subnet_id} ${ip.ip_address}`, instance ? { port: p.id, instance } : { port: p.id });
    }
  }
  return out;
}

/** Member lists requested side by side. */
const MEMBER_LISTS_AT_ONCE = 8;

export const OCTAVIA_TYPES = ['octavia.loadbalancer', 'octavia.listener', 'octavia.pool', 'octavia.member'] as const;

export interface OctaviaOptions extends OpenStackPollOptions {
  /** Look members' ports up in Neutron (`resolveMembers`, default true). */
  resolveMembers: boolean;
}

export default defineSource<OctaviaOptions, OctaviaRecord>({
  options: (read) => ({ ...readOpenStackPollOptions(read), resolveMembers: read.boolean('resolveMembers', true) }),
  create: (options, context) =>
    openstackSource<OctaviaRecord>(
      {
        serviceTypes: ['load-balancer'],
        types: OCTAVIA_TYPES,
        fetch: async ({ http, signal, service }) => {
          const list = <T>(path: string, key: string, s: AbortSignal): Promise<T[]> => fetchAllPages<T>(http, path, { key, signal: s });
          const [lbs, listeners, pools, ports] = await allParts<[ApiLoadBalancer[], ApiListener[], ApiPool[], ApiPort[]]>(signal, [
            (s) => list<ApiLoadBalancer>('/v2/lbaas/loadbalancers', 'loadbalancers', s),
            (s) => list<ApiListener>('/v2/lbaas/listeners', 'listeners', s),
            (s) => list<ApiPool>('/v2/lbaas/pools', 'pools', s),
            async (s) =>
              options.resolveMembers
                ? fetchAllPages<ApiPort>(await service(['network'], (u) => withSuffix(u, '/v2.0')), '/ports', { key: 'ports', pick: PORT_TARGET_PICK, signal: s })
                : [],
          ]);
          // Members are listed per pool: one request (or more pages) each, a few pools at a time
          // so that a cloud of thousands of pools is not asked thousands of things at once.
          const members: ApiMember[][] = [];
          for (let i = 0; i < pools.length; i += MEMBER_LISTS_AT_ONCE) {
            const batch = pools.slice(i, i + MEMBER_LISTS_AT_ONCE);
            members.push(...(await allParts<ApiMember[][]>(signal, batch.map((p) => (s: AbortSignal) => list<ApiMember>(`/v2/lbaas/pools/${encodeURIComponent(p.id)}/members`, 'members', s)))));
          }
          const at = portsByAddress(ports);
          const records: OctaviaRecord[] = [
            ...lbs.map((lb): OctaviaRecord => ({ kind: 'loadbalancer', lb })),
            ...listeners.map((listener): OctaviaRecord => ({ kind: 'listener', listener })),
            ...pools.map((pool): OctaviaRecord => ({ kind: 'pool', pool })),
          ];
          pools.forEach((pool, i) => {
            for (const member of members[i] ?? []) records.push({ kind: 'member', member, pool: pool.id, target: at.get(`${member.subnet_id ?? ''} ${member.address ?? ''}`) });
          });
          return records;
        },
        map: octaviaDraft,
      },
      options,
      context,
    ),
});
