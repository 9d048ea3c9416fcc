import { type AttachRule, attachRefs, readAttachRules } from '../src/attach.js';
import { type EntityDraft, entityKey } from '../src/model.js';
import { type PushOptions, PushRefusal, pushReceiver$, readPushOptions } from '../src/push.js';
import { defineSource } from '../src/source.js';
import { isObject, stringMap } from './alertmanager.js';

/**
 * `use: collectd` — collectd's notifications (the `threshold` plugin's FAILURE/WARNING/OKAY) as its
 * `write_http` plugin posts them (`Format "JSON"`, `Notifications true`, `Metrics false`).
 *
 * | POST body: `[{labels, annotations, startsAt}]`  | change                                                         |
 * |-------------------------------------------------|----------------------------------------------------------------|
 * | `labels.severity` FAILURE or WARNING            | upsert `collectd.alarm`, state FAILURE/WARNING, parents from `attach` |
 * | `labels.severity` OKAY                          | delete the `collectd.alarm` its other labels name              |
 *
 * Id: `<instance>/<alertname without collectd_>` then the other labels (`exec=demo,type=value`),
 * everything but `severity`: collectd posts no `endsAt` and no id, so an OKAY finds the alarm it
 * clears by those labels. An OKAY for an alarm never raised (collectd sends one at start) deletes
 * nothing and makes no event.
 */
export interface CollectdOptions extends PushOptions {
  attach: AttachRule[];
}

export const COLLECTD_TYPES = ['collectd.alarm'] as const;

/** One notification of a write_http post. */
export interface CollectdNotification {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  severity: 'FAILURE' | 'WARNING' | 'OKAY';
}

const SEVERITIES = ['FAILURE', 'WARNING', 'OKAY'] as const;
const NOT_IN_ID = new Set(['severity', 'alertname', 'instance', 'service']);

/** The alarm's id: what stays the same from its FAILURE to its OKAY. */
export function collectdAlarmId(labels: Record<string, string>): string {
  const what = (labels.alertname ?? '').replace(/^collectd_/, '');
  const rest = Object.keys(labels)
    .filter((k) => !NOT_IN_ID.has(k))
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
  return `${labels.instance ?? ''}/${what}${rest ? `/${rest}` : ''}`;
}

/** The notifications of one post, checked: anything else throws PushRefusal naming the field. */
export function parseCollectdPost(doc: unknown, where = ''): CollectdNotification[] {
  const at = (field: string): string => (where ? `${where}: ${field}` : field);
  const list = Array.isArray(doc) ? doc : [doc];
  return list.map((n: unknown, i): CollectdNotification => {
    const field = (name: string): string => at(`[${i}]${name ? `.${name}` : ''}`);
    if (!isObject(n)) throw new PushRefusal(field(''), 'expected a collectd notification object (write_http Format "JSON")');
    const { labels, annotations, startsAt } = n;
    if (!stringMap(labels)) throw new PushRefusal(field('labels'), 'expected a mapping of strings');
    const severity = labels.severity;
    if (!SEVERITIES.includes(severity as CollectdNotification['severity'])) throw new PushRefusal(field('labels.severity'), `expected FAILURE, WARNING or OKAY, got ${JSON.stringify(severity)}`);
    if (typeof labels.instance !== 'string' || labels.instance === '') throw new PushRefusal(field('labels.instance'), 'expected the host name');
    if (typeof labels.alertname !== 'string' || labels.alertname === '') throw new PushRefusal(field('labels.alertname'), 'expected collectd_<plugin>_<type>');
    if (annotations !== undefined && !stringMap(annotations)) throw new PushRefusal(field('annotations'), 'expected a mapping of strings');
    if (typeof startsAt !== 'string' || Number.isNaN(Date.parse(startsAt))) throw new PushRefusal(field('startsAt'), `expected a date-time, got ${JSON.stringify(startsAt)}`);
    return { labels, annotations: annotations ?? {}, startsAt: new Date(startsAt).toISOString(), severity: severity as CollectdNotification['severity'] };
  });
}

/** A FAILURE or WARNING → its alarm. */
export function collectdDraft(n: CollectdNotification, attach: readonly AttachRule[] = []): EntityDraft {
  const { severity: _severity, ...labels } = n.labels;
  const a = n.annotations;
  const attributes: Record<string, unknown> = { host: n.labels.instance, labels, since: n.startsAt };
  if (a.summary !== undefined) attributes.message = a.summary;
  if (a.DataSource !== undefined) attributes.dataSource = a.DataSource;
  if (a.CurrentValue !== undefined) attributes.currentValue = a.CurrentValue;
  for (const k of ['WarningMin', 'WarningMax', 'FailureMin', 'FailureMax']) {
    // collectd writes an unset bound as "nan".
    if (a[k] !== undefined && a[k] !== 'nan') attributes[k[0]!.toLowerCase() + k.slice(1)] = a[k];
  }
  return {
    type: 'collectd.alarm',
    id: collectdAlarmId(n.labels),
    name: n.labels.alertname,
    state: n.severity,
    parents: attachRefs(attach, (label) => (label === undefined ? undefined : n.labels[label])),
    attributes,
    raw: n,
  };
}

export default defineSource({
  options: (read): CollectdOptions => ({ ...readPushOptions(read, '/collectd'), attach: readAttachRules(read, 'attach', { label: 'required' }) }),

  create(options, { name, log, scheduler }) {
    return {
      name,
      types: COLLECTD_TYPES,
      signal$: pushReceiver$<CollectdNotification>(options, { name, log, scheduler }, (doc, where) =>
        parseCollectdPost(doc, where).map((n) => ({
          action: n.severity === 'OKAY' ? 'delete' : 'upsert',
          record: n,
          key: entityKey('collectd.alarm', collectdAlarmId(n.labels)),
        })),
      ),
      map: (n: CollectdNotification) => collectdDraft(n, options.attach),
    };
  },
});
