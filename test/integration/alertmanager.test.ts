import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { type RunningAlertmanager, startAlertmanager } from '../support/alertmanager.js';
import { waitFor } from '../support/wait.js';

let am: RunningAlertmanager;
let sync: Synchronizer;
const events: EntityEvent[] = [];

/** What the test saw, for a timeout's message. */
const seen = (): string => `events: ${events.map((e) => `${e.action} ${e.entity.key} ${e.entity.state}`).join(', ')}`;

const startsAt = new Date(Date.now() - 60_000).toISOString();
const alert = (severity: string, extra: Record<string, unknown> = {}) => ({
  labels: { alertname: 'InstanceDown', severity, instance: 'compute-1.example:9100', instance_id: '6f1c2a7e-0d7b-4c55-9d6f-2b7f0c1e9a11', job: 'node' },
  annotations: { summary: 'compute-1 is down' },
  startsAt,
  ...extra,
});

beforeAll(async () => {
  am = await startAlertmanager();
  const source = await createSource({
    name: 'alerts',
    use: 'alertmanager',
    url: am.url,
    interval: '100ms',
    timeout: '5s',
    attach: [
      { label: 'instance_id', type: 'nova.instance' },
      { label: 'instance', type: 'nova.host', pattern: '^([^.:]+)' },
    ],
  });
  sync = createSynchronizer({ sources: [source] });
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
});

afterAll(async () => {
  sync?.stop();
  await am?.stop();
});

describe('alertmanager source against a real Alertmanager 0.25', () => {
  let fingerprint = '';

  it('an alert posted to Alertmanager becomes an alarm entity attached to its instance and host', async () => {
    await am.post([alert('warning')]);
    const created = await waitFor('create', () => events.find((e) => e.action === 'create'), { context: seen });
    fingerprint = created.entity.id;
    expect(fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(created.entity).toMatchObject({
      type: 'alertmanager.alert',
      name: 'InstanceDown',
      state: 'WARNING',
      source: 'alerts',
      parents: [
        { type: 'nova.host', id: 'compute-1' },
        { type: 'nova.instance', id: '6f1c2a7e-0d7b-4c55-9d6f-2b7f0c1e9a11' },
      ],
      attributes: { status: 'active', severity: 'warning', silencedBy: [], inhibitedBy: [], annotations: { summary: 'compute-1 is down' }, startsAt },
    });
  });

  it('re-posting the same alert makes no event; a new summary is an update', async () => {
    const polled = events.length;
    await am.post([alert('warning')]);
    await new Promise((r) => setTimeout(r, 400)); // several polls
    expect(events).toHaveLength(polled);
    await am.post([alert('warning', { annotations: { summary: 'compute-1 is down since 10:00' } })]);
    const update = await waitFor('update', () => events.find((e) => e.action === 'update' && e.entity.id === fingerprint), { context: seen });
    expect(update.changed).toEqual(['attributes.annotations']);
    expect(update.entity.attributes.annotations).toEqual({ summary: 'compute-1 is down since 10:00' });
  });

  it('a severity change is a new alarm: the old fingerprint is deleted, the new one created', async () => {
    // Another severity is another label set, so Alertmanager gives it another fingerprint:
    // the old alert is resolved, the new one created.
    await am.post([alert('warning', { endsAt: new Date(Date.now() - 1000).toISOString() }), alert('critical')]);
    const critical = await waitFor('critical alert', () => events.find((e) => e.entity.state === 'CRITICAL'), { context: seen });
    expect(critical.action).toBe('create');
    const gone = await waitFor('old alert deleted', () => events.find((e) => e.action === 'delete' && e.entity.id === fingerprint), { context: seen });
    expect(gone.entity.state).toBe('WARNING');
    fingerprint = critical.entity.id;
  });

  it('a silence turns the alarm SUPPRESSED (an update naming state and silencedBy)', async () => {
    const id = await am.silence([{ name: 'alertname', value: 'InstanceDown' }]);
    const update = await waitFor('update', () => events.find((e) => e.action === 'update' && e.entity.id === fingerprint), { context: seen });
    expect(update.entity.state).toBe('SUPPRESSED');
    expect(update.entity.attributes).toMatchObject({ status: 'suppressed', severity: 'critical', silencedBy: [id] });
    expect(update.changed).toEqual(expect.arrayContaining(['state', 'attributes.status', 'attributes.silencedBy']));
  });

  it('a resolved alert (endsAt in the past) is deleted', async () => {
    await am.post([alert('critical', { endsAt: new Date(Date.now() - 1000).toISOString() })]);
    const deleted = await waitFor('delete', () => events.find((e) => e.action === 'delete' && e.entity.id === fingerprint), { context: seen });
    expect(deleted.entity.type).toBe('alertmanager.alert');
    expect(sync.snapshot(['alertmanager.alert'])).toEqual([]);
  });
});
