/**
 * Scopes: several clouds or regions in one synchronizer (DESIGN.md, "Scopes"). A source may name
 * its `scope`; then
 *
 * - its entities carry `scope`, and the ids of the types below — unique only within one cloud —
 *   are qualified by it: `nova.host:compute-01` becomes `nova.host:region-a/compute-01` (id
 *   `region-a/compute-01`), and so does every reference to such an entity that the source writes,
 *   so an instance of region-a points at region-a's compute-01 (refs resolve within the scope);
 * - its snapshots are complete only for their types within that scope;
 * - ownership of a type's snapshots (rule 7) is per type and scope.
 *
 * UUIDs (instances, ports, volumes, stacks, alarms, load balancers, nodes, pods…) are left as they
 * are: they are unique across clouds, and a notification source of the same scope meets them.
 * A source without `scope` writes exactly what it always wrote.
 */
import type { EntityType } from './model.js';

/**
 * The built-in entity types whose ids are unique only within one cloud or deployment, so a scope
 * qualifies them; docs/scopes.md lists the same (a unit test keeps the two equal). A plugin adds
 * its own with `Source.localTypes`.
 */
export const LOCAL_TYPES: readonly EntityType[] = [
  'nova.host', // compute service host names: compute-01 in every region
  'nova.zone', // availability zone names: nova everywhere
  'nagios.host', // Nagios host names
  'nagios.service', // <host>/<service>
  'alertmanager.alert', // fingerprints of the labels: equal labels, equal fingerprint
  'prometheus.alert', // <alertname>{labels}
  'prometheus.target', // <scrapePool>/<instance>
  'zabbix.host', // technical host names
  'zabbix.problem', // event ids, numbered per Zabbix server
  'collectd.alarm', // host/plugin/type names
  'kubernetes.node', // node names
];

/** What a scope may be called: it becomes part of keys, so no `/` or `:`. */
const SCOPE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Why `name` cannot be a scope, or undefined when it can. */
export function scopeNameProblem(name: string): string | undefined {
  return SCOPE_NAME.test(name) ? undefined : `a scope is 1 to 63 letters, digits, '.', '_' or '-' (it becomes part of keys), got ${JSON.stringify(name)}`;
}

/** The id of an entity of a local type in `scope`: `<scope>/<id>`. */
export function qualifiedId(scope: string, id: string): string {
  return `${scope}/${id}`;
}

/**
 * How the baseline names "this type within this scope" (syncedAt, ownership): the type alone
 * without a scope, so an unscoped baseline and its store are as they always were.
 */
export function scopedType(type: EntityType, scope: string | undefined): string {
  return scope === undefined ? type : `${scope}/${type}`;
}

/** What normalizeEntity needs to qualify a scoped source's entities. */
export interface EntityScope {
  name: string;
  /** Is this type's id unique only within a scope? */
  isLocal: (type: EntityType) => boolean;
}

/** The scope of a source, with the built-in local types and `extra` ones (plugins'). */
export function entityScope(name: string, extra: readonly EntityType[] = []): EntityScope {
  const local = new Set([...LOCAL_TYPES, ...extra]);
  return { name, isLocal: (type) => local.has(type) };
}
