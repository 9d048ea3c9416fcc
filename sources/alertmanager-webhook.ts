import { entityKey } from '../src/model.js';
import { type PushOptions, PushRefusal, pushReceiver$, readPushOptions } from '../src/push.js';
import { defineSource } from '../src/source.js';
import { ALERTMANAGER_TYPES, type Alert, type AlertMappingOptions, alertDraft, isObject, readAlertMappingOptions, stringMap } from './alertmanager.js';

/**
 * `use: alertmanager.webhook` — Alertmanager's webhook receiver (payload version 4), pushed.
 *
 * | POST body (`webhook_configs`)       | change                                                    |
 * |-------------------------------------|-----------------------------------------------------------|
 * | `alerts[]` with `status: firing`    | upsert `alertmanager.alert` id `fingerprint`, as `use: alertmanager` maps it |
 * | `alerts[]` with `status: resolved`  | delete `alertmanager.alert` id `fingerprint`              |
 *
 * Alertmanager sends only active alerts (not silenced or inhibited), so a firing alert is the poll
 * source's `status.state: active` with no silences: the same entity, the same hash, and a webhook
 * and a poll of one alert make one event. The poll source (same mapping keys) is the safety net
 * for a webhook that was lost.
 */
export interface AlertmanagerWebhookOptions extends PushOptions, AlertMappingOptions {}

/** One alert of a version-4 webhook body, as this source reads it. */
export interface WebhookAlert {
  status: 'firing' | 'resolved';
  alert: Alert;
}

/**
 * The alerts of a webhook body, checked: anything else throws PushRefusal naming the field
 * (`alerts[1].fingerprint: expected a non-empty string`).
 */
export function parseWebhook(doc: unknown, where = ''): WebhookAlert[] {
  const at = (field: string): string => (where ? `${where}: ${field}` : field);
  if (!isObject(doc)) throw new PushRefusal(at(''), 'expected an Alertmanager webhook body (a JSON object with "alerts")');
  if (doc.version !== '4') throw new PushRefusal(at('version'), `expected "4" (Alertmanager's webhook payload), got ${JSON.stringify(doc.version)}`);
  if (!Array.isArray(doc.alerts)) throw new PushRefusal(at('alerts'), 'expected a list of alerts');
  return doc.alerts.map((a: unknown, i): WebhookAlert => {
    const field = (name: string): string => at(`alerts[${i}]${name ? `.${name}` : ''}`);
    if (!isObject(a)) throw new PushRefusal(field(''), 'expected an alert object');
    const { status, fingerprint, labels, annotations, startsAt } = a;
    if (status !== 'firing' && status !== 'resolved') throw new PushRefusal(field('status'), `expected firing or resolved, got ${JSON.stringify(status)}`);
    if (typeof fingerprint !== 'string' || fingerprint === '') throw new PushRefusal(field('fingerprint'), `expected a non-empty string, got ${JSON.stringify(fingerprint)}`);
    if (!stringMap(labels)) throw new PushRefusal(field('labels'), 'expected a mapping of strings');
    if (annotations !== undefined && !stringMap(annotations)) throw new PushRefusal(field('annotations'), 'expected a mapping of strings');
    if (typeof startsAt !== 'string' || Number.isNaN(Date.parse(startsAt))) throw new PushRefusal(field('startsAt'), `expected a date-time, got ${JSON.stringify(startsAt)}`);
    return {
      status,
      alert: {
        fingerprint,
        labels,
        annotations: annotations ?? {},
        startsAt: new Date(startsAt).toISOString(),
        // What GET /api/v2/alerts says of an alert Alertmanager notifies about.
        status: { state: 'active', silencedBy: [], inhibitedBy: [] },
      },
    };
  });
}

export default defineSource({
  options: (read): AlertmanagerWebhookOptions => ({ ...readPushOptions(read, '/alertmanager'), ...readAlertMappingOptions(read) }),

  create(options, { name, log, scheduler }) {
    return {
      name,
      types: ALERTMANAGER_TYPES,
      signal$: pushReceiver$<WebhookAlert>(options, { name, log, scheduler }, (doc, where) =>
        parseWebhook(doc, where).map((w) => ({
          action: w.status === 'firing' ? 'upsert' : 'delete',
          record: w,
          key: entityKey('alertmanager.alert', w.alert.fingerprint),
        })),
      ),
      map: (w: WebhookAlert) => alertDraft(w.alert, options),
    };
  },
});
