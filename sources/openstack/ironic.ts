import { fetchAllPages } from '../../src/http.js';
import { type PickShape, pickBy } from '../../src/pick.js';
import { type EntityDraft, ref } from '../../src/model.js';
import { defineSource } from '../../src/source.js';
import { type OpenStackPollOptions, openstackSource, readOpenStackPollOptions } from './poller.js';
import { present } from './fields.js';

/**
 * `use: openstack.ironic` — bare-metal nodes from Ironic's API (microversion
 * {@link IRONIC_MICROVERSION}, the first that carries every field mapped here: `lessee`):
 *
 * | entity        | request                                    | id     | state             | children                       |
 * | ------------- | ------------------------------------------ | ------ | ----------------- | ------------------------------ |
 * | `ironic.node` | GET /v1/nodes/detail (pages by `next` URL) | `uuid` | `provision_state` | the nova.instance it hosts     |
 *
 * {@link nodeDraft} is the one definition of an ironic.node: the API record and the versioned
 * `baremetal.node.*` notifications' `ironic_object.data` (the same field names) give the same
 * entity. Only fields both carry are kept: power and target states, maintenance and its reason,
 * fault, last error, owner (the project), lessee, resource class, driver, conductor group.
 */
export const IRONIC_MICROVERSION = '1.65';

/** The fields of a node (API record or notification payload data) this source reads. */
export interface ApiNode {
  uuid: string;
  name?: string | null;
  provision_state?: string | null;
  target_provision_state?: string | null;
  power_state?: string | null;
  target_power_state?: string | null;
  maintenance?: boolean | null;
  maintenance_reason?: string | null;
  fault?: string | null;
  last_error?: string | null;
  owner?: string | null;
  lessee?: string | null;
  instance_uuid?: string | null;
  resource_class?: string | null;
  driver?: string | null;
  conductor_group?: string | null;
}

const NODE_FIELDS = [
  'uuid',
  'name',
  'provision_state',
  'target_provision_state',
  'power_state',
  'target_power_state',
  'maintenance',
  'maintenance_reason',
  'fault',
  'last_error',
  'owner',
  'lessee',
  'instance_uuid',
  'resource_class',
  'driver',
  'conductor_group',
] as const;

/** What {@link nodeDraft} reads of a node (fetchAllPages' `pick`: a node has 63 fields at 1.82). */
export const NODE_PICK: PickShape = Object.fromEntries(NODE_FIELDS.map((field) => [field, true]));

/** {@link NODE_PICK} as a function. */
export const pickNode = pickBy<ApiNode>(NODE_PICK);

/** The ironic.node entity of a node record or notification payload. */
export function nodeDraft(n: ApiNode): EntityDraft {
  // Keys in sorted order: normalizeEntity then keeps the object as is.
  const attributes: Record<string, unknown> = {};
  const put = (key: string, value: string | null | undefined): void => {
    const v = present(value);
    if (v !== undefined) attributes[key] = v;
  };
  put('conductor_group', n.conductor_group);
  put('driver', n.driver);
  put('fault', n.fault);
  put('last_error', n.last_error);
  put('lessee', n.lessee);
  attributes.maintenance = n.maintenance === true;
  put('maintenance_reason', n.maintenance_reason);
  put('power_state', n.power_state);
  put('resource_class', n.resource_class);
  put('target_power_state', n.target_power_state);
  put('target_provision_state', n.target_provision_state);
  const instance = present(n.instance_uuid);
  return {
    type: 'ironic.node',
    id: n.uuid,
    name: present(n.name),
    state: present(n.provision_state),
    project: present(n.owner),
    parents: [],
    children: instance ? [ref('nova.instance', instance)] : [],
    attributes,
  };
}

/** Ironic's default `[api] max_limit`; a full page carries a `next` URL. */
const IRONIC_PAGE = 1000;

export default defineSource<OpenStackPollOptions, ApiNode>({
  options: readOpenStackPollOptions,
  create: (options, context) =>
    openstackSource<ApiNode>(
      {
        serviceTypes: ['baremetal'],
        types: ['ironic.node'],
        headers: { 'X-OpenStack-Ironic-API-Version': IRONIC_MICROVERSION },
        fetch: ({ http, signal }) => fetchAllPages<ApiNode>(http, '/v1/nodes/detail', { key: 'nodes', next: 'next', limit: IRONIC_PAGE, pick: NODE_PICK, signal }),
        map: nodeDraft,
      },
      options,
      context,
    ),
});
