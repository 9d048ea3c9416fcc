import { type AttachRule, attachRefs, readAttachRules } from '../src/attach.js';
import { type RestPollOptions, readRestPollOptions, restPollClient, restPollSnapshots } from '../src/http.js';
import { type EntityDraft, type EntityRef, ref } from '../src/model.js';
import { defineSource } from '../src/source.js';
import { isObject, stringMap } from './alertmanager.js';

/**
 * `use: prometheus` — Prometheus' own HTTP API, one complete snapshot of both types per poll.
 *
 * | request                          | entity                                                                         |
 * |----------------------------------|--------------------------------------------------------------------------------|
 * | `GET api/v1/alerts`              | `prometheus.alert` id `<alertname>{<other labels>}`, state PENDING or the severity (FIRING without one); parents: its target (job/instance) and `attach` |
 * | `GET api/v1/targets?state=active`| `prometheus.target` id `<scrapePool>/<instance>`, state UP/DOWN/UNKNOWN; parents from `attach` |
 *
 * Prometheus gives an alert no id: its label set is its identity. A resolved alert simply leaves
 * the list (a delete). Left out of the hash because they move without a change of state: an
 * alert's `value`, a target's `lastScrape` and `lastScrapeDuration`, and by default the `summary`
 * annotation, which rule templates usually fill with the value (`annotations` says which are kept).
 */
export interface PrometheusOptions extends RestPollOptions {
  severityLabel: string;
  annotations: string[];
  attach: AttachRule[];
}

export const PROMETHEUS_TYPES = ['prometheus.alert', 'prometheus.target'] as const;

export interface PrometheusAlert {
  kind: 'alert';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
}

export interface PrometheusTarget {
  kind: 'target';
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: string;
  lastError: string;
}

export type PrometheusRecord = PrometheusAlert | PrometheusTarget;

function fail(where: string, field: string, expected: string, got: unknown): never {
  throw new Error(`${where}: ${field}: expected ${expected}, got ${JSON.stringify(got)?.slice(0, 120)}`);
}

/** `{"status":"success","data":…}` → data; an error answer throws with Prometheus' own words. */
function dataOf(doc: unknown, where: string): Record<string, unknown> {
  if (!isObject(doc)) fail(where, 'body', 'a Prometheus API answer {status, data}', doc);
  if (doc.status !== 'success') throw new Error(`${where}: Prometheus answered ${JSON.stringify(doc.status)}: ${String(doc.errorType ?? '')} ${String(doc.error ?? '')}`.trim());
  if (!isObject(doc.data)) fail(where, 'data', 'a mapping', doc.data);
  return doc.data;
}

/** The alerts of `GET /api/v1/alerts`, checked field by field. */
export function parsePrometheusAlerts(doc: unknown, where: string): PrometheusAlert[] {
  return listOf(doc, 'alerts', where).map((a, i) => parsePrometheusAlert(a, i, where));
}

/** The active targets of `GET /api/v1/targets`, checked field by field. */
export function parsePrometheusTargets(doc: unknown, where: string): PrometheusTarget[] {
  return listOf(doc, 'activeTargets', where).map((t, i) => parsePrometheusTarget(t, i, where));
}

/** `data.<list>` of an answer, checked to be a list (of a streamed answer: the list left empty). */
function listOf(doc: unknown, list: 'alerts' | 'activeTargets', where: string): unknown[] {
  const data = dataOf(doc, where);
  if (!Array.isArray(data[list])) fail(where, `data.${list}`, 'a list', data[list]);
  return data[list] as unknown[];
}

/** `data.alerts[i]`, checked; read one by one as the answer streams in. */
export function parsePrometheusAlert(a: unknown, i: number, where: string): PrometheusAlert {
  const f = `data.alerts[${i}]`;
  if (!isObject(a)) return fail(where, f, 'an alert', a);
  if (!stringMap(a.labels) || typeof a.labels.alertname !== 'string') fail(where, `${f}.labels`, 'a mapping of strings with alertname', a.labels);
  if (a.annotations !== undefined && !stringMap(a.annotations)) fail(where, `${f}.annotations`, 'a mapping of strings', a.annotations);
  if (a.state !== 'pending' && a.state !== 'firing') fail(where, `${f}.state`, 'pending or firing', a.state);
  if (typeof a.activeAt !== 'string' || Number.isNaN(Date.parse(a.activeAt))) fail(where, `${f}.activeAt`, 'a date-time', a.activeAt);
  return {
    kind: 'alert',
    labels: a.labels as Record<string, string>,
    annotations: (a.annotations ?? {}) as Record<string, string>,
    state: a.state as PrometheusAlert['state'],
    // RFC 3339 with nanoseconds: Date keeps milliseconds, the same as Alertmanager's startsAt.
    activeAt: new Date(a.activeAt as string).toISOString(),
  };
}

