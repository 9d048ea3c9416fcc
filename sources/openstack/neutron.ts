import { type EntityDraft, type EntityRef, ref } from '../../src/model.js';

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

function text(value: string | null | undefined): string | undefined {
  return value === null || value === undefined || value === '' ? undefined : value;
}

/** Copies the fields that are set (not null/undefined): absent and null mean the same here. */
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
    name: text(n.name),
    state: text(n.status),
    project: text(n.project_id) ?? text(n.tenant_id),
    parents: [],
    attributes: defined({
      admin_state_up: n.admin_state_up,
      shared: n.shared,
      router_external: n['router:external'],
      network_type: n['provider:network_type'],
      mtu: n.mtu,
    }),
  };
}

/** The instance a port is plugged into: Nova sets device_owner `compute:<zone>` and device_id = server id. */
export function portInstance(p: Pick<ApiPort, 'device_id' | 'device_owner'>): string | undefined {
  const owner = text(p.device_owner);
  return owner?.startsWith('compute:') ? text(p.device_id) : undefined;
}

/** The neutron.port entity of a port record. */
export function portDraft(p: ApiPort): EntityDraft {
  const parents: EntityRef[] = [];
  const network = text(p.network_id);
  if (network) parents.push(ref('neutron.network', network));
  const instance = portInstance(p);
  if (instance) parents.push(ref('nova.instance', instance));
  const ips = (p.fixed_ips ?? []).map((ip) => ip.ip_address).filter((ip): ip is string => typeof ip === 'string' && ip !== '');
  return {
    type: 'neutron.port',
    id: p.id,
    name: text(p.name),
    state: text(p.status),
    project: text(p.project_id) ?? text(p.tenant_id),
    parents,
    attributes: defined({
      admin_state_up: p.admin_state_up,
      mac_address: p.mac_address,
      device_owner: p.device_owner,
      device_id: p.device_id,
      fixed_ips: ips.length > 0 ? ips : undefined,
      binding_host: p['binding:host_id'],
    }),
  };
}
