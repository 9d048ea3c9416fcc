import { fetchAllPages } from '../../src/http.js';
import { type PickShape, pickBy } from '../../src/pick.js';
import { type EntityDraft, type EntityRef, ref } from '../../src/model.js';
import { defineSource } from '../../src/source.js';
import { type OpenStackPollOptions, openstackSource, readOpenStackPollOptions } from './poller.js';
import { present } from './fields.js';

/**
 * `use: openstack.aodh` — OpenStack's own alarms, from Aodh's API:
 *
 * | entity       | request                                                          | id         | state                               | parents                    |
 * | ------------ | ---------------------------------------------------------------- | ---------- | ----------------------------------- | -------------------------- |
 * | `aodh.alarm` | GET /v2/alarms?q.field=all_projects&q.value=true (limit/marker)  | `alarm_id` | `state` (OK, ALARM, INSUFFICIENT DATA) | the resource of its rule |
 *
 * {@link alarmDraft} is the one definition of an aodh.alarm: the API record goes through
 * {@link apiAlarmFacts}, an `alarm.creation` notification's `detail` (the whole alarm, with its
 * rule under `rule` where the API says `<type>_rule`) through the notification source.
 * Actions are left out: the API shows `log://` as `log:`, so the two would never agree.
 *
 * The alarm attaches to the resource its rule names, as Vitrage did with `resource_id`:
 * a `gnocchi_resources_threshold` rule's `resource_id` and `resource_type`, or an event or
 * threshold rule's query on `traits.instance_id` / `traits.resource_id` / `resource_id`, typed by
 * the event type it watches ({@link RESOURCE_TYPES}).
 */
export interface AlarmFacts {
  id: string;
  name?: string | null | undefined;
  /** ok, alarm, insufficient data (upper-cased by the pipeline). */
  state?: string | null | undefined;
  stateReason?: string | null | undefined;
  project?: string | null | undefined;
  /** event, threshold, gnocchi_resources_threshold, composite, … */
  type?: string | null | undefined;
  severity?: string | null | undefined;
  enabled?: boolean | null | undefined;
  description?: string | null | undefined;
  /** The alarm's rule (`<type>_rule` in the API, `rule` in notifications). */
  rule?: AlarmRule | null | undefined;
}

export interface AlarmRule {
  event_type?: string | null;
  resource_id?: string | null;
  resource_type?: string | null;
  query?: { field?: string | null; op?: string | null; value?: unknown }[] | string | null;
}

/** The fields of an alarm record (GET /v2/alarms) this source reads; the rule is `<type>_rule`. */
export interface ApiAlarm {
  alarm_id: string;
  name?: string | null;
  state?: string | null;
  state_reason?: string | null;
  project_id?: string | null;
  type?: string | null;
  severity?: string | null;
  enabled?: boolean | null;
  description?: string | null;
  [rule: `${string}_rule`]: AlarmRule | null | undefined;
}

/** The entity type of what an alarm watches, by Gnocchi resource type or event type prefix. */
export const RESOURCE_TYPES: readonly (readonly [prefix: string, type: string])[] = [
  ['instance', 'nova.instance'],
  ['compute.instance', 'nova.instance'],
  ['volume', 'cinder.volume'],
  ['port', 'neutron.port'],
  ['network', 'neutron.network'],
  ['orchestration.stack', 'heat.stack'],
  ['baremetal.node', 'ironic.node'],
  ['octavia.loadbalancer', 'octavia.loadbalancer'],
];

function typeOf(name: string | null | undefined): string | undefined {
  if (!name) return undefined;
  return RESOURCE_TYPES.find(([prefix]) => name === prefix || name.startsWith(`${prefix}.`))?.[1];
}

const RESOURCE_FIELDS = ['traits.resource_id', 'traits.instance_id', 'resource_id', 'resource'];

/** The resource an alarm's rule watches, when it names one of a known type. */
export function ruleResource(rule: AlarmRule | null | undefined): EntityRef | undefined {
  if (!rule) return undefined;
  const resourceId = present(rule.resource_id);
  if (resourceId) {
    const type = typeOf(rule.resource_type);
    return type ? ref(type, resourceId) : undefined;
  }
  const query = Array.isArray(rule.query) ? rule.query : [];
  const hit = query.find((q) => q && RESOURCE_FIELDS.includes(q.field ?? '') && (q.op ?? 'eq') === 'eq' && typeof q.value === 'string' && q.value !== '');
  if (!hit) return undefined;
  const type = hit.field === 'traits.instance_id' ? 'nova.instance' : typeOf(rule.event_type);
  return type ? ref(type, hit.value as string) : undefined;
}

/**
 * The rule types of Aodh's `aodh.alarm.rule` entry points (2025.2), whose rules are `<type>_rule`:
 * a shape names its fields, so the rule of a type not listed here is not kept.
 */
