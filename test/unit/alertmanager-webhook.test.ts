import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAlerts, alertDraft } from '../../sources/alertmanager.js';
import { parseWebhook } from '../../sources/alertmanager-webhook.js';
import { createSource, entityHash, toEntity } from '../../src/index.js';
import { readFixture } from '../support/fixtures.js';
import { type MonitoringServer, startMonitoringServer, wire } from '../support/monitoring-server.js';
import { type PushTarget, startPushSource } from '../support/push.js';
import { waitFor } from '../support/wait.js';

const firing = (): Record<string, unknown> => readFixture('wire', 'prometheus', 'alertmanager-webhook-firing.json');
const resolved = (): Record<string, unknown> => readFixture('wire', 'prometheus', 'alertmanager-webhook-resolved.json');
const TOKEN = 'am-webhook-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const attach = [{ label: 'instance', type: 'prometheus.target', pattern: '^(.+)$' }];

let target: PushTarget | undefined;
let server: MonitoringServer | undefined;
afterEach(async () => {
  target?.stop();
  target = undefined;
  await server?.close();
  server = undefined;
});

describe('Alertmanager webhook bodies (recorded from Alertmanager 0.25, version 4)', () => {
  it('reads firing and resolved alerts as the poll source reads them', () => {
    const [f] = parseWebhook(firing());
    expect(f).toEqual({
      status: 'firing',
      alert: {
        fingerprint: '696efd803cadfd72',
        labels: { alertname: 'DemoValueHigh', instance: '127.0.0.1:19191', job: 'demo', severity: 'critical', source: 'file' },
        annotations: { description: 'The gauge read from the value file is above 5.', summary: 'demo_value is 7 on 127.0.0.1:19191' },
        startsAt: '2026-11-30T02:52:45.177Z',
        status: { state: 'active', silencedBy: [], inhibitedBy: [] },
      },
    });
    expect(parseWebhook(resolved())[0]!.status).toBe('resolved');
  });

  it('gives the very entity (same key, same hash) as GET /api/v2/alerts of the same alert', () => {
    const [polled] = parseAlerts(readFixture('wire', 'prometheus', 'alertmanager-v2-alerts-from-prometheus.json'), 'test');
    const [pushed] = parseWebhook(firing());
    const options = { attach: attach.map((a) => ({ ...a, pattern: new RegExp(a.pattern) })) };
    const a = toEntity(alertDraft(polled!, options), 'poll', '2026-11-30T02:52:46Z');
    const b = toEntity(alertDraft(pushed!.alert, options), 'hook', '2026-11-30T02:52:47Z');
    expect(b.key).toBe(a.key);
    expect(entityHash(b)).toBe(entityHash(a));
  });

  it('property: for any alert, the webhook and GET /api/v2/alerts give the same key and hash (whatever the key order)', () => {
    const strings = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 12 }), { maxKeys: 5 });
    const arbAlert = fc.record({
      fingerprint: fc.stringMatching(/^[0-9a-f]{16}$/),
      labels: strings,
      severity: fc.option(fc.constantFrom('critical', 'warning', 'info'), { nil: undefined }),
      annotations: strings,
      startsAt: fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }).map((ms) => new Date(ms).toISOString()),
    });
    fc.assert(
      fc.property(arbAlert, fc.boolean(), (a, reversed) => {
        const labels = { alertname: 'A', ...a.labels, ...(a.severity ? { severity: a.severity } : {}) };
        const order = <T extends Record<string, string>>(o: T): T => (reversed ? (Object.fromEntries(Object.entries(o).reverse()) as T) : o);
        const polled = parseAlerts([{ fingerprint: a.fingerprint, labels, annotations: a.annotations, startsAt: a.startsAt, endsAt: a.startsAt, updatedAt: a.startsAt, receivers: [{ name: 'x' }], status: { state: 'active', silencedBy: [], inhibitedBy: [] } }], 'p')[0]!;
        const pushed = parseWebhook({ version: '4', status: 'firing', alerts: [{ status: 'firing', fingerprint: a.fingerprint, labels: order(labels), annotations: order(a.annotations), startsAt: a.startsAt, endsAt: '0001-01-01T00:00:00Z' }] })[0]!;
        const options = { annotations: Object.keys(a.annotations), attach: [{ label: 'instance', type: 'nova.host' }] };
        const x = toEntity(alertDraft(polled, options), 'poll', a.startsAt);
        const y = toEntity(alertDraft(pushed.alert, options), 'hook', a.startsAt);
        expect(y.key).toBe(x.key);
        expect(entityHash(y)).toBe(entityHash(x));
      }),
    );
  });

  it('refuses what is not a version-4 body, naming the field', () => {
    expect(() => parseWebhook({ ...firing(), version: '3' })).toThrow('version: expected "4" (Alertmanager\'s webhook payload), got "3"');
    const body = firing();
    const [alert] = body.alerts as Record<string, unknown>[];
    expect(() => parseWebhook({ ...body, alerts: [alert, { ...alert, status: 'pending' }] })).toThrow('alerts[1].status: expected firing or resolved, got "pending"');
    expect(() => parseWebhook({ ...body, alerts: [{ ...alert, fingerprint: '' }] })).toThrow('alerts[0].fingerprint: expected a non-empty string, got ""');
    expect(() => parseWebhook([alert])).toThrow(/expected an Alertmanager webhook body/);
  });
});

