import { fetchAllPages } from '../../src/http.js';
import { type EntityDraft, ref, unreachable } from '../../src/model.js';
import { defineSource } from '../../src/source.js';
import { type OpenStackPollOptions, allParts, openstackSource, readOpenStackPollOptions, withSuffix } from './poller.js';
import { present } from './fields.js';

/**
 * `use: openstack.trove` — databases from Trove's management API (admin: every project, and the
 * Nova server behind each instance), as Vitrage's Trove driver had them:
 *
 * | entity           | request                                                     | id   | state                   | parents / children                    |
 * | ---------------- | ----------------------------------------------------------- | ---- | ----------------------- | ------------------------------------- |
 * | `trove.instance` | GET /v1.0/{project}/mgmt/instances?include_clustered=true   | `id` | `status`                | parent: its nova.instance (`server_id`) |
 * | `trove.cluster`  | GET /v1.0/{project}/mgmt/clusters                           | `id` | `task.name` (NONE, BUILDING, …) | children: its trove.instances   |
 *
 * Trove pages with a top-level `links` list (`rel: next`).
 */
export interface ApiTroveInstance {
  id: string;
  name?: string | null;
  status?: string | null;
  operating_status?: string | null;
  tenant_id?: string | null;
  server_id?: string | null;
  /** The mgmt view nests the server too (`server.id`). */
  server?: { id?: string | null } | null;
  cluster_id?: string | null;
  datastore?: { type?: string | null; version?: string | null } | null;
  region?: string | null;
}

export interface ApiTroveCluster {
  id: string;
  name?: string | null;
  task?: { name?: string | null } | null;
  tenant_id?: string | null;
  datastore?: { type?: string | null; version?: string | null } | null;
  instances?: { id: string }[] | null;
}

export type TroveRecord = { kind: 'instance'; instance: ApiTroveInstance } | { kind: 'cluster'; cluster: ApiTroveCluster };

function datastoreAttrs(d: ApiTroveInstance['datastore']): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const type = present(d?.type);
  if (type) out.datastore = type;
  const version = present(d?.version);
  if (version) out.datastore_version = version;
  return out;
}

/** The trove.* entity of a poll record. */
export function troveDraft(r: TroveRecord): EntityDraft {
  switch (r.kind) {
    case 'instance': {
      const i = r.instance;
      const server = present(i.server_id) ?? present(i.server?.id);
      const attributes = datastoreAttrs(i.datastore);
      const operating = present(i.operating_status);
      if (operating) attributes.operating_status = operating;
      return {
        type: 'trove.instance',
        id: i.id,
        name: present(i.name),
        state: present(i.status),
        project: present(i.tenant_id),
        parents: server ? [ref('nova.instance', server)] : [],
        attributes,
      };
    }
    case 'cluster': {
      const c = r.cluster;
      return {
        type: 'trove.cluster',
        id: c.id,
        name: present(c.name),
        state: present(c.task?.name),
        project: present(c.tenant_id),
        parents: [],
        children: (c.instances ?? []).map((i) => ref('trove.instance', i.id)),
        attributes: datastoreAttrs(c.datastore),
      };
    }
    default:
      return unreachable(r, 'Trove record kind');
  }
}

/** The catalog URL ends in /v1.0/{project} (Trove's own registration); added when it doesn't. */
export function troveEndpoint(url: string, projectId: string | undefined): string {
  return projectId && !/\/v1\.0\/[^/]+\/?$/.test(url) ? withSuffix(withSuffix(url, '/v1.0'), `/${projectId}`) : url;
}

export default defineSource<OpenStackPollOptions, TroveRecord>({
  options: readOpenStackPollOptions,
  create: (options, context) =>
    openstackSource<TroveRecord>(
      {
        serviceTypes: ['database'],
        types: ['trove.instance', 'trove.cluster'],
        endpoint: (url, token) => troveEndpoint(url, token.projectId),
        fetch: async ({ http, signal }) => {
          const pages = { next: { links: 'links' } } as const;
          const [instances, clusters] = await allParts<[ApiTroveInstance[], ApiTroveCluster[]]>(signal, [
            (s) => fetchAllPages<ApiTroveInstance>(http, '/mgmt/instances', { key: 'instances', ...pages, params: { include_clustered: true }, signal: s }),
            (s) => fetchAllPages<ApiTroveCluster>(http, '/mgmt/clusters', { key: 'clusters', ...pages, signal: s }),
          ]);
          return [...instances.map((instance): TroveRecord => ({ kind: 'instance', instance })), ...clusters.map((cluster): TroveRecord => ({ kind: 'cluster', cluster }))];
        },
        map: troveDraft,
      },
      options,
      context,
    ),
});