const RULE_TYPES = [
  'threshold',
  'gnocchi_resources_threshold',
  'gnocchi_aggregation_by_metrics_threshold',
  'gnocchi_aggregation_by_resources_threshold',
  'event',
  'composite',
  'loadbalancer_member_health',
  'prometheus',
] as const;

/** What {@link apiAlarmFacts} reads of an alarm record (fetchAllPages' `pick`; `alarm_id` is the pages' marker). */
export const ALARM_PICK: PickShape = {
  alarm_id: true,
  name: true,
  state: true,
  state_reason: true,
  project_id: true,
  type: true,
  severity: true,
  enabled: true,
  description: true,
  ...Object.fromEntries(RULE_TYPES.map((type) => [`${type}_rule`, true])),
};

/** {@link ALARM_PICK} as a function. */
export const pickAlarm = pickBy<ApiAlarm>(ALARM_PICK);

/** The facts of an API alarm record. */
export function apiAlarmFacts(a: ApiAlarm): AlarmFacts {
  return {
    id: a.alarm_id,
    name: a.name,
    state: a.state,
    stateReason: a.state_reason,
    project: a.project_id,
    type: a.type,
    severity: a.severity,
    enabled: a.enabled,
    description: a.description,
    rule: a.type ? a[`${a.type}_rule`] : undefined,
  };
}

/** The aodh.alarm entity of an alarm's facts. */
export function alarmDraft(f: AlarmFacts): EntityDraft {
  const resource = ruleResource(f.rule);
  // Keys in sorted order: normalizeEntity then keeps the object as is.
  const attributes: Record<string, unknown> = {};
  const description = present(f.description);
  if (description) attributes.description = description;
  if (typeof f.enabled === 'boolean') attributes.enabled = f.enabled;
  if (resource) attributes.resource_id = resource.id;
  const severity = present(f.severity);
  if (severity) attributes.severity = severity;
  const reason = present(f.stateReason);
  if (reason) attributes.state_reason = reason;
  const type = present(f.type);
  if (type) attributes.type = type;
  return {
    type: 'aodh.alarm',
    id: f.id,
    name: present(f.name),
    state: present(f.state),
    project: present(f.project),
    parents: resource ? [resource] : [],
    attributes,
  };
}

/** The alarm's fields (as a notification's `detail` names them) → the attribute each one makes. */
const DETAIL_ATTRIBUTES: Readonly<Record<string, string>> = {
  description: 'description',
  enabled: 'enabled',
  rule: 'resource_id',
  severity: 'severity',
  state_reason: 'state_reason',
  type: 'type',
};

/**
 * The patch of an `alarm.state_transition` or `alarm.rule_change`, whose `detail` holds only the
 * fields that changed (`{state, state_reason}`, or e.g. `{description, severity}`): the fields of
 * {@link alarmDraft} that those make, and nothing else, so the alarm the baseline holds keeps the
 * rest. An attribute a changed field no longer makes (a description emptied) is removed.
 */
export function alarmPatchDraft(f: AlarmFacts, changed: readonly string[]): EntityDraft {
  const whole = alarmDraft(f);
  const patch: EntityDraft = { type: 'aodh.alarm', id: f.id };
  const attributes: Record<string, unknown> = {};
  for (const field of changed) {
    // '' clears a name or project (normalizeEntity's toPatch), as a whole alarm without one has none.
    if (field === 'name') patch.name = whole.name ?? '';
    else if (field === 'state' && whole.state !== undefined) patch.state = whole.state;
    else if (field === 'project_id') patch.project = whole.project ?? '';
    if (field === 'rule') patch.parents = whole.parents ?? [];
    const attribute = DETAIL_ATTRIBUTES[field];
    if (attribute !== undefined) attributes[attribute] = whole.attributes?.[attribute];
  }
  if (Object.keys(attributes).length > 0) patch.attributes = attributes;
  return patch;
}

/** Aodh's default max page; asked for explicitly so that a full page means "ask for more". */
const AODH_PAGE = 1000;

export default defineSource<OpenStackPollOptions, ApiAlarm>({
  options: readOpenStackPollOptions,
  create: (options, context) =>
    openstackSource<ApiAlarm>(
      {
        serviceTypes: ['alarming'],
        types: ['aodh.alarm'],
        fetch: ({ http, signal }) =>
          fetchAllPages<ApiAlarm>(http, '/v2/alarms', {
            key: null,
            limit: AODH_PAGE,
            // Even admin sees only its own project's alarms without this query.
            params: { 'q.field': 'all_projects', 'q.op': 'eq', 'q.value': 'true', sort: 'alarm_id:asc' },
            markerOf: (r) => (r as ApiAlarm | null)?.alarm_id,
            pick: ALARM_PICK,
            signal,
          }),
        map: (a) => alarmDraft(apiAlarmFacts(a)),
      },
      options,
      context,
    ),
});