describe('use: alertmanager.webhook', () => {
  it('a firing post creates the alert, a resolved post deletes it; the answer follows the events', async () => {
    const t = (target = await startPushSource('alertmanager.webhook', '/alertmanager', { token: TOKEN, attach }));
    const res = await t.post(firing(), { headers: auth });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ applied: 1, results: [{ index: 0, action: 'upsert', key: 'alertmanager.alert:696efd803cadfd72' }] });
    expect(t.events).toHaveLength(1);
    expect(t.events[0]).toMatchObject({ action: 'create', origin: 'notification', entity: { key: 'alertmanager.alert:696efd803cadfd72', name: 'DemoValueHigh', state: 'CRITICAL', parents: [{ type: 'prometheus.target', id: '127.0.0.1:19191' }] } });
    // Alertmanager repeats a group (repeat_interval): the same alert is no event.
    expect((await t.post(firing(), { headers: auth })).status).toBe(200);
    expect(t.events).toHaveLength(1);
    expect((await t.post(resolved(), { headers: auth })).status).toBe(200);
    expect(t.events.map((e) => e.action)).toEqual(['create', 'delete']);
    expect(t.sync.snapshot(['alertmanager.alert'])).toEqual([]);
  });

  it('a webhook and a poll of the same alert make one event', async () => {
    server = await startMonitoringServer();
    server.route('/api/v2/alerts', {}, wire('prometheus/alertmanager-v2-alerts-from-prometheus.json'));
    const poll = await createSource({ name: 'am-poll', use: 'alertmanager', url: server.url, interval: '20ms', attach });
    const t = (target = await startPushSource('alertmanager.webhook', '/alertmanager', { token: TOKEN, attach }, { otherSources: [poll] }));
    await waitFor('the poll to create it', () => t.events.length >= 1);
    const polls = (): number => server!.requests.length;
    expect((await t.post(firing(), { headers: auth })).status).toBe(200);
    const after = polls();
    await waitFor('two more polls', () => polls() >= after + 2);
    expect(t.events.map((e) => `${e.action} ${e.entity.key} ${e.entity.source}`)).toEqual(['create alertmanager.alert:696efd803cadfd72 am-poll']);
  });

  it('refuses a body that is not a webhook (422) and an unauthenticated post (401)', async () => {
    const t = (target = await startPushSource('alertmanager.webhook', '/alertmanager', { username: 'am', password: 'pw' }));
    expect((await t.post(firing())).status).toBe(401);
    const basic = { authorization: `Basic ${Buffer.from('am:pw').toString('base64')}` };
    const bad = await t.post({ ...firing(), alerts: 'none' }, { headers: basic });
    expect(bad).toMatchObject({ status: 422, body: { error: 'alerts: expected a list of alerts' } });
    expect(t.events).toHaveLength(0);
  });
});
