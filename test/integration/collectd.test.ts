import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { type RunningCollectd, startCollectd } from '../support/collectd.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

// Real collectd 5.12: exec plugin → threshold → write_http posting notifications to our endpoint.
const auth = { username: 'collectd', password: 'collectd-pw-1' };
let collectd: RunningCollectd;
let sync: Synchronizer;
const events: EntityEvent[] = [];
const seen = (): string => `events: ${events.map((e) => `${e.action} ${e.entity.key} ${e.entity.state}`).join(', ')}; observations: ${JSON.stringify(sync.metrics().observations)}`;

beforeAll(async () => {
  const port = await freePort();
  sync = createSynchronizer({
    sources: [await createSource({ name: 'collectd', use: 'collectd', listen: `127.0.0.1:${port}`, ...auth, attach: [{ label: 'instance', type: 'nova.host' }] })],
  });
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
  await waitFor('the endpoint to listen', () => sync.health().collectd?.status === 'up');
  collectd = await startCollectd(`http://127.0.0.1:${port}/collectd`, auth);
}, 60_000);

afterAll(async () => {
  await collectd?.stop();
  sync?.stop();
});

describe('collectd (real program) posting threshold notifications through write_http', () => {
  it('FAILURE creates the alarm, WARNING updates it, OKAY deletes it', async () => {
    // collectd's first notification: OKAY for the value in range, which clears nothing.
    await waitFor('the OKAY at start', () => (sync.metrics().observations.collectd ?? 0) >= 1, { timeoutMs: 20_000, context: seen });
    expect(events).toHaveLength(0);

    await collectd.setValue(7);
    const failure = await waitFor('FAILURE', () => events.find((e) => e.action === 'create'), { timeoutMs: 20_000, context: seen });
    expect(failure.entity).toMatchObject({
      key: 'collectd.alarm:collectd-test/exec_gauge/exec=demo,type=value',
      state: 'FAILURE',
      parents: [{ type: 'nova.host', id: 'collectd-test' }],
      attributes: { currentValue: '7', failureMax: '5', warningMax: '3' },
    });

    await collectd.setValue(4);
    const warning = await waitFor('WARNING', () => events.find((e) => e.action === 'update'), { timeoutMs: 20_000, context: seen });
    expect(warning.entity.state).toBe('WARNING');

    await collectd.setValue(1);
    const okay = await waitFor('OKAY', () => events.find((e) => e.action === 'delete'), { timeoutMs: 20_000, context: seen });
    expect(okay.entity.key).toBe(failure.entity.key);
    expect(sync.snapshot(['collectd.alarm'])).toEqual([]);
  }, 90_000);
});
