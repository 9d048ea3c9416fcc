import { defer } from 'rxjs';
import { type AttachRule, attachRefs, readAttachRules } from '../src/attach.js';
import { type HttpClient, type RestPollOptions, readRestPollOptions, restPollClient, restPollSnapshots } from '../src/http.js';
import { type EntityDraft, ref } from '../src/model.js';
import { defineSource } from '../src/source.js';
import { type NagiosStatus, STATUSJSON_SELECT, checkStatusJson, parseStatusPage, statusJsonRecord } from './nagios/status.js';

/**
 * `use: nagios` — host and service states from Nagios Core 4's CGIs, one complete snapshot per poll.
 *
 * | cgi        | requests (relative to `url`)                                                     |
 * |------------|----------------------------------------------------------------------------------|
 * | statusjson | `statusjson.cgi?query=hostlist&details=true`, `…query=servicelist&details=true`  |
 * | status     | `status.cgi?hostgroup=all&style=hostdetail&limit=0`, `status.cgi?host=all&style=detail&limit=0` |
 *
 * statusjson's answers are streamed (`getEach`): each host or service is read as it arrives.
 * | record  | entity                                                                           |
 * |---------|----------------------------------------------------------------------------------|
 * | host    | `nagios.host` id `<host>`, state UP/DOWN/UNREACHABLE/PENDING, parents from `attach` |
 * | service | `nagios.service` id `<host>/<service>`, state OK/WARNING/CRITICAL/UNKNOWN/PENDING, parent its `nagios.host` |
 *
 * Hashed attributes are the ones that change only when the check's state does (docs/sources/nagios.md).
 */
export interface NagiosOptions extends RestPollOptions {
  /** `url`: the cgi-bin folder, e.g. `http://nagios.example/cgi-bin/nagios4`. */
  cgi: 'statusjson' | 'status';
  /** `stable`: the output as of the last state change; `latest`: every new text is an update; `none`. */
  output: 'stable' | 'latest' | 'none';
  attach: AttachRule[];
}

export const NAGIOS_TYPES = ['nagios.host', 'nagios.service'] as const;

/** The requests of one poll, per CGI: URL relative to the cgi-bin folder, and what it answers. */
const ENDPOINTS = {
  statusjson: [
    { path: 'statusjson.cgi', params: { query: 'hostlist', details: 'true' }, query: 'hostlist' },
    { path: 'statusjson.cgi', params: { query: 'servicelist', details: 'true' }, query: 'servicelist' },
  ],
  status: [
    { path: 'status.cgi', params: { hostgroup: 'all', style: 'hostdetail', limit: '0' }, page: 'hosts' },
    { path: 'status.cgi', params: { host: 'all', style: 'detail', limit: '0' }, page: 'services' },
  ],
} as const;

type Endpoint = (typeof ENDPOINTS)[keyof typeof ENDPOINTS][number];

/** One request of a poll, read as its CGI answers: JSON streamed record by record, or an HTML page. */
async function readEndpoint(http: HttpClient, e: Endpoint, where: string, signal: AbortSignal): Promise<NagiosStatus[]> {
  const request = { params: { ...e.params }, signal };
  if ('page' in e) return parseStatusPage(await http.getText(e.path, request), e.page, where);
  const { records, rest } = await http.getEach(e.path, { ...request, select: STATUSJSON_SELECT[e.query], each: (record, keys) => statusJsonRecord(e.query, record, keys, where) });
  checkStatusJson(rest, e.query, where, records.length);
  return records;
}

