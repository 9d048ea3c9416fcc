/**
 * What Nagios Core 4's CGIs say about hosts and services, read into one shape whichever CGI said
 * it: statusjson.cgi (`query=hostlist|servicelist&details=true`) or the classic status.cgi HTML
 * pages (`style=hostdetail|detail&limit=0`). Anything that is not what Nagios 4.4 sends throws an
 * error naming the URL and the field, so the poll fails (health down) instead of deleting.
 */

export type NagiosHostState = 'UP' | 'DOWN' | 'UNREACHABLE' | 'PENDING';
export type NagiosServiceState = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN' | 'PENDING';

/** Facts about one check result; the JSON CGI gives all of them, the HTML page only some. */
export interface NagiosCheck {
  output: string;
  stateType?: 'SOFT' | 'HARD';
  /** ISO times; absent when Nagios says 0 (never). */
  lastCheck?: string;
  lastStateChange?: string;
  acknowledged?: boolean;
  inDowntime?: boolean;
  flapping?: boolean;
  /** The newest output when `output` holds the one from the last state change (nagios `output: stable`). */
  latestOutput?: string;
}

export interface NagiosHostStatus extends NagiosCheck {
  kind: 'host';
  host: string;
  state: NagiosHostState;
}

export interface NagiosServiceStatus extends NagiosCheck {
  kind: 'service';
  host: string;
  service: string;
  state: NagiosServiceState;
}

export type NagiosStatus = NagiosHostStatus | NagiosServiceStatus;

// statusjson.cgi sends states as bit values (its `formatoptions=enumerate` sends lower-case names).
const HOST_STATES: Readonly<Record<string, NagiosHostState>> = { 1: 'PENDING', 2: 'UP', 4: 'DOWN', 8: 'UNREACHABLE' };
const SERVICE_STATES: Readonly<Record<string, NagiosServiceState>> = { 1: 'PENDING', 2: 'OK', 4: 'WARNING', 8: 'UNKNOWN', 16: 'CRITICAL' };
const STATE_TYPES: Readonly<Record<string, 'SOFT' | 'HARD'>> = { 0: 'SOFT', 1: 'HARD' };

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Reads one record's fields, naming `where` and the field in every complaint. */
class Fields {
  constructor(
    private readonly record: Json,
    private readonly where: string,
  ) {}

  private fail(field: string, expected: string): never {
    throw new Error(`${this.where}.${field}: expected ${expected}, got ${JSON.stringify(this.record[field])}`);
  }

  string(field: string): string {
    const v = this.record[field];
    if (typeof v !== 'string') this.fail(field, 'a string');
    return v;
  }

