import { fetchAllPages } from '../../src/http.js';
import { type PickShape, pickBy } from '../../src/pick.js';
import { type EntityDraft, type EntityRef, ref, unreachable } from '../../src/model.js';
import { defineSource } from '../../src/source.js';
import { type OpenStackPollOptions, allParts, openstackSource, readOpenStackPollOptions, withSuffix } from './poller.js';
import { present } from './fields.js';

/**
 * `use: openstack.neutron` — networks and ports from Neutron's API:
 *
 * | entity            | request                    | id   | state    | parents                                   |
 * | ----------------- | -------------------------- | ---- | -------- | ----------------------------------------- |
 * | `neutron.network` | GET /v2.0/networks (pages) | `id` | `status` | —                                         |
 * | `neutron.port`    | GET /v2.0/ports (pages)    | `id` | `status` | its network; the nova.instance (compute:*) |
 *
 * The `port.*` and `network.*` notifications carry the same record as the API (`payload.port`,
 * `payload.network`), so {@link portDraft} and {@link networkDraft} serve both paths.
 */

/** The fields of a Neutron network record (GET /v2.0/networks, `network.*` notifications) this source reads. */
export interface ApiNetwork {
  id: string;
  name?: string | null;
  status?: string | null;
  project_id?: string | null;
  tenant_id?: string | null;
  admin_state_up?: boolean | null;
  shared?: boolean | null;
  'router:external'?: boolean | null;
  'provider:network_type'?: string | null;
  mtu?: number | null;
}

/** The fields of a Neutron port record (GET /v2.0/ports, `port.*` notifications) this source reads. */
export interface ApiPort {
  id: string;
  name?: string | null;
  status?: string | null;
  project_id?: string | null;
  tenant_id?: string | null;
  network_id?: string | null;
  device_id?: string | null;
  device_owner?: string | null;
  mac_address?: string | null;
  admin_state_up?: boolean | null;
  fixed_ips?: { ip_address?: string | null; subnet_id?: string | null }[] | null;
  'binding:host_id'?: string | null;
}

/** Copies the fields that are set: absent, null and '' mean the same here. Callers list keys sorted (normalizeEntity then keeps the object as is). */
/** What {@link portDraft} reads of a port record, and nothing else (fetchAllPages' `pick`; see SERVER_PICK). */
export const PORT_PICK: PickShape = {
  id: true,
  name: true,
  status: true,
  project_id: true,
  tenant_id: true,
  network_id: true,
  device_id: true,
  device_owner: true,
  mac_address: true,
  admin_state_up: true,
  fixed_ips: { ip_address: true },
  'binding:host_id': true,
};

/** {@link PORT_PICK} as a function. */
export const pickPort = pickBy<ApiPort>(PORT_PICK);

function defined(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null && v !== '') out[k] = v;
  return out;
}

/** The neutron.network entity of a network record. */
export function networkDraft(n: ApiNetwork): EntityDraft {
  return {
    type: 'neutron.network',
    id: n.id,
    name: present(n.name),
    state: present(n.status),
    project: present(n.project_id) ?? present(n.tenant_id),
    parents: [],
    attributes: defined({
      admin_state_up: n.admin_state_up,
      mtu: n.mtu,
      network_type: n['provider:network_type'],
      router_external: n['router:external'],
      shared: n.shared,
    }),
  };
}

/** The instance a port is plugged into: Nova sets device_owner `compute:<zone>` and device_id = server id. */
export function portInstance(p: Pick<ApiPort, 'device_id' | 'device_owner'>): string | undefined {
  const owner = present(p.device_owner);
  return owner?.startsWith('compute:') ? present(p.device_id) : undefined;
}

/** The neutron.port entity of a port record. */
export function portDraft(p: ApiPort): EntityDraft {
  const parents: EntityRef[] = [];
  const network = present(p.network_id);
  if (network) parents.push(ref('neutron.network', network));
  const instance = portInstance(p);
  if (instance) parents.push(ref('nova.instance', instance));
  const ips = (p.fixed_ips ?? []).map((ip) => ip.ip_address).filter((ip): ip is string => typeof ip === 'string' && ip !== '');
  return {
    type: 'neutron.port',
    id: p.id,
    name: present(p.name),
    state: present(p.status),
    project: present(p.project_id) ?? present(p.tenant_id),
    parents,
    attributes: defined({
      admin_state_up: p.admin_state_up,
      binding_host: p['binding:host_id'],
      device_id: p.device_id,
      device_owner: p.device_owner,
      fixed_ips: ips.length > 0 ? ips : undefined,
      mac_address: p.mac_address,
    }),
  };
}

/** What one Neutron poll yields, tagged by collection. */
export type NeutronRecord = { kind: 'network'; network: ApiNetwork } | { kind: 'port'; port: ApiPort };

/** The neutron.* entity of a poll record (per record, so a `switch`: see novaRecordDraft). */
function neutronRecordDraft(r: NeutronRecord): EntityDraft {
  switch (r.kind) {
    case 'network':
      return networkDraft(r.network);
    case 'port':
      return portDraft(r.port);
    default:
      // Stryker disable next-line StringLiteral: an exhaustiveness guard (`never`): no record reaches it
      return unreachable(r, 'Neutron record kind');
  }
}

export default defineSource<OpenStackPollOptions, NeutronRecord>({
  options: readOpenStackPollOptions,
  create: (options, context) =>
    openstackSource<NeutronRecord>(
      {
        serviceTypes: ['network'],
        types: ['neutron.network', 'neutron.port'],
        // The catalog names Neutron's root; the API lives under /v2.0.
        endpoint: (url) => withSuffix(url, '/v2.0'),
        fetch: async ({ http, signal }) => {
          const [networks, ports] = await allParts<[ApiNetwork[], ApiPort[]]>(signal, [
            (s) => fetchAllPages<ApiNetwork>(http, '/networks', { key: 'networks', signal: s }),
            (s) => fetchAllPages<ApiPort>(http, '/ports', { key: 'ports', pick: PORT_PICK, signal: s }),
          ]);
          return [...networks.map((network): NeutronRecord => ({ kind: 'network', network })), ...ports.map((port): NeutronRecord => ({ kind: 'port', port }))];
        },
        map: neutronRecordDraft,
      },
      options,
      context,
    ),
});
