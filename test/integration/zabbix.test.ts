import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { waitFor } from '../support/wait.js';
import { type RunningZabbix, startZabbix } from '../support/zabbix.js';

// Real Zabbix 6.0 (server, frontend API under PHP, PostgreSQL), started once for this file (~20-40 s).
let zabbix: RunningZabbix;
let sync: Synchronizer;
const events: EntityEvent[] = [];
const seen = (): string => `events: ${events.map((e) => `${e.action} ${e.entity.key} ${e.entity.state}`).join(', ')}; health: ${JSON.stringify(sync.health().zbx)}`;

beforeAll(async () => {
  zabbix = await startZabbix();
  const { hostids } = (await zabbix.call('host.create', { host: 'sync-host', name: 'Sync host', groups: [{ groupid: '2' }], tags: [{ tag: 'env', value: 'test' }] })) as { hostids: string[] };
  await zabbix.call('item.create', { hostid: hostids[0], name: 'Test value', key_: 'test.value', type: 2, value_type: 0 });
  await zabbix.call('trigger.create', { description: 'Test value above 5 on {HOST.NAME}', expression: 'last(/sync-host/test.value)>5', priority: 4, manual_close: 1 });
  sync = createSynchronizer({
    sources: [await createSource({ name: 'zbx', use: 'zabbix', url: zabbix.url, username: 'Admin', password: 'zabbix', interval: '300ms', attach: [{ type: 'nova.host' }] })],
  });
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
}, 240_000);

afterAll(async () => {
  sync?.stop();
  await zabbix?.stop();
}, 60_000);

describe('Zabbix 6.0 (real server, API and database) through use: zabbix', () => {
  it('a trigger fired through zabbix_sender: the problem appears, is acknowledged (update), resolves (delete)', async () => {
    const host = await waitFor('the host', () => events.find((e) => e.entity.key === 'zabbix.host:sync-host'), { timeoutMs: 30_000, context: seen });
    expect(host.entity).toMatchObject({ name: 'Sync host', state: 'MONITORED', parents: [{ type: 'nova.host', id: 'sync-host' }], attributes: { groups: ['Linux servers'], tags: [{ tag: 'env', value: 'test' }] } });

    await zabbix.send('sync-host', 'test.value', '7');
    // The real server raises problems of its own too (e.g. "Utilization of timer processes over
    // 75%" on a busy machine, on its host "Zabbix server"): follow only the one on our host.
    const onOurHost = (e: EntityEvent): boolean => e.entity.type === 'zabbix.problem' && e.entity.parents.some((p) => p.id === 'sync-host');
    const problem = await waitFor('the problem', () => events.find((e) => onOurHost(e) && e.action === 'create'), { timeoutMs: 30_000, context: seen });
    expect(problem.entity).toMatchObject({ name: 'Test value above 5 on Sync host', state: 'HIGH', parents: [{ type: 'zabbix.host', id: 'sync-host' }], attributes: { acknowledged: false } });

    await zabbix.call('event.acknowledge', { eventids: [problem.entity.id], action: 6, message: 'Looking into it' });
    const ack = await waitFor('the acknowledgement', () => events.find((e) => e.entity.key === problem.entity.key && e.action === 'update'), { timeoutMs: 30_000, context: seen });
    expect(ack.entity.attributes).toMatchObject({ acknowledged: true, acknowledges: [{ message: 'Looking into it', action: '6' }] });

    await zabbix.send('sync-host', 'test.value', '2');
    const gone = await waitFor('the delete', () => events.find((e) => e.entity.key === problem.entity.key && e.action === 'delete'), { timeoutMs: 30_000, context: seen });
    expect(gone.entity.key).toBe(problem.entity.key);
    expect(sync.health().zbx?.status).toBe('up');
  }, 120_000);
});