/** `data.activeTargets[i]`, checked; read one by one as the answer streams in. */
export function parsePrometheusTarget(t: unknown, i: number, where: string): PrometheusTarget {
  const f = `data.activeTargets[${i}]`;
  if (!isObject(t)) return fail(where, f, 'a target', t);
  if (!stringMap(t.labels)) fail(where, `${f}.labels`, 'a mapping of strings', t.labels);
  for (const k of ['scrapePool', 'scrapeUrl', 'health'] as const) if (typeof t[k] !== 'string' || t[k] === '') fail(where, `${f}.${k}`, 'a non-empty string', t[k]);
  return {
    kind: 'target',
    labels: t.labels as Record<string, string>,
    scrapePool: t.scrapePool as string,
    scrapeUrl: t.scrapeUrl as string,
    health: t.health as string,
    lastError: typeof t.lastError === 'string' ? t.lastError : '',
  };
}

/** An alert's id: its name, then its other labels in Prometheus' own notation, sorted. */
export function prometheusAlertId(labels: Record<string, string>): string {
  const rest = Object.keys(labels)
    .filter((k) => k !== 'alertname')
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${labels.alertname ?? ''}{${rest.join(',')}}`;
}

/** A target's id: the pool it is scraped in and its instance label (its URL when it has none). */
export function prometheusTargetId(t: Pick<PrometheusTarget, 'scrapePool' | 'labels' | 'scrapeUrl'>): string {
  return `${t.scrapePool}/${t.labels.instance ?? t.scrapeUrl}`;
}

export function prometheusDraft(record: PrometheusRecord, options: Partial<Pick<PrometheusOptions, 'severityLabel' | 'annotations' | 'attach'>> = {}): EntityDraft {
  const { severityLabel = 'severity', annotations = ['description'], attach = [] } = options;
  const byLabel = (label: string | undefined): string | undefined => (label === undefined ? undefined : record.labels[label]);
  if (record.kind === 'target') {
    return {
      type: 'prometheus.target',
      id: prometheusTargetId(record),
      name: record.labels.instance ?? record.scrapeUrl,
      state: record.health === '' ? 'UNKNOWN' : record.health,
      parents: attachRefs(attach, byLabel),
      attributes: { scrapePool: record.scrapePool, scrapeUrl: record.scrapeUrl, labels: record.labels, ...(record.lastError ? { lastError: record.lastError } : {}) },
      raw: record,
    };
  }
  const severity = record.labels[severityLabel];
  const kept: Record<string, string> = {};
  for (const name of annotations) if (record.annotations[name] !== undefined) kept[name] = record.annotations[name];
  const { job, instance } = record.labels;
  const parents: EntityRef[] = job !== undefined && instance !== undefined ? [ref('prometheus.target', `${job}/${instance}`)] : [];
  for (const r of attachRefs(attach, byLabel)) parents.push(r);
  return {
    type: 'prometheus.alert',
    id: prometheusAlertId(record.labels),
    name: record.labels.alertname,
    state: record.state === 'pending' ? 'PENDING' : severity ? severity : 'FIRING',
    parents,
    attributes: { state: record.state, ...(severity !== undefined ? { severity } : {}), labels: record.labels, annotations: kept, activeAt: record.activeAt },
    raw: record,
  };
}

export default defineSource({
  options: (read): PrometheusOptions => ({
    ...readRestPollOptions(read, 'http://127.0.0.1:9090'),
    severityLabel: read.string('severityLabel', 'severity'),
    annotations: read.stringList('annotations', ['description']),
    attach: readAttachRules(read, 'attach', { label: 'required' }),
  }),

  create(options, { name, scheduler, log }) {
    const http = restPollClient(options, { name, scheduler, log }, 2);
    // Streamed: each alert or target is checked as it arrives; the envelope (status, the list's
    // kind) is checked on what is left once the body has ended.
    const get = async <R>(path: string, params: Record<string, string>, list: 'alerts' | 'activeTargets', parse: (element: unknown, i: number, where: string) => R, signal: AbortSignal): Promise<R[]> => {
      const where = `${name}: GET ${http.urlOf({ url: path, params })}`;
      const { records, rest } = await http.getEach(path, { params, select: `data.${list}[*]`, each: (e, [i]) => parse(e, i as number, where), signal });
      listOf(rest, list, where);
      return records;
    };
    return {
      name,
      types: PROMETHEUS_TYPES,
      signal$: restPollSnapshots<PrometheusRecord>(http, options, { name, scheduler, log, types: PROMETHEUS_TYPES }, async ({ signal }) => {
        const [alerts, targets] = await Promise.all([
          get('api/v1/alerts', {}, 'alerts', parsePrometheusAlert, signal),
          get('api/v1/targets', { state: 'active' }, 'activeTargets', parsePrometheusTarget, signal),
        ]);
        return [...alerts, ...targets];
      }),
      map: (record: PrometheusRecord) => prometheusDraft(record, options),
    };
  },
});
