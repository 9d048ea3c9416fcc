import type { V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { type KubeAccessOptions, type KubeClient, checkKubeAccess, kubeClient, kubeResource, readKubeAccessOptions } from '../src/kubernetes.js';
import { type ListWatchResource, listWatch } from '../src/listWatch.js';
import { type EntityDraft, type EntityRef, ref, unreachable } from '../src/model.js';
import { defineSource } from '../src/source.js';

/**
 * `use: kubernetes` — a cluster's nodes and pods (and services, when asked for), listed once and
 * then watched (src/listWatch.ts: bookmarks, resume from the last resourceVersion, relist on 410):
 *
 * | entity               | request (list, then `watch=true`) | id              | state                                      | parents                                    |
 * | -------------------- | --------------------------------- | --------------- | ------------------------------------------ | ------------------------------------------ |
 * | `kubernetes.node`    | GET /api/v1/nodes                 | `metadata.name` | Ready condition: READY, NOT_READY, UNKNOWN | nova.instance from `spec.providerID`       |
 * | `kubernetes.pod`     | GET /api/v1/pods                  | `metadata.uid`  | TERMINATING, else `status.phase` (RUNNING…) | kubernetes.node (`spec.nodeName`)          |
 * | `kubernetes.service` | GET /api/v1/services              | `metadata.uid`  | ACTIVE                                     | —                                          |
 *
 * A node built by OpenStack's cloud provider names its Nova server in `spec.providerID`
 * (`openstack:///<server uuid>`, or `openstack://<region>/<server uuid>`). Pods and services are
 * named `<namespace>/<name>` and keyed by uid, so a pod deleted and created again under the same
 * name is a new entity. List items come as client-node's typed objects (times as Date), watch
 * objects as plain JSON (times as strings): the mapping reads no times, so both map alike.
 */
export const KUBERNETES_TYPES = ['kubernetes.node', 'kubernetes.pod', 'kubernetes.service'] as const;
type KubernetesType = (typeof KUBERNETES_TYPES)[number];

/** What the source emits: one object of one collection. */
export type KubeRecord = { kind: 'node'; object: V1Node } | { kind: 'pod'; object: V1Pod } | { kind: 'service'; object: V1Service };

const PROVIDER_ID = /^openstack:\/\/[^/]*\/([0-9a-fA-F-]{32,36})$/;

/** The Nova server a node runs on, from its `spec.providerID`. */
export function novaServerOf(providerID: string | undefined): EntityRef | undefined {
  const m = providerID === undefined ? null : PROVIDER_ID.exec(providerID);
  return m ? ref('nova.instance', m[1]!.toLowerCase()) : undefined;
}

function condition(conditions: readonly { type: string; status: string }[] | undefined, type: string): string | undefined {
  return conditions?.find((c) => c.type === type)?.status;
}

export function nodeDraft(node: V1Node): EntityDraft | undefined {
  const name = node.metadata?.name;
  if (!name) return undefined;
  const ready = condition(node.status?.conditions, 'Ready');
  const server = novaServerOf(node.spec?.providerID);
  // Conditions but their heartbeat times, which move on every kubelet report: not a change.
  const pressure = (node.status?.conditions ?? []).filter((c) => c.type !== 'Ready' && c.status === 'True').map((c) => c.type).sort();
  return {
    type: 'kubernetes.node',
    id: name,
    name,
    state: ready === 'True' ? 'READY' : ready === 'False' ? 'NOT_READY' : 'UNKNOWN',
    parents: server ? [server] : [],
    attributes: {
      ...(node.spec?.providerID ? { providerID: node.spec.providerID } : {}),
      conditions: pressure,
      internalIP: node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address,
      kubeletVersion: node.status?.nodeInfo?.kubeletVersion,
      unschedulable: node.spec?.unschedulable === true,
    },
  };
}

export function podDraft(pod: V1Pod): EntityDraft | undefined {
  const uid = pod.metadata?.uid;
  if (!uid) return undefined;
  const namespace = pod.metadata?.namespace ?? 'default';
  const statuses = pod.status?.containerStatuses ?? [];
  const waiting = statuses.map((s) => s.state?.waiting?.reason).find((r) => r !== undefined);
  const node = pod.spec?.nodeName;
  return {
    type: 'kubernetes.pod',
    id: uid,
    name: `${namespace}/${pod.metadata?.name ?? uid}`,
    state: pod.metadata?.deletionTimestamp ? 'TERMINATING' : (pod.status?.phase ?? 'Unknown').toUpperCase(),
    parents: node ? [ref('kubernetes.node', node)] : [],
    attributes: {
      namespace,
      podIP: pod.status?.podIP,
      ready: condition(pod.status?.conditions, 'Ready') === 'True',
      reason: pod.status?.reason,
      restarts: statuses.reduce((n, s) => n + (s.restartCount ?? 0), 0),
      waiting,
    },
  };
}

export function serviceDraft(service: V1Service): EntityDraft | undefined {
  const uid = service.metadata?.uid;
  if (!uid) return undefined;
  const namespace = service.metadata?.namespace ?? 'default';
  return {
    type: 'kubernetes.service',
    id: uid,
    name: `${namespace}/${service.metadata?.name ?? uid}`,
    state: 'ACTIVE',
    attributes: {
      clusterIP: service.spec?.clusterIP,
      namespace,
      serviceType: service.spec?.type,
    },
  };
}

export function kubeRecordDraft(r: KubeRecord): EntityDraft | undefined {
  switch (r.kind) {
    case 'node':
      return nodeDraft(r.object);
    case 'pod':
      return podDraft(r.object);
    case 'service':
      return serviceDraft(r.object);
    default:
      return unreachable(r, 'Kubernetes record kind');
  }
}

export interface KubernetesOptions extends KubeAccessOptions {
  types: KubernetesType[];
  pageSize: number;
  /** ms */
  timeoutMs: number;
  /** s */
  watchSeconds: number;
  backoff: { initialMs: number; maxMs: number };
}

/** The collection of each entity type, its objects tagged so that one mapping reads them all. */
function resourceOf(client: () => Promise<KubeClient>, type: KubernetesType, o: KubernetesOptions): ListWatchResource<KubeRecord> {
  const common = { types: [type], pageSize: o.pageSize, watchSeconds: o.watchSeconds };
  switch (type) {
    case 'kubernetes.node':
      return kubeResource(client, { ...common, path: '/api/v1/nodes', list: (core, q, opt) => core.listNode(q, opt), record: (object: V1Node) => ({ kind: 'node', object }) });
    case 'kubernetes.pod':
      return kubeResource(client, { ...common, path: '/api/v1/pods', list: (core, q, opt) => core.listPodForAllNamespaces(q, opt), record: (object: V1Pod) => ({ kind: 'pod', object }) });
    case 'kubernetes.service':
      return kubeResource(client, { ...common, path: '/api/v1/services', list: (core, q, opt) => core.listServiceForAllNamespaces(q, opt), record: (object: V1Service) => ({ kind: 'service', object }) });
    default:
      return unreachable(type, 'Kubernetes entity type');
  }
}

export default defineSource<KubernetesOptions, KubeRecord>({
  options: (read) => {
    const types = read.stringList('types', ['kubernetes.node', 'kubernetes.pod']);
    types.forEach((t, i) => {
      if (!(KUBERNETES_TYPES as readonly string[]).includes(t)) read.fail(`types[${i}]`, `expected one of ${KUBERNETES_TYPES.join(', ')}, got ${JSON.stringify(t)}`);
    });
    const watchSeconds = Math.round(read.duration('watchTimeout', 300_000) / 1000);
    if (watchSeconds < 1) read.fail('watchTimeout', 'must be at least 1s');
    const timeoutMs = read.duration('timeout', 60_000);
    if (timeoutMs <= 0) read.fail('timeout', 'must be more than 0');
    return {
      ...readKubeAccessOptions(read),
      types: [...new Set(types)] as KubernetesType[],
      pageSize: read.number('pageSize', 500, { min: 1, integer: true }),
      timeoutMs,
      watchSeconds,
      backoff: { initialMs: read.duration('backoff', 1000), maxMs: read.duration('maxBackoff', 60_000) },
    };
  },

  create: (options, { name, scheduler, configDir }) => {
    checkKubeAccess(options, configDir);
    const client = kubeClient(options, configDir);
    return {
      name,
      types: options.types,
      signal$: listWatch(
        options.types.map((type) => resourceOf(client, type, options)),
        // A watch the server should have ended (timeoutSeconds) and has not: presumed dead a minute later.
        { source: name, timeoutMs: options.timeoutMs, idleMs: options.watchSeconds * 1000 + 60_000, backoff: options.backoff, scheduler },
      ),
      map: kubeRecordDraft,
    };
  },
});
