import { afterEach, describe, expect, it } from 'vitest';
import { parsePrometheusAlerts, parsePrometheusTargets, prometheusDraft } from '../../sources/prometheus.js';
import { type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { readFixture } from '../support/fixtures.js';
import { type MonitoringServer, startMonitoringServer, wire } from '../support/monitoring-server.js';
import { waitFor } from '../support/wait.js';

const fx = (file: string): unknown => readFixture('wire', 'prometheus', file);
const W = 'test: GET api/v1/alerts';

let server: MonitoringServer | undefined;
let sync: Synchronizer | undefined;
afterEach(async () => {
  sync?.stop();
  sync = undefined;
  await server?.close();
  server = undefined;
});

describe('Prometheus API records (recorded from Prometheus 2.42)', () => {
  it('reads firing and pending alerts; the id is the label set', () => {
    const [firing, pending] = parsePrometheusAlerts(fx('alerts-firing-and-pending.json'), W);
    expect(prometheusDraft(firing!)).toMatchObject({
      type: 'prometheus.alert',
      id: 'DemoValueHigh{instance="127.0.0.1:19191",job="demo",severity="critical",source="file"}',
      name: 'DemoValueHigh',
      state: 'critical',
      parents: [{ type: 'prometheus.target', id: 'demo/127.0.0.1:19191' }],
      attributes: { state: 'firing', severity: 'critical', activeAt: '2026-11-30T02:52:45.177Z', annotations: { description: 'The gauge read from the value file is above 5.' } },
    });
    expect(prometheusDraft(pending!)).toMatchObject({ name: 'DemoValueHighSustained', state: 'PENDING' });
  });

  it('reads targets with their health, attached by label', () => {
    const targets = parsePrometheusTargets(fx('targets.json'), 'test');
    const attach = [{ label: 'instance', type: 'nova.host', pattern: /^([^:]+)/ }];
    expect(targets.map((t) => prometheusDraft(t, { attach }))).toMatchObject([
      { type: 'prometheus.target', id: 'demo/127.0.0.1:19191', state: 'up', parents: [{ type: 'nova.host', id: '127.0.0.1' }] },
      { type: 'prometheus.target', id: 'down/127.0.0.1:19192', state: 'down', attributes: { lastError: expect.stringMatching(/connection refused/) } },
    ]);
  });

  it('a value change (re-templated summary, new value) is the same entity; kept annotations are chosen', () => {
    const [before] = parsePrometheusAlerts(fx('alerts-firing-and-pending.json'), W);
    const [after] = parsePrometheusAlerts(fx('alerts-firing-value-changed.json'), W);
    expect(after!.annotations.summary).not.toBe(before!.annotations.summary);
    expect(prometheusDraft(after!)).toEqual({ ...prometheusDraft(before!), raw: after });
    expect(prometheusDraft(after!, { annotations: ['summary'] }).attributes).not.toEqual(prometheusDraft(before!, { annotations: ['summary'] }).attributes);
  });

  it('refuses answers that are not Prometheus API answers, naming the field', () => {
    expect(() => parsePrometheusAlerts({ status: 'error', errorType: 'bad_data', error: 'nope' }, W)).toThrow('test: GET api/v1/alerts: Prometheus answered "error": bad_data nope');
    expect(() => parsePrometheusAlerts({ status: 'success', data: { alerts: [{ labels: { alertname: 'A' }, state: 'inactive', activeAt: '2026-01-01T00:00:00Z' }] } }, W)).toThrow(
      'test: GET api/v1/alerts: data.alerts[0].state: expected pending or firing, got "inactive"',
    );
    expect(() => parsePrometheusTargets(fx('alerts-none.json'), 'T')).toThrow('T: data.activeTargets: expected a list, got undefined');
  });
});

describe('use: prometheus (recorded answers over HTTP)', () => {
  it('creates alerts and targets, no event while only the value moves, deletes a resolved alert', async () => {
    server = await startMonitoringServer();
    let phase = 'alerts-firing-and-pending.json';
    server.route('/api/v1/alerts', {}, () => wire(`prometheus/${phase}`));
    server.route('/api/v1/targets', { state: 'active' }, wire('prometheus/targets-state-active.json'));
    const source = await createSource({ name: 'prom', use: 'prometheus', url: server.url, interval: '20ms' });
    sync = createSynchronizer({ sources: [source] });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    await waitFor('4 creates', () => events.length >= 4);
    expect(events.map((e) => `${e.action} ${e.entity.type} ${e.entity.state}`).sort()).toEqual([
      'create prometheus.alert CRITICAL',
      'create prometheus.alert PENDING',
      'create prometheus.target DOWN',
      'create prometheus.target UP',
    ]);
    phase = 'alerts-firing-value-changed.json';
    const seen = server.requests.length;
    await waitFor('more polls', () => server!.requests.length >= seen + 6);
    expect(events).toHaveLength(4);
    phase = 'alerts-after-resolve.json';
    await waitFor('2 deletes', () => events.length >= 6);
    expect(events.slice(4).map((e) => `${e.action} ${e.entity.type}`)).toEqual(['delete prometheus.alert', 'delete prometheus.alert']);
    expect(sync.health().prom?.status).toBe('up');
  });
});

describe('use: prometheus, streamed answers that are not what Prometheus sends', () => {
  it('an error answer, a bad target and a list of the wrong kind fail the poll naming the source, URL and element; nothing is deleted', async () => {
    server = await startMonitoringServer();
    const targets = fx('targets-state-active.json') as { data: { activeTargets: Record<string, unknown>[] } };
    let answer: unknown = targets;
    server.route('/api/v1/alerts', {}, wire('prometheus/alerts-none.json'));
    server.route('/api/v1/targets', { state: 'active' }, () => ({ body: JSON.stringify(answer) }));
    const source = await createSource({ name: 'prom', use: 'prometheus', url: server.url, interval: '20ms' });
    sync = createSynchronizer({ sources: [source] });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    await waitFor('2 targets', () => events.length >= 2);
    const error = (): string => sync!.health().prom?.error ?? '';
    answer = { status: 'error', errorType: 'unavailable', error: 'TSDB not ready' };
    await waitFor('error answer', () => /^prom: GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/targets\?state=active: Prometheus answered "error": unavailable TSDB not ready$/.test(error()));
    answer = { status: 'success', data: { activeTargets: [targets.data.activeTargets[0], { ...targets.data.activeTargets[1], health: '' }] } };
    await waitFor('bad target', () => error().endsWith('/api/v1/targets?state=active: data.activeTargets[1].health: expected a non-empty string, got ""'));
    answer = { status: 'success', data: { activeTargets: { a: targets.data.activeTargets[0] } } };
    await waitFor('not a list', () => error().includes('data.activeTargets: expected a list, got {"a":'));
    expect(events).toHaveLength(2);
  });
});