  optionalBoolean(field: string): boolean | undefined {
    const v = this.record[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail(field, 'true or false');
    return v;
  }

  optionalNumber(field: string): number | undefined {
    const v = this.record[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, 'a number');
    return v;
  }

  /** Epoch milliseconds → ISO; 0 (never) → undefined. */
  optionalTime(field: string): string | undefined {
    const ms = this.optionalNumber(field);
    if (ms === undefined || ms <= 0) return undefined;
    const date = new Date(ms);
    // Beyond ±8.64e15 ms a Date is invalid, and toISOString would throw a RangeError.
    if (Number.isNaN(date.getTime())) this.fail(field, 'a time in epoch milliseconds');
    return date.toISOString();
  }

  /** A bit value (or enumerate name) looked up in `table`. */
  enumerated<T>(field: string, table: Readonly<Record<string, T>>, expected: string): T {
    const v = this.record[field];
    const hit = typeof v === 'number' ? table[String(v)] : typeof v === 'string' ? Object.values(table).find((t) => String(t) === v.toUpperCase()) : undefined;
    if (hit === undefined) this.fail(field, expected);
    return hit;
  }
}

function checkFacts(f: Fields): NagiosCheck {
  const stateType = f.enumerated('state_type', STATE_TYPES, 'a state type (0 soft, 1 hard)');
  const lastCheck = f.optionalTime('last_check');
  const lastStateChange = f.optionalTime('last_state_change');
  const acknowledged = f.optionalBoolean('problem_has_been_acknowledged');
  const downtime = f.optionalNumber('scheduled_downtime_depth');
  const flapping = f.optionalBoolean('is_flapping');
  return {
    output: f.string('plugin_output'),
    stateType,
    ...(lastCheck ? { lastCheck } : {}),
    ...(lastStateChange ? { lastStateChange } : {}),
    ...(acknowledged !== undefined ? { acknowledged } : {}),
    ...(downtime !== undefined ? { inDowntime: downtime > 0 } : {}),
    ...(flapping !== undefined ? { flapping } : {}),
  };
}

/**
 * The records of a statusjson.cgi answer (`query=hostlist` or `query=servicelist`, `details=true`).
 *
 * 1. `result.type_code` other than 0 (Nagios's own error, e.g. a bad query) throws its message.
 * 2. An empty host list throws: Nagios refuses to start without hosts, so an empty list means the
 *    user (`result.user`) is authenticated but not authorized (the CGI answers 200 with empty lists
 *    then) — reading it as "all clear" would delete every alarm.
 * 3. A record without details (a bare state number) or with a field of the wrong kind throws.
 *
 * A poll streams the answer instead ({@link STATUSJSON_SELECT}): {@link statusJsonRecord} per
 * record as it arrives, then {@link checkStatusJson} on the rest; this is the same on a whole one.
 *
 * @param doc the parsed body.
 * @param where the URL, for messages.
 */
export function parseStatusJson(doc: unknown, query: 'hostlist' | 'servicelist', where: string): NagiosStatus[] {
  const list = statusJsonList(doc, query, where);
  const records: NagiosStatus[] = [];
  if (query === 'hostlist') {
    for (const [host, record] of Object.entries(list)) records.push(statusJsonRecord(query, record, [host], where));
  } else {
    for (const [host, services] of Object.entries(list)) {
      if (!isObject(services)) continue; // checkStatusJson names it
      for (const [service, record] of Object.entries(services)) records.push(statusJsonRecord(query, record, [host, service], where));
    }
  }
  checkStatusJson(doc, query, where, records.length);
  return records;
}

/** Where the records of each query are: a host's key is its name; a service's, its host's and its own. */
export const STATUSJSON_SELECT = { hostlist: 'data.hostlist.*', servicelist: 'data.servicelist.*.*' } as const;

/** `data.<query>` of an answer, after the envelope's checks (rule 1). */
function statusJsonList(doc: unknown, query: 'hostlist' | 'servicelist', where: string): Json {
  if (!isObject(doc) || !isObject(doc.result) || !isObject(doc.data)) {
    throw new Error(`${where}: expected statusjson.cgi's {"result": {…}, "data": {…}}, got ${JSON.stringify(doc)?.slice(0, 120)}`);
  }
  const { result, data } = doc;
  if (result.type_code !== 0) {
    throw new Error(`${where}: Nagios answered type_code ${JSON.stringify(result.type_code)} (${String(result.type_text)}): ${String(result.message)}`);
  }
  const list = data[query];
  if (!isObject(list)) throw new Error(`${where}: data.${query}: expected a mapping, got ${JSON.stringify(list)}`);
  return list;
}

/**
 * Rules 1 and 2 on what is left of an answer once its `count` records were read: in a streamed
 * one, a host's services that were not a mapping were left in it.
 */
export function checkStatusJson(rest: unknown, query: 'hostlist' | 'servicelist', where: string, count: number): void {
  const list = statusJsonList(rest, query, where);
  if (query === 'servicelist') {
    for (const [host, services] of Object.entries(list)) {
      if (!isObject(services)) throw new Error(`${where}: data.servicelist[${JSON.stringify(host)}]: expected a mapping of services, got ${JSON.stringify(services)}`);
    }
    return;
  }
  if (count === 0) {
    const user = isObject(rest) && isObject(rest.result) ? rest.result.user : undefined;
    throw new Error(
      `${where}: no hosts visible to user ${JSON.stringify(user)}: Nagios never runs without hosts, so the user is not authorized ` +
        '(add it to authorized_for_all_hosts in cgi.cfg, or make it a contact of the hosts)',
    );
  }
}

/** One host (`keys`: its name) or service (`keys`: host, service) record, rule 3. */
export function statusJsonRecord(query: 'hostlist' | 'servicelist', record: unknown, keys: readonly (string | number)[], where: string): NagiosStatus {
  const host = String(keys[0]);
  if (query === 'hostlist') {
    const at = `data.hostlist[${JSON.stringify(host)}]`;
    if (!isObject(record)) throw new Error(`${where}: ${at}: expected the host's details (details=true), got ${JSON.stringify(record)}`);
    const f = new Fields(record, `${where}: ${at}`);
    return { kind: 'host', host, state: f.enumerated('status', HOST_STATES, 'a host state (1, 2, 4 or 8)'), ...checkFacts(f) };
  }
  const service = String(keys[1]);
  const at = `data.servicelist[${JSON.stringify(host)}][${JSON.stringify(service)}]`;
  if (!isObject(record)) throw new Error(`${where}: ${at}: expected the service's details (details=true), got ${JSON.stringify(record)}`);
  const f = new Fields(record, `${where}: ${at}`);
  return { kind: 'service', host, service, state: f.enumerated('status', SERVICE_STATES, 'a service state (1, 2, 4, 8 or 16)'), ...checkFacts(f) };
}

// ---- status.cgi (HTML) ------------------------------------------------------------------------

/** A table cell that holds no other cell or table: where status.cgi puts each value. */
interface Cell {
  cls: string;
  html: string;
  text: string;
}

// Every pattern here is linear in the page: attribute and tag runs stop at the next `<`, so a
// page of unclosed tags cannot make a scan restart from each of them.
const LEAF_CELL = /<td\b([^<>]*)>((?:(?!<td\b|<table\b|<\/td>)[\s\S])*)<\/td>/gi;
const CLASS_ATTR = /\bclass\s*=\s*(?:'([^']*)'|"([^"]*)"|([^\s>]+))/i;
/** A Map, not an object: `&constructor;` must not find Object.prototype's members. */
const ENTITIES: ReadonlyMap<string, string> = new Map([
  ['amp', '&'],
  ['lt', '<'],
  ['gt', '>'],
  ['quot', '"'],
  ['apos', "'"],
  ['nbsp', ' '],
]);

