import { type AttachRule, attachRefs, readAttachRules } from '../src/attach.js';
import { type HttpClient, type RestPollOptions, type Selected, readRestPollOptions, restPollClient, restPollSnapshots } from '../src/http.js';
import { type EntityDraft, ref } from '../src/model.js';
import { defineSource } from '../src/source.js';
import { isObject } from './alertmanager.js';

/**
 * `use: zabbix` — Zabbix 6.0's JSON-RPC API (`api_jsonrpc.php`), one complete snapshot per poll.
 *
 * | request (JSON-RPC)                                   | entity                                                                 |
 * |------------------------------------------------------|------------------------------------------------------------------------|
 * | `host.get`                                           | `zabbix.host` id `<host>` (technical name), state MONITORED/MAINTENANCE/UNMONITORED; parents from `attach` |
 * | `problem.get` (+ `trigger.get` of their triggers, for the hosts) | `zabbix.problem` id `<eventid>`, state the severity (HIGH, DISASTER, …); parents its trigger's `zabbix.host`s |
 *
 * Acknowledgements are kept (`acknowledged`, `acknowledges`): acknowledging a problem is an update.
 * A resolved problem leaves `problem.get`'s answer: a delete. Zabbix sends every scalar as a
 * string ("4", "1796007401") and its errors as HTTP 200 with an `error` member: both are read
 * here. Auth: an API token (`token`), or `username` + `password` through `user.login` (the session
 * is renewed when Zabbix no longer knows it).
 */
export interface ZabbixOptions extends Omit<RestPollOptions, 'username' | 'password'> {
  token?: string;
  login?: { username: string; password: string };
  attach: AttachRule[];
}

export const ZABBIX_TYPES = ['zabbix.host', 'zabbix.problem'] as const;

/** Trigger severities, by Zabbix's number. */
export const ZABBIX_SEVERITIES = ['NOT_CLASSIFIED', 'INFORMATION', 'WARNING', 'AVERAGE', 'HIGH', 'DISASTER'] as const;

export interface ZabbixHost {
  kind: 'host';
  hostid: string;
  host: string;
  name: string;
  status: string;
  maintenance: boolean;
  groups: string[];
  tags: { tag: string; value: string }[];
}

export interface ZabbixProblem {
  kind: 'problem';
  eventid: string;
  triggerid: string;
  name: string;
  severity: string;
  clock: string;
  acknowledged: boolean;
  acknowledges: { clock: string; message: string; action: string; userid: string }[];
  suppressed: boolean;
  tags: { tag: string; value: string }[];
  /** Technical names of the hosts of its trigger (problem.get gives none). */
  hosts: string[];
}

export type ZabbixRecord = ZabbixHost | ZabbixProblem;

/** A JSON-RPC error (Zabbix answers them with HTTP 200). */
export class ZabbixError extends Error {
  constructor(
    message: string,
    readonly code: number | undefined,
  ) {
    super(message);
    this.name = 'ZabbixError';
  }
}

function str(v: unknown, where: string, field: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw new Error(`${where}: ${field}: expected a string, got ${JSON.stringify(v)?.slice(0, 80)}`);
}

function time(v: unknown, where: string, field: string): string {
  const s = str(v, where, field);
  if (!/^\d+$/.test(s)) throw new Error(`${where}: ${field}: expected Unix seconds, got ${JSON.stringify(s)}`);
  return new Date(Number(s) * 1000).toISOString();
}

function tags(v: unknown, where: string, field: string): { tag: string; value: string }[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new Error(`${where}: ${field}: expected a list of tags`);
  // A set: sorted, so the hash does not follow Zabbix's order.
  return v
    .map((t: unknown, i) => {
      if (!isObject(t)) throw new Error(`${where}: ${field}[${i}]: expected {tag, value}`);
      return { tag: str(t.tag, where, `${field}[${i}].tag`), value: str(t.value ?? '', where, `${field}[${i}].value`) };
    })
    .sort((a, b) => (a.tag === b.tag ? (a.value < b.value ? -1 : a.value > b.value ? 1 : 0) : a.tag < b.tag ? -1 : 1));
}

function list(result: unknown, where: string): Record<string, unknown>[] {
  if (!Array.isArray(result)) throw new Error(`${where}: result: expected a list, got ${JSON.stringify(result)?.slice(0, 80)}`);
  return result.map((r: unknown, i) => {
    if (!isObject(r)) throw new Error(`${where}: result[${i}]: expected an object`);
    return r;
  });
}

/** The hosts of a `host.get` result. */
export function parseHosts(result: unknown, where: string): ZabbixHost[] {
  return list(result, where).map((h, i) => parseHost(h, i, where));
}

