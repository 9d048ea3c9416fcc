import { type Server, createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { parseHosts, parseProblems, parseTriggerHosts, zabbixDraft } from '../../sources/zabbix.js';
import { ConfigError, type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { readFixture } from '../support/fixtures.js';
import { waitFor } from '../support/wait.js';

type Recorded = { request: { method: string; params: Record<string, unknown> }; response: { result?: unknown; error?: unknown } };
const fx = (file: string): Recorded => readFixture<Recorded>('wire', 'zabbix', file);
const W = 'test';

describe('Zabbix 6.0 API records (recorded from Zabbix 6.0.14)', () => {
  it('reads hosts with every scalar a string', () => {
    const [host] = parseHosts(fx('10-host.get-while.json').response.result, W);
    expect(zabbixDraft(host!, [{ type: 'nova.host' }])).toEqual({
      type: 'zabbix.host',
      id: 'demo-host',
      name: 'Demo host',
      state: 'MONITORED',
      parents: [{ type: 'nova.host', id: 'demo-host' }],
      attributes: { hostid: '10559', groups: ['Linux servers'], tags: [{ tag: 'env', value: 'steering' }] },
      raw: host,
    });
  });

  it('reads a problem with its severity, attached to its trigger\'s hosts; the acknowledgement is an update of it', () => {
    const triggers = parseTriggerHosts(fx('12-trigger.get-while.json').response.result, W);
    expect(triggers).toEqual(new Map([['23133', ['demo-host']]]));
    const [open] = parseProblems(fx('11-problem.get-while.json').response.result, W, triggers);
    const draft = zabbixDraft(open!);
    expect(draft).toMatchObject({
      type: 'zabbix.problem',
      id: '1',
      name: 'Demo value above 5 on Demo host',
      state: 'HIGH',
      parents: [{ type: 'zabbix.host', id: 'demo-host' }],
      attributes: { severity: 'HIGH', triggerid: '23133', since: '2026-11-30T02:56:41.000Z', acknowledged: false, acknowledges: [], tags: [{ tag: 'env', value: 'steering' }, { tag: 'service', value: 'demo' }] },
    });
    // A second poll without change: the same entity.
    const [again] = parseProblems(fx('14-problem.get-while-poll2.json').response.result, W, triggers);
    expect(zabbixDraft(again!).attributes).toEqual(draft.attributes);
    const [acked] = parseProblems(fx('18-problem.get-while-acknowledged.json').response.result, W, triggers);
    expect(zabbixDraft(acked!).attributes).toMatchObject({ acknowledged: true, acknowledges: [{ clock: '2026-11-30T02:56:44.000Z', message: 'Looking into it (steering)', action: '6', userid: '1' }] });
  });

  it('a problem whose trigger has no host has no parent; bad values are refused naming the field', () => {
    const [p] = parseProblems(fx('11-problem.get-while.json').response.result, W, new Map());
    expect(zabbixDraft(p!).parents).toEqual([]);
    const raw = fx('11-problem.get-while.json').response.result as Record<string, unknown>[];
    expect(() => parseProblems([{ ...raw[0], severity: '9' }], W, new Map())).toThrow('test: result[0].severity: expected 0 to 5, got "9"');
    expect(() => parseProblems([{ ...raw[0], clock: 'noon' }], W, new Map())).toThrow('test: result[0].clock: expected Unix seconds, got "noon"');
    expect(() => parseHosts({ hosts: [] }, W)).toThrow('test: result: expected a list');
  });
});

/**
 * A JSON-RPC endpoint that answers each method with the recorded result of the current phase.
 * `session` is what user.login hands out; a call with another `auth` gets Zabbix's own error.
 */
async function zabbixServer(): Promise<{ url: string; phase: { files: Record<string, string> }; calls: { method: string; auth?: string }[]; session: { id: string }; close(): Promise<void> }> {
  const phase = { files: {} as Record<string, string> };
  const calls: { method: string; auth?: string }[] = [];
  const session = { id: 'f9e20c71d52814bec3177cfd34ae3183' };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const call = JSON.parse(body) as { method: string; id: number; auth?: string; params: Record<string, unknown> };
      calls.push({ method: call.method, ...(call.auth ? { auth: call.auth } : {}) });
      const answer = (doc: Record<string, unknown>): void => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', ...doc, id: call.id }));
      };
      if (call.method === 'user.login') return answer({ result: session.id });
      // Zabbix's answer to a session it no longer knows: HTTP 200 with an error member.
      if (call.auth !== session.id) return answer({ error: { code: -32602, message: 'Invalid params.', data: 'Session terminated, re-login, please.' } });
      const file = phase.files[call.method];
      if (file === undefined) return answer({ error: { code: -32601, message: 'Method not found.', data: `no recording for ${call.method}` } });
      return answer({ result: fx(file).response.result });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/zabbix`,
    phase,
    calls,
    session,
    close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

const PHASES = {
  before: { 'host.get': '06-host.get-before.json', 'problem.get': '07-problem.get-before.json' },
  while: { 'host.get': '10-host.get-while.json', 'problem.get': '11-problem.get-while.json', 'trigger.get': '12-trigger.get-while.json' },
  acknowledged: { 'host.get': '17-host.get-while-acknowledged.json', 'problem.get': '18-problem.get-while-acknowledged.json', 'trigger.get': '19-trigger.get-while-acknowledged.json' },
  after: { 'host.get': '21-host.get-after.json', 'problem.get': '22-problem.get-after.json' },
};

describe('use: zabbix (recorded answers over JSON-RPC)', () => {
  let sync: Synchronizer | undefined;
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    sync?.stop();
    await close?.();
  });

  it('host, then a problem (create), acknowledged (update), resolved (delete); logs in again when the session ends', async () => {
    const z = await zabbixServer();
    close = z.close;
    z.phase.files = PHASES.before;
    const source = await createSource({ name: 'zbx', use: 'zabbix', url: z.url, username: 'Admin', password: 'zabbix', interval: '20ms' });
    sync = createSynchronizer({ sources: [source] });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    const host = await waitFor('the host', () => events.find((e) => e.entity.type === 'zabbix.host'));
    expect(host.entity).toMatchObject({ id: 'demo-host', state: 'MONITORED' });
    expect(z.calls.filter((c) => c.method === 'user.login')).toHaveLength(1);

    z.phase.files = PHASES.while;
    const problem = await waitFor('the problem', () => events.find((e) => e.entity.type === 'zabbix.problem'));
    expect(problem).toMatchObject({ action: 'create', entity: { state: 'HIGH', parents: [{ type: 'zabbix.host', id: 'demo-host' }] } });

    z.session.id = 'a-new-session'; // the old one expired: the next call is refused, the source logs in again
    z.phase.files = PHASES.acknowledged;
    const ack = await waitFor('the acknowledgement', () => events.find((e) => e.action === 'update'));
    expect(ack.entity.attributes.acknowledged).toBe(true);
    expect(ack.changed).toEqual(expect.arrayContaining(['attributes.acknowledged', 'attributes.acknowledges']));
    expect(z.calls.filter((c) => c.method === 'user.login').length).toBeGreaterThanOrEqual(2);

    z.phase.files = PHASES.after;
    const gone = await waitFor('the delete', () => events.find((e) => e.action === 'delete'));
    expect(gone.entity.key).toBe('zabbix.problem:1');
    expect(events.map((e) => `${e.action} ${e.entity.key}`)).toEqual(['create zabbix.host:demo-host', 'create zabbix.problem:1', 'update zabbix.problem:1', 'delete zabbix.problem:1']);
  });

  it('an error answered with HTTP 200 is a health error naming the method, and deletes nothing', async () => {
    const z = await zabbixServer();
    close = z.close;
    z.phase.files = PHASES.while;
    const source = await createSource({ name: 'zbx', use: 'zabbix', url: z.url, token: z.session.id, interval: '20ms', backoff: '20ms' });
    sync = createSynchronizer({ sources: [source] });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    await waitFor('two creates', () => events.length >= 2);
    expect(z.calls.some((c) => c.method === 'user.login')).toBe(false);
    z.phase.files = { ...PHASES.while, 'problem.get': undefined as unknown as string };
    const down = await waitFor('down', () => (sync!.health().zbx?.status === 'down' ? sync!.health().zbx : undefined));
    expect(down.error).toMatch(/^zbx: problem\.get at http:\/\/127\.0\.0\.1:\d+\/zabbix\/api_jsonrpc\.php: error -32601: Method not found\./);
    expect(events).toHaveLength(2);
  });

  it('refuses a config without credentials, naming the field', async () => {
    await expect(createSource({ name: 'zbx', use: 'zabbix', url: 'http://127.0.0.1:1/zabbix' })).rejects.toThrow(
      new ConfigError('sources[0].token', 'is required: an API token, or username and password (user.login)'),
    );
  });
});