/** A numeric character reference's character; U+FFFD for 0, surrogates and beyond U+10FFFF (as HTML does). */
function codePoint(n: number): string {
  return Number.isInteger(n) && n > 0 && n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff) ? String.fromCodePoint(n) : '\uFFFD';
}

/** HTML character references: the named ones status.cgi uses, and numeric ones of any size. */
export function decode(text: string): string {
  return text.replace(/&(#\d{1,10}|#x[0-9a-f]{1,8}|[a-z]{1,32});/gi, (whole, name: string) => {
    const lower = name.toLowerCase();
    if (lower.startsWith('#x')) return codePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return codePoint(parseInt(lower.slice(1), 10));
    return ENTITIES.get(lower) ?? whole;
  });
}

function leafCells(html: string): Cell[] {
  return [...html.matchAll(LEAF_CELL)].map((m) => {
    const c = CLASS_ATTR.exec(m[1] ?? '');
    const inner = m[2] ?? '';
    return { cls: c ? (c[1] ?? c[2] ?? c[3] ?? '') : '', html: inner, text: decode(inner.replace(/<[^<>]*>/g, '')).replace(/\s+/g, ' ').trim() };
  });
}

/** The query parameters of the extinfo.cgi link in a cell (host, service), if it has one. */
function extinfoLink(cell: Cell, type: '1' | '2'): URLSearchParams | undefined {
  const m = /href\s*=\s*['"]?extinfo\.cgi\?([^'"\s>]+)/i.exec(cell.html);
  if (!m) return undefined;
  const params = new URLSearchParams(decode(m[1]!));
  return params.get('type') === type ? params : undefined;
}

/** `11-25-2026 11:44:07` (status.cgi's default date_format `us`, server time taken as UTC) → ISO. */
function usDate(text: string): string | undefined {
  const m = /^(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})$/.exec(text);
  return m ? `${m[3]}-${m[1]}-${m[2]}T${m[4]}:${m[5]}:${m[6]}.000Z` : undefined;
}

