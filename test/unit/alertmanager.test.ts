import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Alert, alertDraft, parseAlerts } from '../../sources/alertmanager.js';
import { attachRefs, readAttachRules } from '../../src/attach.js';
import { type EntityEvent, type Synchronizer, OptionReader, createSource, createSynchronizer } from '../../src/index.js';
import { readFixture } from '../support/fixtures.js';
import { type MonitoringServer, type Reply, startMonitoringServer, wire } from '../support/monitoring-server.js';
import { waitFor } from '../support/wait.js';

const W = 'test: GET api/v2/alerts';
const recorded = (): Alert[] => parseAlerts(readFixture('wire', 'alertmanager-v2-get-alerts.json'), W);

describe('GET /api/v2/alerts records (recorded from Alertmanager 0.25)', () => {
  it('reads the recorded alerts field by field', () => {
    const [down, load] = recorded();
    expect(down).toEqual({
      fingerprint: '0ff92b6ecb4f7c19',
      labels: { alertname: 'InstanceDown', host: 'compute-1', instance: 'compute-1:9100', job: 'node', severity: 'critical' },
      annotations: { description: 'node_exporter on compute-1 unreachable for 5m', summary: 'compute-1 is down' },
      startsAt: '2026-11-25T11:36:25.000Z',
      status: { inhibitedBy: [], silencedBy: [], state: 'active' },
    });
    expect(load?.status).toEqual({ inhibitedBy: [], silencedBy: ['5952c987-04cf-48a4-bced-2d11295a8d87'], state: 'suppressed' });
  });

  it('refuses what is not an alert list, naming the index and field', () => {
    expect(() => parseAlerts({ alerts: [] }, W)).toThrow('test: GET api/v2/alerts: expected a list of alerts, got {"alerts":[]}');
    const [down] = readFixture<Record<string, unknown>[]>('wire', 'alertmanager-v2-get-alerts.json');
    expect(() => parseAlerts([down, { ...down, fingerprint: 42 }], W)).toThrow('test: GET api/v2/alerts: [1].fingerprint: expected a non-empty string, got 42');
    expect(() => parseAlerts([{ ...down, status: { state: 'firing', silencedBy: [], inhibitedBy: [] } }], W)).toThrow('[0].status.state: expected active, suppressed or unprocessed, got "firing"');
    expect(() => parseAlerts([{ ...down, labels: { severity: 3 } }], W)).toThrow('[0].labels: expected a mapping of strings');
    // The groups endpoint's shape is not the alerts endpoint's.
    expect(() => parseAlerts(readFixture('wire', 'alertmanager-v2-get-alerts-groups.json'), W)).toThrow(/\[0\]\.fingerprint/);
  });
});

describe('alertDraft', () => {
  const attach = readAttachRules(
    new OptionReader({ attach: [{ label: 'instance_id', type: 'nova.instance' }, { label: 'instance', type: 'nova.host', pattern: '^([^:.]+)' }, { label: 'host', type: 'nova.host' }] }, 'sources[0]'),
    'attach',
    { label: 'required' },
  );

  it('an active alert: state from severity, attached by its labels', () => {
    const [down] = recorded();
    expect(alertDraft(down!, { attach })).toEqual({
      type: 'alertmanager.alert',
      id: '0ff92b6ecb4f7c19',
      name: 'InstanceDown',
      state: 'CRITICAL',
      project: undefined,
      // instance → compute-1 and host → compute-1 are one ref; no instance_id label, no nova.instance.
      parents: [{ type: 'nova.host', id: 'compute-1' }],
      attributes: {
        status: 'active',
        severity: 'critical',
        silencedBy: [],
        inhibitedBy: [],
        labels: down!.labels,
        annotations: { summary: 'compute-1 is down', description: 'node_exporter on compute-1 unreachable for 5m' },
        startsAt: '2026-11-25T11:36:25.000Z',
      },
      raw: down,
    });
  });

  it('a silenced alert is SUPPRESSED and keeps its severity and silence as attributes', () => {
    const [, load] = recorded();
    const draft = alertDraft(load!, { annotations: ['summary'], projectLabel: 'job' });
    expect(draft).toMatchObject({ state: 'SUPPRESSED', project: 'node', parents: [], attributes: { status: 'suppressed', severity: 'warning', silencedBy: ['5952c987-04cf-48a4-bced-2d11295a8d87'], annotations: { summary: 'load high on compute-2' } } });
  });

  it('no severity label: FIRING; sets sorted so order does not change the hash', () => {
    const [down] = recorded();
    const { severity: _s, ...labels } = down!.labels;
    const draft = alertDraft({ ...down!, labels, status: { state: 'active', silencedBy: [], inhibitedBy: ['b', 'a'] } });
    expect(draft.state).toBe('FIRING');
    expect(draft.attributes?.inhibitedBy).toEqual(['a', 'b']);
  });

  it('attach rules: pattern group, whole match, no match', () => {
    const rules = readAttachRules(new OptionReader({ a: [{ label: 'x', type: 't1', pattern: '^[a-z]+' }, { label: 'x', type: 't2', pattern: '^(\\d+)$' }] }, ''), 'a', { label: 'required' });
    expect(attachRefs(rules, () => 'abc-1')).toEqual([{ type: 't1', id: 'abc' }]);
    expect(attachRefs(rules, () => '42')).toEqual([{ type: 't2', id: '42' }]);
    expect(attachRefs(rules, () => undefined)).toEqual([]);
  });
});

