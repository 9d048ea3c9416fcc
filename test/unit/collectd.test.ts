import { afterEach, describe, expect, it } from 'vitest';
import { collectdAlarmId, collectdDraft, parseCollectdPost } from '../../sources/collectd.js';
import { readFixture } from '../support/fixtures.js';
import { type PushTarget, startPushSource } from '../support/push.js';

/** The body of one recorded write_http POST. */
const recorded = (file: string): unknown => readFixture<{ body: unknown }>('wire', 'collectd', 'write_http', file).body;

let target: PushTarget | undefined;
afterEach(() => {
  target?.stop();
  target = undefined;
});

describe('collectd write_http notifications (recorded from collectd 5.12)', () => {
  it('maps a FAILURE to an alarm keyed by its labels without severity', () => {
    const [failure] = parseCollectdPost(recorded('02-FAILURE.post.json'));
    expect(failure!.severity).toBe('FAILURE');
    expect(collectdAlarmId(failure!.labels)).toBe('collectd-demo/exec_gauge/exec=demo,type=value');
    expect(collectdDraft(failure!, [{ label: 'instance', type: 'nova.host' }])).toMatchObject({
      type: 'collectd.alarm',
      id: 'collectd-demo/exec_gauge/exec=demo,type=value',
      name: 'collectd_exec_gauge',
      state: 'FAILURE',
      parents: [{ type: 'nova.host', id: 'collectd-demo' }],
      attributes: {
        host: 'collectd-demo',
        dataSource: 'value',
        currentValue: '7',
        warningMax: '3',
        failureMax: '5',
        since: '2026-11-30T03:01:31.045Z',
        labels: { alertname: 'collectd_exec_gauge', instance: 'collectd-demo', exec: 'demo', type: 'value', service: 'collectd' },
      },
    });
    // "nan" bounds are unset, not values.
    expect(collectdDraft(failure!).attributes).not.toHaveProperty('warningMin');
  });

  it('an OKAY names the same alarm as the FAILURE and WARNING before it', () => {
    const ids = ['01-OKAY', '02-FAILURE', '03-WARNING', '04-OKAY'].map((f) => collectdAlarmId(parseCollectdPost(recorded(`${f}.post.json`))[0]!.labels));
    expect(new Set(ids).size).toBe(1);
  });

  it('refuses what is not a notification, naming the field', () => {
    const [n] = recorded('02-FAILURE.post.json') as Record<string, Record<string, unknown>>[];
    expect(() => parseCollectdPost([{ ...n, labels: { ...n!.labels, severity: 'ERROR' } }])).toThrow('[0].labels.severity: expected FAILURE, WARNING or OKAY, got "ERROR"');
    expect(() => parseCollectdPost([n, { ...n, startsAt: 'yesterday' }])).toThrow('[1].startsAt: expected a date-time, got "yesterday"');
    expect(() => parseCollectdPost(['PUTNOTIF severity=failure'])).toThrow(/\[0\]: expected a collectd notification object/);
  });
});

describe('use: collectd (the recorded posts, replayed over HTTP)', () => {
  it('OKAY at start: nothing; FAILURE: create; WARNING: update; OKAY: delete', async () => {
    const t = (target = await startPushSource('collectd', '/collectd', { attach: [{ label: 'instance', type: 'nova.host' }] }));
    for (const f of ['01-OKAY', '02-FAILURE', '03-WARNING', '04-OKAY']) {
      const res = await t.post(recorded(`${f}.post.json`), { headers: { 'user-agent': 'collectd/5.12.0.git' } });
      expect(res.status, f).toBe(200);
    }
    expect(t.events.map((e) => `${e.action} ${e.entity.state}`)).toEqual(['create FAILURE', 'update WARNING', 'delete WARNING']);
    expect(t.events[1]!.changed).toEqual(expect.arrayContaining(['state', 'attributes.currentValue']));
    expect(t.events[0]!.entity.key).toBe('collectd.alarm:collectd-demo/exec_gauge/exec=demo,type=value');
  });
});
