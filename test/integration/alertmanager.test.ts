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
/**
 * An alert of one test: each test has its own instance (so its own fingerprints), and finds its
 * own alarms by that instance, so tests pass alone and in any order.
 */
const alert = (instance: string, severity: string, extra: Record<string, unknown> = {}) => ({
  labels: { alertname: 'InstanceDown', severity, instance: 'compute-1.example:9100', instance_id: instance, job: 'node' },
  annotations: { summary: 'compute-1 is down' },
  startsAt,
  ...extra,
});
const resolved = () => ({ endsAt: new Date(Date.now() - 1000).toISOString() });
/** The events about alarms attached to `instance`. */
const about = (instance: string) => events.filter((e) => e.entity.parents.some((p) => p.type === 'nova.instance' && p.id === instance));

/** Posts an alert and resolves with its alarm's create event. */
async function created(instance: string, severity = 'warning'): Promise<EntityEvent> {
  await am.post([alert(instance, severity)]);
  return waitFor('create', () => about(instance).find((e) => e.action === 'create'), { context: seen });
}

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
  it('an alert posted to Alertmanager becomes an alarm entity attached to its instance and host', async () => {
    const instance = '6f1c2a7e-0d7b-4c55-9d6f-2b7f0c1e9a11';
    const create = await created(instance);
    expect(create.entity.id).toMatch(/^[0-9a-f]{16}$/);
    expect(create.entity).toMatchObject({
      type: 'alertmanager.alert',
      name: 'InstanceDown',
      state: 'WARNING',
      source: 'alerts',
      parents: [
        { type: 'nova.host', id: 'compute-1' },
        { type: 'nova.instance', id: instance },
      ],
      attributes: { status: 'active', severity: 'warning', silencedBy: [], inhibitedBy: [], annotations: { summary: 'compute-1 is down' }, startsAt },
    });
  });

  it('re-posting the same alert makes no event; a new summary is an update', async () => {
    const instance = 'instance-repost';
    const { entity } = await created(instance);
    await am.post([alert(instance, 'warning')]);
    // Three complete polls after the re-post.
    const polls = sync.metrics().observations.alerts ?? 0;
    await waitFor('three more polls', () => (sync.metrics().observations.alerts ?? 0) >= polls + 3, { context: seen });
    expect(about(instance).map((e) => e.action)).toEqual(['create']);
    await am.post([alert(instance, 'warning', { annotations: { summary: 'compute-1 is down since 10:00' } })]);
    const update = await waitFor('update', () => about(instance).find((e) => e.action === 'update' && e.entity.id === entity.id), { context: seen });
    expect(update.changed).toEqual(['attributes.annotations']);
    expect(update.entity.attributes.annotations).toEqual({ summary: 'compute-1 is down since 10:00' });
  });

  it('a severity change is a new alarm: the old fingerprint is deleted, the new one created', async () => {
    const instance = 'instance-severity';
    const warning = (await created(instance, 'warning')).entity;
    // Another severity is another label set, so Alertmanager gives it another fingerprint:
    // the old alert is resolved, the new one created.
    await am.post([alert(instance, 'warning', resolved()), alert(instance, 'critical')]);
    const critical = await waitFor('critical alert', () => about(instance).find((e) => e.entity.state === 'CRITICAL'), { context: seen });
    expect(critical.action).toBe('create');
    expect(critical.entity.id).not.toBe(warning.id);
    const gone = await waitFor('old alert deleted', () => about(instance).find((e) => e.action === 'delete' && e.entity.id === warning.id), { context: seen });
    expect(gone.entity.state).toBe('WARNING');
  });

  it('a silence turns the alarm SUPPRESSED (an update naming state and silencedBy)', async () => {
    const instance = 'instance-silenced';
    const { entity } = await created(instance, 'critical');
    const id = await am.silence([{ name: 'instance_id', value: instance }]);
    const update = await waitFor('update', () => about(instance).find((e) => e.action === 'update' && e.entity.id === entity.id), { context: seen });
    expect(update.entity.state).toBe('SUPPRESSED');
    expect(update.entity.attributes).toMatchObject({ status: 'suppressed', severity: 'critical', silencedBy: [id] });
    expect(update.changed).toEqual(expect.arrayContaining(['state', 'attributes.status', 'attributes.silencedBy']));
  });

  it('a resolved alert (endsAt in the past) is deleted', async () => {
    const instance = 'instance-resolved';
    const { entity } = await created(instance, 'critical');
    await am.post([alert(instance, 'critical', resolved())]);
    const deleted = await waitFor('delete', () => about(instance).find((e) => e.action === 'delete' && e.entity.id === entity.id), { context: seen });
    expect(deleted.entity.type).toBe('alertmanager.alert');
    expect(sync.snapshot(['alertmanager.alert']).filter((e) => e.id === entity.id)).toEqual([]);
  });
});