/** A host or service record → its entity. */
export function nagiosDraft(record: NagiosStatus, attach: readonly AttachRule[] = []): EntityDraft {
  // Only values that change together with the state: last_check, attempts, latency… would make
  // an update out of every poll (kept in `raw` for consumers that ask for it).
  const attributes: Record<string, unknown> = {};
  if (record.output !== '') attributes.output = record.output;
  if (record.stateType) attributes.stateType = record.stateType;
  if (record.lastStateChange) attributes.lastStateChange = record.lastStateChange;
  if (record.acknowledged !== undefined) attributes.acknowledged = record.acknowledged;
  if (record.inDowntime !== undefined) attributes.inDowntime = record.inDowntime;
  if (record.flapping !== undefined) attributes.flapping = record.flapping;
  if (record.kind === 'host') {
    return {
      type: 'nagios.host',
      id: record.host,
      name: record.host,
      state: record.state,
      parents: attachRefs(attach, () => record.host),
      attributes,
      raw: record,
    };
  }
  return {
    type: 'nagios.service',
    id: `${record.host}/${record.service}`,
    name: record.service,
    state: record.state,
    parents: [ref('nagios.host', record.host)],
    attributes: { ...attributes, host: record.host },
    raw: record,
  };
}

/**
 * Keeps what a check said when it entered its current state (state and SOFT/HARD), so a check
 * whose state did not change makes no event:
 * - its output, with `output: stable`, though its text moves (`RTA = 0.91 ms` → `0.87 ms`);
 * - its `last_state_change` when it had none: Nagios 4 fills one in after a check that changed
 *   nothing (a passive service result gave its host a time while the host stayed UP). A time
 *   that moves to another time is a real change (the state flapped between two polls) and passes.
 * Holds only the checks of the last snapshot.
 */
export function stableRecords(keepOutput: boolean): (records: NagiosStatus[]) => NagiosStatus[] {
  type Seen = { state: string; stateType: string | undefined; output: string; lastStateChange: string | undefined };
  let seen = new Map<string, Seen>();
  return (records) => {
    const next = new Map<string, Seen>();
    const out = records.map((r) => {
      const key = r.kind === 'host' ? `h:${r.host}` : `s:${r.host}/${r.service}`;
      const before = seen.get(key);
      const same = before !== undefined && before.state === r.state && before.stateType === r.stateType;
      const output = same && keepOutput ? before.output : r.output;
      const lastStateChange = same && before.lastStateChange === undefined ? undefined : r.lastStateChange;
      next.set(key, { state: r.state, stateType: r.stateType, output, lastStateChange });
      if (output === r.output && lastStateChange === r.lastStateChange) return r;
      const { lastStateChange: _dropped, ...rest } = r;
      return { ...rest, output, ...(output !== r.output ? { latestOutput: r.output } : {}), ...(lastStateChange !== undefined ? { lastStateChange } : {}) };
    });
    seen = next;
    return out;
  };
}

export default defineSource({
  options: (read): NagiosOptions => {
    return {
      ...readRestPollOptions(read, 'the cgi-bin folder, http://nagios.example/cgi-bin/nagios4'),
      cgi: read.oneOf('cgi', ['statusjson', 'status'] as const, 'statusjson'),
      output: read.oneOf('output', ['stable', 'latest', 'none'] as const, 'stable'),
      attach: readAttachRules(read, 'attach', { label: 'forbidden' }),
    };
  },

  create(options, { name, scheduler, log }) {
    const http = restPollClient(options, { name, scheduler, log }, ENDPOINTS[options.cgi].length);
    const signal$ = defer(() => {
      const settle = stableRecords(options.output === 'stable');
      return restPollSnapshots<NagiosStatus>(http, options, { name, scheduler, log, types: NAGIOS_TYPES }, async ({ signal }) => {
        const lists = await Promise.all(
          ENDPOINTS[options.cgi].map((e: Endpoint) => readEndpoint(http, e, `${name}: GET ${http.urlOf({ url: e.path, params: e.params })}`, signal)),
        );
        return settle(lists.flat());
      });
    });
    return {
      name,
      types: NAGIOS_TYPES,
      signal$,
      map: (record: NagiosStatus): EntityDraft => {
        const draft = nagiosDraft(record, options.attach);
        if (options.output === 'none' && draft.attributes) delete draft.attributes.output;
        return draft;
      },
    };
  },
});