describe('alertmanager source over HTTP', () => {
  let server: MonitoringServer;
  let sync: Synchronizer | undefined;
  let events: EntityEvent[];
  let reply: Reply;

  beforeEach(async () => {
    server = await startMonitoringServer();
    reply = wire('alertmanager-v2-get-alerts.json');
    server.route('/api/v2/alerts', {}, () => reply);
    events = [];
  });
  afterEach(async () => {
    sync?.stop();
    sync = undefined;
    await server.close();
  });

  async function start(extra: Record<string, unknown> = {}): Promise<Synchronizer> {
    const source = await createSource({ name: 'am', use: 'alertmanager', url: server.url, interval: '30ms', timeout: '2s', backoff: '20ms', ...extra });
    sync = createSynchronizer({ sources: [source] });
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    return sync;
  }

  it('polls /api/v2/alerts with the filter matchers and creates one entity per fingerprint', async () => {
    await start({ filter: ['job="node"', 'severity=~"critical|warning"'] });
    await waitFor('2 creates', () => events.length >= 2);
    expect(server.requests[0]?.url).toBe(`/api/v2/alerts?filter=${encodeURIComponent('job="node"')}&filter=${encodeURIComponent('severity=~"critical|warning"')}`);
    expect(events.map((e) => [e.action, e.entity.key, e.entity.state])).toEqual([
      ['create', 'alertmanager.alert:0ff92b6ecb4f7c19', 'CRITICAL'],
      ['create', 'alertmanager.alert:be82d66d639683d1', 'SUPPRESSED'],
    ]);
  });

  it('an empty list deletes (Alertmanager has no hidden alerts), a broken answer deletes nothing', async () => {
    await start();
    await waitFor('creates', () => events.length >= 2);
    reply = { body: '<html>502 Bad Gateway</html>', contentType: 'text/html' };
    const down = await waitFor('health down', () => sync!.health().am?.status === 'down' && sync!.health().am);
    expect(down.error).toMatch(/^am: GET http:\/\/127\.0\.0\.1:\d+\/api\/v2\/alerts answered 200 with a body that is not valid JSON/);
    reply = { body: JSON.stringify({ data: [] }) };
    await waitFor('other error', () => sync!.health().am?.error?.includes('expected a list of alerts'));
    expect(events.filter((e) => e.action === 'delete')).toEqual([]);
    reply = { body: '[]' };
    await waitFor('2 deletes', () => events.filter((e) => e.action === 'delete').length === 2);
    expect(sync!.health().am?.status).toBe('up');
  });

  it('names bad options', async () => {
    await expect(createSource({ name: 'am', use: 'alertmanager', url: server.url, attach: [{ type: 'nova.host' }] })).rejects.toThrow('sources[0].attach[0].label: is required');
    await expect(createSource({ name: 'am', use: 'alertmanager', url: server.url, filter: [''] })).rejects.toThrow('sources[0].filter[0]: expected a non-empty string');
  });
});