/** `result[i]` of `host.get`, checked; read one by one as the answer streams in. */
export function parseHost(h: unknown, i: number, where: string): ZabbixHost {
  if (!isObject(h)) throw new Error(`${where}: result[${i}]: expected an object`);
  const f = (k: string): string => `result[${i}].${k}`;
  const groups = Array.isArray(h.groups) ? h.groups.map((g: unknown, j) => str(isObject(g) ? g.name : g, where, `${f('groups')}[${j}].name`)).sort() : [];
  return {
    kind: 'host',
    hostid: str(h.hostid, where, f('hostid')),
    host: str(h.host, where, f('host')),
    name: str(h.name ?? h.host, where, f('name')),
    status: str(h.status, where, f('status')),
    maintenance: str(h.maintenance_status ?? '0', where, f('maintenance_status')) === '1',
    groups,
    tags: tags(h.tags, where, f('tags')),
  };
}

/** The problems of a `problem.get` result, with the hosts of each one's trigger. */
export function parseProblems(result: unknown, where: string, hostsOfTrigger: ReadonlyMap<string, string[]>): ZabbixProblem[] {
  return list(result, where).map((p, i): ZabbixProblem => {
    const f = (k: string): string => `result[${i}].${k}`;
    const severity = Number(str(p.severity, where, f('severity')));
    if (!Number.isInteger(severity) || severity < 0 || severity >= ZABBIX_SEVERITIES.length) throw new Error(`${where}: ${f('severity')}: expected 0 to 5, got ${JSON.stringify(p.severity)}`);
    const triggerid = str(p.objectid, where, f('objectid'));
    const acknowledges = Array.isArray(p.acknowledges)
      ? p.acknowledges.map((a: unknown, j) => {
          const af = `${f('acknowledges')}[${j}]`;
          if (!isObject(a)) throw new Error(`${where}: ${af}: expected an object`);
          return { clock: time(a.clock, where, `${af}.clock`), message: str(a.message ?? '', where, `${af}.message`), action: str(a.action, where, `${af}.action`), userid: str(a.userid, where, `${af}.userid`) };
        })
      : [];
    return {
      kind: 'problem',
      eventid: str(p.eventid, where, f('eventid')),
      triggerid,
      name: str(p.name, where, f('name')),
      severity: ZABBIX_SEVERITIES[severity]!,
      clock: time(p.clock, where, f('clock')),
      acknowledged: str(p.acknowledged, where, f('acknowledged')) === '1',
      acknowledges,
      suppressed: str(p.suppressed ?? '0', where, f('suppressed')) === '1',
      tags: tags(p.tags, where, f('tags')),
      hosts: [...(hostsOfTrigger.get(triggerid) ?? [])].sort(),
    };
  });
}

/** triggerid → technical names of its hosts, from a `trigger.get` result with `selectHosts`. */
export function parseTriggerHosts(result: unknown, where: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  list(result, where).forEach((t, i) => {
    const hosts = Array.isArray(t.hosts) ? t.hosts : [];
    out.set(
      str(t.triggerid, where, `result[${i}].triggerid`),
      hosts.map((h: unknown, j) => str(isObject(h) ? h.host : h, where, `result[${i}].hosts[${j}].host`)),
    );
  });
  return out;
}

export function zabbixDraft(record: ZabbixRecord, attach: readonly AttachRule[] = []): EntityDraft {
  if (record.kind === 'host') {
    return {
      type: 'zabbix.host',
      id: record.host,
      name: record.name,
      state: record.status !== '0' ? 'UNMONITORED' : record.maintenance ? 'MAINTENANCE' : 'MONITORED',
      parents: attachRefs(attach, () => record.host),
      attributes: { hostid: record.hostid, groups: record.groups, tags: record.tags },
      raw: record,
    };
  }
  return {
    type: 'zabbix.problem',
    id: record.eventid,
    name: record.name,
    state: record.severity,
    parents: record.hosts.map((h) => ref('zabbix.host', h)),
    attributes: {
      severity: record.severity,
      triggerid: record.triggerid,
      since: record.clock,
      acknowledged: record.acknowledged,
      acknowledges: record.acknowledges,
      suppressed: record.suppressed,
      tags: record.tags,
    },
    raw: record,
  };
}

/** Session errors after which a new user.login helps. */
const SESSION_GONE = /re-login|not authori[sz]ed|session terminated/i;

/**
 * A JSON-RPC client of one Zabbix API: calls with the token or a session it logs in for. With
 * `each`, a list result is streamed: each item is handed to it as it arrives (with its index) and
 * the call resolves with what it returned, so the answer's text is never held whole.
 */
