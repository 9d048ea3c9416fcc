import { type AttachRule, attachRefs, readAttachRules } from '../src/attach.js';
import { type RestPollOptions, readRestPollOptions, restPollClient, restPollSnapshots } from '../src/http.js';
import type { EntityDraft } from '../src/model.js';
import type { OptionReader } from '../src/options.js';
import { defineSource } from '../src/source.js';

/**
 * `use: alertmanager` — the alerts Prometheus Alertmanager holds, one complete snapshot per poll.
 *
 * | request                                   | entity                                                      |
 * |-------------------------------------------|-------------------------------------------------------------|
 * | `GET api/v2/alerts` (+ `filter=` matchers) | `alertmanager.alert` per fingerprint; parents from `attach` |
 *
 * The list is streamed (`getEach`): each alert is checked as it arrives, the body is never held whole.
 * State: `SUPPRESSED` when silenced or inhibited, else the severity label upper-cased
 * (`CRITICAL`, `WARNING`, …), `FIRING` without one. A resolved alert leaves the list, so it is
 * missing from the next snapshot: a delete.
 */
export interface AlertmanagerOptions extends RestPollOptions, AlertMappingOptions {
  /** Label matchers (`severity=~"critical|warning"`) sent as `filter=`: the snapshot is complete for them. */
  filter: string[];
}

export const ALERTMANAGER_TYPES = ['alertmanager.alert'] as const;

/** One alert of `GET /api/v2/alerts` (gettableAlert), the fields this source reads. */
export interface Alert {
  fingerprint: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  status: { state: 'active' | 'suppressed' | 'unprocessed'; silencedBy: string[]; inhibitedBy: string[] };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function stringMap(v: unknown): v is Record<string, string> {
  return isObject(v) && Object.values(v).every((x) => typeof x === 'string');
}

function stringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/**
 * The alerts of a `GET /api/v2/alerts` answer, checked: anything that is not an Alertmanager v2
 * alert list throws, naming the URL, the alert's index and the field.
 */
export function parseAlerts(doc: unknown, where: string): Alert[] {
  if (!Array.isArray(doc)) throw new Error(`${where}: expected a list of alerts, got ${JSON.stringify(doc)?.slice(0, 120)}`);
  return doc.map((a: unknown, i) => parseAlert(a, i, where));
}

/** One alert of the list (the `i`th), checked as {@link parseAlerts} does: read as it streams in. */
export function parseAlert(a: unknown, i: number, where: string): Alert {
  const fail = (field: string, expected: string): never => {
    throw new Error(`${where}: [${i}].${field}: expected ${expected}, got ${JSON.stringify(isObject(a) ? field.split('.').reduce<unknown>((o, k) => (isObject(o) ? o[k] : undefined), a) : a)}`);
  };
  if (!isObject(a)) return fail('', 'an alert object');
  const { fingerprint, labels, annotations, startsAt, status } = a;
  if (typeof fingerprint !== 'string' || fingerprint === '') fail('fingerprint', 'a non-empty string');
  if (!stringMap(labels)) fail('labels', 'a mapping of strings');
  if (annotations !== undefined && !stringMap(annotations)) fail('annotations', 'a mapping of strings');
  if (typeof startsAt !== 'string' || Number.isNaN(Date.parse(startsAt))) fail('startsAt', 'a date-time');
  if (!isObject(status)) return fail('status', 'a mapping');
  if (status.state !== 'active' && status.state !== 'suppressed' && status.state !== 'unprocessed') fail('status.state', 'active, suppressed or unprocessed');
  if (!stringList(status.silencedBy)) fail('status.silencedBy', 'a list of silence ids');
  if (!stringList(status.inhibitedBy)) fail('status.inhibitedBy', 'a list of fingerprints');
  return {
    fingerprint: fingerprint as string,
    labels: labels as Record<string, string>,
    annotations: (annotations ?? {}) as Record<string, string>,
    startsAt: new Date(startsAt as string).toISOString(),
    status: status as Alert['status'],
  };
}

/** How an alert becomes an entity; the poll and the webhook source read the same keys, so they agree. */
export interface AlertMappingOptions {
  severityLabel?: string;
  /** Label whose value becomes Entity.project (e.g. `project_id`). */
  projectLabel?: string;
  /** Annotations kept as attributes. */
  annotations?: readonly string[];
  attach?: readonly AttachRule[];
}

/** Reads `severityLabel`, `projectLabel`, `annotations` and `attach`: the mapping keys of both alertmanager sources. */
export function readAlertMappingOptions(read: OptionReader): AlertMappingOptions {
  const projectLabel = read.optionalString('projectLabel');
  return {
    severityLabel: read.string('severityLabel', 'severity'),
    ...(projectLabel !== undefined ? { projectLabel } : {}),
    annotations: read.stringList('annotations', ['summary', 'description']),
    attach: readAttachRules(read, 'attach', { label: 'required' }),
  };
}

/** An alert → its entity. */
export function alertDraft(alert: Alert, options: AlertMappingOptions = {}): EntityDraft {
  const { severityLabel = 'severity', projectLabel, annotations = ['summary', 'description'], attach = [] } = options;
  const severity = alert.labels[severityLabel];
  const kept: Record<string, string> = {};
  for (const name of annotations) if (alert.annotations[name] !== undefined) kept[name] = alert.annotations[name];
  return {
    type: 'alertmanager.alert',
    id: alert.fingerprint,
    name: alert.labels.alertname,
    state: alert.status.state === 'suppressed' ? 'SUPPRESSED' : severity ? severity.toUpperCase() : 'FIRING',
    project: projectLabel ? alert.labels[projectLabel] : undefined,
    parents: attachRefs(attach, (label) => (label === undefined ? undefined : alert.labels[label])),
    // Not endsAt/updatedAt: Prometheus pushes them forward on every evaluation.
    attributes: {
      status: alert.status.state,
      ...(severity !== undefined ? { severity } : {}),
      // Sets: sorted so the hash does not depend on Alertmanager's order.
      silencedBy: [...alert.status.silencedBy].sort(),
      inhibitedBy: [...alert.status.inhibitedBy].sort(),
      labels: alert.labels,
      annotations: kept,
      startsAt: alert.startsAt,
    },
    raw: alert,
  };
}

export default defineSource({
  options: (read): AlertmanagerOptions => {
    const rest = readRestPollOptions(read, 'http://127.0.0.1:9093');
    return { ...rest, filter: read.stringList('filter', []), ...readAlertMappingOptions(read) };
  },

  create(options, { name, scheduler, log }) {
    const http = restPollClient(options, { name, scheduler, log }, 1);
    // filter= repeats, which QueryParams can't say: build the query by hand.
    const path = `api/v2/alerts${options.filter.length > 0 ? `?${options.filter.map((f) => `filter=${encodeURIComponent(f)}`).join('&')}` : ''}`;
    const mapping: AlertMappingOptions = { ...options };
    const where = `${name}: GET ${http.urlOf({ url: path })}`;
    return {
      name,
      types: ALERTMANAGER_TYPES,
      signal$: restPollSnapshots<Alert>(http, options, { name, scheduler, log, types: ALERTMANAGER_TYPES }, async ({ signal }) => {
        const { records, rest } = await http.getEach(path, { select: '[*]', each: (a, [i]) => parseAlert(a, i as number, where), signal });
        // Not a list: nothing was taken from it, and parseAlerts names what came instead.
        return Array.isArray(rest) ? records : parseAlerts(rest, where);
      }),
      map: (alert: Alert) => alertDraft(alert, mapping),
    };
  },
});
