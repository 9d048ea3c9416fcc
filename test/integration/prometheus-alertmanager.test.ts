import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { type RunningAlertmanager, startAlertmanager } from '../support/alertmanager.js';
import { freePort } from '../support/ports.js';
import { type RunningPrometheus, startPrometheus } from '../support/prometheus.js';
import { waitFor } from '../support/wait.js';

// Real programs: Prometheus 2.42 scraping the test's exporter and evaluating an alert rule every
// second, Alertmanager 0.25 routing the alert to our webhook; both started once for this file.
const TOKEN = 'integration-webhook-token';
let am: RunningAlertmanager;
let prom: RunningPrometheus;
let sync: Synchronizer;
const events: EntityEvent[] = [];
const seen = (): string => `events: ${events.map((e) => `${e.action} ${e.entity.key} ${e.entity.state} (${e.entity.source})`).join(', ')}`;
const attach = [{ label: 'instance', type: 'prometheus.target', pattern: '^(.+)$' }];

beforeAll(async () => {
  const hookPort = await freePort();
  am = await startAlertmanager({
    config: `route:
  receiver: sync
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sync
    webhook_configs:
      - url: http://127.0.0.1:${hookPort}/alertmanager
        send_resolved: true
        http_config: {authorization: {type: Bearer, credentials: ${TOKEN}}}
`,
  });
  prom = await startPrometheus(am.url);
  sync = createSynchronizer({
    sources: [
      await createSource({ name: 'am-hook', use: 'alertmanager.webhook', listen: `127.0.0.1:${hookPort}`, token: TOKEN, attach }),
      // The safety net; its next poll is an hour away, so what arrives now came through the webhook.
      await createSource({ name: 'am-poll', use: 'alertmanager', url: am.url, interval: '1h', attach }),
      await createSource({ name: 'prom', use: 'prometheus', url: prom.url, interval: '300ms' }),
    ],
  });
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
  await waitFor('every source up', () => ['am-hook', 'am-poll', 'prom'].every((s) => sync.health()[s]?.status === 'up'), 20_000);
}, 90_000);

afterAll(async () => {
  sync?.stop();
  await prom?.stop();
  await am?.stop();
});

describe('Prometheus and Alertmanager (real programs) through the webhook and the poll sources', () => {
  it('an alert that fires reaches us through the webhook, and the Prometheus source sees it and the target; resolving deletes it', async () => {
    const target = await waitFor('the target, up', () => events.find((e) => e.entity.type === 'prometheus.target' && e.entity.state === 'UP'), { timeoutMs: 20_000, context: seen });
    expect(target.entity.id).toBe(`demo/${prom.exporter}`);

    prom.setValue(7);
    const created = await waitFor('the webhook create', () => events.find((e) => e.entity.type === 'alertmanager.alert' && e.action === 'create'), { timeoutMs: 30_000, context: seen });
    expect(created.entity).toMatchObject({ source: 'am-hook', name: 'DemoValueHigh', state: 'CRITICAL', parents: [{ type: 'prometheus.target', id: prom.exporter }] });
    expect(created.origin).toBe('notification');

    const promAlert = await waitFor('the Prometheus alert', () => events.find((e) => e.entity.type === 'prometheus.alert' && e.action === 'create'), { timeoutMs: 20_000, context: seen });
    expect(promAlert.entity).toMatchObject({ name: 'DemoValueHigh', state: 'CRITICAL', parents: [{ type: 'prometheus.target', id: `demo/${prom.exporter}` }] });

    // A poll of the same alert gives the same entity (same key, same hash): a second synchronizer's first poll.
    const other = createSynchronizer({ sources: [await createSource({ name: 'am-poll', use: 'alertmanager', url: am.url, interval: '1h', attach })] });
    const polled: EntityEvent[] = [];
    other.entity$.subscribe((e) => polled.push(e));
    other.start();
    await waitFor('the poll', () => polled.length > 0, { context: () => JSON.stringify(polled) });
    other.stop();
    expect(polled[0]!.entity.key).toBe(created.entity.key);
    expect(polled[0]!.hash).toBe(created.hash);

    prom.setValue(0);
    const deleted = await waitFor('the webhook delete', () => events.find((e) => e.entity.type === 'alertmanager.alert' && e.action === 'delete'), { timeoutMs: 30_000, context: seen });
    expect(deleted.entity.key).toBe(created.entity.key);
    await waitFor('the Prometheus alert deleted', () => events.find((e) => e.entity.type === 'prometheus.alert' && e.action === 'delete'), { timeoutMs: 20_000, context: seen });
    expect(sync.snapshot(['alertmanager.alert', 'prometheus.alert'])).toEqual([]);
    // Every alertmanager.alert event came through the webhook.
    expect(events.filter((e) => e.entity.type === 'alertmanager.alert').map((e) => `${e.action} ${e.entity.source}`)).toEqual(['create am-hook', 'delete am-hook']);
  }, 90_000);
});