export function zabbixRpc(
  http: HttpClient,
  options: Pick<ZabbixOptions, 'token' | 'login'>,
  name: string,
): (method: string, params: Record<string, unknown>, signal?: AbortSignal, each?: (item: unknown, i: number) => unknown) => Promise<unknown> {
  // One login for the calls of a poll that run together.
  let session: Promise<string> | undefined;
  let id = 0;
  const call = async (method: string, params: Record<string, unknown>, auth: string | undefined, signal?: AbortSignal, each?: (item: unknown, i: number) => unknown): Promise<unknown> => {
    id += 1;
    const where = `${name}: ${method} at ${http.urlOf({ url: 'api_jsonrpc.php' })}`;
    const request = { method: 'POST', url: 'api_jsonrpc.php', body: { jsonrpc: '2.0', method, params, id, ...(auth !== undefined ? { auth } : {}) }, headers: { 'content-type': 'application/json-rpc' }, ...(signal ? { signal } : {}) } as const;
    let doc: unknown;
    let items: unknown[] | undefined;
    if (each === undefined) {
      doc = (await http.request<unknown>(request)).data;
    } else {
      const { data } = await http.request<Selected<unknown>>({ ...request, select: { select: 'result[*]', each: (item, [i]) => each(item, i as number) } });
      doc = data.rest;
      items = data.records;
    }
    if (!isObject(doc)) throw new ZabbixError(`${where}: expected a JSON-RPC answer, got ${JSON.stringify(doc)?.slice(0, 120)}`, undefined);
    if (isObject(doc.error)) {
      const e = doc.error;
      throw new ZabbixError(`${where}: error ${String(e.code)}: ${String(e.message)} ${String(e.data ?? '')}`.trim(), typeof e.code === 'number' ? e.code : undefined);
    }
    if (!('result' in doc)) throw new ZabbixError(`${where}: the answer has neither result nor error`, undefined);
    // A streamed list was taken item by item; anything else is still in the document.
    return items !== undefined && Array.isArray(doc.result) ? items : doc.result;
  };
  return async (method, params, signal, each) => {
    if (options.token !== undefined) return call(method, params, options.token, signal, each);
    const login = options.login!;
    for (let attempt = 0; ; attempt++) {
      const current = (session ??= call('user.login', { username: login.username, password: login.password }, undefined, signal).then((r) => str(r, name, 'user.login result')));
      current.catch(() => {
        if (session === current) session = undefined;
      });
      try {
        return await call(method, params, await current, signal, each);
      } catch (e) {
        if (attempt > 0 || !(e instanceof ZabbixError) || !SESSION_GONE.test(e.message)) throw e;
        if (session === current) session = undefined;
      }
    }
  };
}

export default defineSource({
  options: (read): ZabbixOptions => {
    const rest = readRestPollOptions(read, 'the frontend folder, http://zabbix.example/zabbix');
    const token = read.optionalString('token');
    const { username, password, ...timing } = rest;
    if (token !== undefined && username !== undefined) read.fail('token', 'give an API token or username and password, not both');
    if (token === undefined && username === undefined) read.fail('token', 'is required: an API token, or username and password (user.login)');
    return {
      ...timing,
      ...(token !== undefined ? { token } : {}),
      ...(username !== undefined && password !== undefined ? { login: { username, password } } : {}),
      attach: readAttachRules(read, 'attach', { label: 'forbidden' }),
    };
  },

  create(options, { name, scheduler, log }) {
    const http = restPollClient(options, { name, scheduler, log }, 4);
    const rpc = zabbixRpc(http, options, name);
    const where = (method: string): string => `${name}: ${method} at ${http.urlOf({ url: 'api_jsonrpc.php' })}`;
    return {
      name,
      types: ZABBIX_TYPES,
      signal$: restPollSnapshots<ZabbixRecord>(http, options, { name, scheduler, log, types: ZABBIX_TYPES }, async ({ signal }) => {
          // Streamed: hosts are checked as they arrive; problems are kept as sent until their
          // triggers' hosts are known.
          const [hosts, problems] = await Promise.all([
            rpc('host.get', { output: ['hostid', 'host', 'name', 'status', 'maintenance_status'], selectGroups: ['name'], selectTags: 'extend' }, signal, (h, i) => parseHost(h, i, where('host.get'))),
            rpc('problem.get', { output: 'extend', selectAcknowledges: 'extend', selectTags: 'extend', sortfield: ['eventid'] }, signal, (p) => p),
          ]);
          const triggerids = [...new Set(list(problems, where('problem.get')).map((p) => String(p.objectid)))];
          const triggers = triggerids.length === 0 ? new Map<string, string[]>() : parseTriggerHosts(await rpc('trigger.get', { triggerids, output: ['triggerid'], selectHosts: ['host'] }, signal), where('trigger.get'));
          // A streamed host list is ZabbixHosts already; parseHosts names anything else that came.
          const hostRecords = Array.isArray(hosts) ? (hosts as ZabbixHost[]) : parseHosts(hosts, where('host.get'));
          return [...hostRecords, ...parseProblems(problems, where('problem.get'), triggers)];
      }),
      map: (record: ZabbixRecord) => zabbixDraft(record, options.attach),
    };
  },
});
