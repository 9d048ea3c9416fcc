import { fetchAllPages } from '../../src/http.js';
import { type PickShape, pickBy } from '../../src/pick.js';
import { type EntityDraft, ref } from '../../src/model.js';
import { defineSource } from '../../src/source.js';
import { type OpenStackPollOptions, openstackSource, readOpenStackPollOptions, withSuffix } from './poller.js';
import { present } from './fields.js';

/**
 * `use: openstack.cinder` — volumes from Cinder's API:
 *
 * | entity          | request                                            | id   | state    | parents                        |
 * | --------------- | -------------------------------------------------- | ---- | -------- | ------------------------------ |
 * | `cinder.volume` | GET /v3/{project}/volumes/detail?all_tenants=1 (pages) | `id` | `status` | the instances it's attached to |
 *
 * {@link volumeDraft} is the one definition of a cinder.volume: the API record goes through
 * {@link apiVolumeFacts}, a `volume.*` notification payload through its own reduction to
 * {@link VolumeFacts}, and both give the same entity. Only facts both carry are kept (the
 * notification has the volume type's id where the API has its name, so neither is kept).
 */
export interface VolumeFacts {
  id: string;
  name?: string | null | undefined;
  /** available, in-use, creating, error… (upper-cased by the pipeline). */
  status?: string | null | undefined;
  project?: string | null | undefined;
  /** Server ids it is attached to. */
  attachedTo?: readonly string[] | undefined;
  size?: number | string | null | undefined;
  availabilityZone?: string | null | undefined;
  /** The backend host (`host@backend#pool`). */
  host?: string | null | undefined;
}

/** The fields of a Cinder volume record (GET /v3/{project}/volumes/detail) this source reads. */
export interface ApiVolume {
  id: string;
  name?: string | null;
  status?: string | null;
  size?: number | null;
  availability_zone?: string | null;
  'os-vol-tenant-attr:tenant_id'?: string | null;
  'os-vol-host-attr:host'?: string | null;
  attachments?: { server_id?: string | null }[] | null;
}

/** What {@link apiVolumeFacts} reads of a volume record, and nothing else (fetchAllPages' `pick`; see SERVER_PICK). */
export const VOLUME_PICK: PickShape = {
  id: true,
  name: true,
  status: true,
  size: true,
  availability_zone: true,
  'os-vol-tenant-attr:tenant_id': true,
  'os-vol-host-attr:host': true,
  attachments: { server_id: true },
};

/** {@link VOLUME_PICK} as a function. */
export const pickVolume = pickBy<ApiVolume>(VOLUME_PICK);

/** The facts of an API volume record. */
export function apiVolumeFacts(v: ApiVolume): VolumeFacts {
  return {
    id: v.id,
    name: v.name,
    status: v.status,
    project: v['os-vol-tenant-attr:tenant_id'],
    attachedTo: (v.attachments ?? []).map((a) => a.server_id).filter((s): s is string => typeof s === 'string' && s !== ''),
    size: v.size,
    availabilityZone: v.availability_zone,
    host: v['os-vol-host-attr:host'],
  };
}

/** The cinder.volume entity of a volume's facts. */
export function volumeDraft(f: VolumeFacts): EntityDraft {
  const attributes: Record<string, unknown> = {};
  // Notifications send the size as a string at times: one form, so poll and push hash alike.
  // Keys in sorted order: normalizeEntity then keeps the object as is.
  const zone = present(f.availabilityZone);
  if (zone) attributes.availability_zone = zone;
  const host = present(f.host);
  if (host) attributes.host = host;
  // Absent is NaN to Number(), left out below; null and '' would be 0.
  const size = f.size === null || f.size === '' ? undefined : Number(f.size);
  if (Number.isFinite(size)) attributes.size = size;
  return {
    type: 'cinder.volume',
    id: f.id,
    name: present(f.name),
    state: present(f.status),
    project: present(f.project),
    parents: [...new Set(f.attachedTo ?? [])].sort().map((server) => ref('nova.instance', server)),
    attributes,
  };
}

export default defineSource<OpenStackPollOptions, ApiVolume>({
  options: readOpenStackPollOptions,
  create: (options, context) =>
    openstackSource<ApiVolume>(
      {
        serviceTypes: ['block-storage', 'volumev3', 'volume'],
        types: ['cinder.volume'],
        // Older catalogs carry the project in the URL (…/v3/{project}); newer ones leave it out.
        endpoint: (url, token) => (token.projectId ? withSuffix(url, `/${token.projectId}`) : url),
        // Every page is handed over as read: nothing is left to return. A volume's entity depends on
        // its picked record alone (apiVolumeFacts, volumeDraft), so unchanged ones may come kept.
        fetch: async ({ http, signal, deliver, kept }) => {
          await fetchAllPages<ApiVolume>(http, '/volumes/detail', { key: 'volumes', params: { all_tenants: 1 }, pick: VOLUME_PICK, onPage: deliver, kept: kept === undefined ? undefined : { paging: kept, type: 'cinder.volume', id: 'id' }, signal });
          return [];
        },
        map: (v) => volumeDraft(apiVolumeFacts(v)),
      },
      options,
      context,
    ),
});