const HOST_CLASS = /^statusHOST(UP|DOWN|UNREACHABLE|PENDING)$/;
const SERVICE_CLASS = /^status(OK|WARNING|UNKNOWN|CRITICAL|PENDING)$/;

/**
 * The rows of status.cgi's `style=hostdetail` (hosts) or `style=detail` (services) page.
 *
 * 1. A row starts at the cell holding the extinfo.cgi link of a host (type=1) or service (type=2);
 *    its state is the next cell classed `statusHOST<STATE>` / `status<STATE>`; then come last
 *    check, duration, (attempt, services only) and the plugin output.
 * 2. The page's own count ("Results 1 - 8 of 8 Matching Services") must equal the rows read: a
 *    paged answer (no `limit=0`) or a layout this parser doesn't know throws instead of dropping.
 * 3. No rows throws, naming the logged-in user: status.cgi shows an empty table to a user who is
 *    not authorized ("do not have permission"), and Nagios never runs without hosts and services.
 */
export function parseStatusPage(html: string, page: 'hosts' | 'services', where: string): NagiosStatus[] {
  if (!/<html/i.test(html) || !/status/i.test(html)) throw new Error(`${where}: expected status.cgi's HTML page, got ${JSON.stringify(html.slice(0, 120))}`);
  const cells = leafCells(html);
  const stateClass = page === 'hosts' ? HOST_CLASS : SERVICE_CLASS;
  // The next state cell after each cell, in one backward pass: finding a row's state cell is then
  // O(1), so the page is read in linear time however many link cells it holds.
  const nextState = new Array<number>(cells.length);
  for (let j = cells.length - 1, next = -1; j >= 0; j -= 1) {
    nextState[j] = next;
    if (stateClass.test(cells[j]!.cls)) next = j;
  }
  const records: NagiosStatus[] = [];
  for (let i = 0; i < cells.length; i += 1) {
    const link = extinfoLink(cells[i]!, page === 'hosts' ? '1' : '2');
    // Icons next to the name link to the same page but hold no text.
    if (!link || cells[i]!.text === '') continue;
    const host = link.get('host');
    const service = link.get('service');
    const stateAt = nextState[i]!;
    const what = page === 'hosts' ? `host ${JSON.stringify(host)}` : `service ${JSON.stringify(`${host}/${service}`)}`;
    if (!host || (page === 'services' && !service) || stateAt < 0) throw new Error(`${where}: cannot read the row of ${what}: the page layout is not status.cgi 4.x's`);
    const stateCell = cells[stateAt]!;
    const columns = cells.slice(stateAt + 1, stateAt + (page === 'hosts' ? 4 : 5));
    const output = columns[columns.length - 1];
    if (!output || stateCell.text !== (page === 'hosts' ? HOST_CLASS : SERVICE_CLASS).exec(stateCell.cls)![1]) {
      throw new Error(`${where}: cannot read the row of ${what}: state cell ${JSON.stringify(stateCell.text)} does not match its class ${stateCell.cls}`);
    }
    const lastCheck = usDate(columns[0]?.text ?? '');
    const check: NagiosCheck = { output: output.text, ...(lastCheck ? { lastCheck } : {}) };
    records.push(
      page === 'hosts'
        ? { kind: 'host', host, state: stateCell.text as NagiosHostState, ...check }
        : { kind: 'service', host, service: service!, state: stateCell.text as NagiosServiceState, ...check },
    );
    i = stateAt + columns.length;
  }
  const user = /Logged in as <i>([^<]*)<\/i>/i.exec(html)?.[1];
  if (records.length === 0) {
    throw new Error(
      `${where}: no ${page} visible to user ${JSON.stringify(user ?? '?')}: Nagios never runs without hosts and services, so the user is not authorized ` +
        '(add it to authorized_for_all_hosts and authorized_for_all_services in cgi.cfg)',
    );
  }
  const total = new RegExp(`of (\\d+) Matching ${page === 'hosts' ? 'Hosts' : 'Services'}`, 'i').exec(html)?.[1];
  if (total === undefined || Number(total) !== records.length) {
    throw new Error(`${where}: read ${records.length} ${page} but the page says ${total ?? 'no count'} (a paged answer without limit=0, or an unknown layout)`);
  }
  return records;
}
