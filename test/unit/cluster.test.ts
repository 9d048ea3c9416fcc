import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { type ClusterEvent, INSTANCE_HEADER, OBSERVED_AT_HEADER, applyClusterEvent, emptyClusterView, leasedSource, readClusterEvent } from '../../src/cluster/index.js';
import { parseConfig } from '../../src/config.js';
import type { Entity, EntityEvent, Observation } from '../../src/model.js';
import { ConfigError } from '../../src/options.js';
import { eventLine } from '../../src/sinks/stdout.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { entity, snapshot, t } from '../support/entities.js';
import { marbles } from '../support/marbles.js';

const ev = (action: ClusterEvent['action'], e: Entity, observedAt: string, instance = 'a'): ClusterEvent => ({ action, entity: e, instance, observedAt });

describe('applyClusterEvent (the consumer rule for the cluster stream)', () => {
  it('applies changes in observation order and drops a stale one from the old owner of a handover', () => {
    const view = emptyClusterView();
    expect(applyClusterEvent(view, ev('create', entity('x', 'ACTIVE'), t(1), 'old'))).toEqual({ applied: true });
    expect(applyClusterEvent(view, ev('update', entity('x', 'SHUTOFF'), t(3), 'new'))).toEqual({ applied: true });
    // The old owner's last poll started before the new owner's: older news, whatever the arrival order.
    expect(applyClusterEvent(view, ev('update', entity('x', 'ERROR'), t(2), 'old'))).toEqual({ applied: false, reason: 'stale' });
    expect(view.entities.get('nova.instance:x')?.state).toBe('SHUTOFF');
  });

  it('drops a duplicate (same time, same meaning) and takes a same-time different state in stream order', () => {
    const view = emptyClusterView();
    applyClusterEvent(view, ev('create', entity('x'), t(1), 'a'));
    expect(applyClusterEvent(view, ev('replay', entity('x'), t(1), 'b'))).toEqual({ applied: false, reason: 'duplicate' });
    expect(applyClusterEvent(view, ev('update', entity('x', 'ERROR'), t(1), 'b'))).toEqual({ applied: true });
    expect(view.entities.get('nova.instance:x')?.state).toBe('ERROR');
  });

  it('keeps a deleted entity deleted against a late older create, and lets a newer one bring it back', () => {
    const view = emptyClusterView();
    applyClusterEvent(view, ev('create', entity('x'), t(1)));
    expect(applyClusterEvent(view, ev('delete', entity('x'), t(5)))).toEqual({ applied: true });
    expect(applyClusterEvent(view, ev('create', entity('x'), t(4), 'b'))).toEqual({ applied: false, reason: 'stale' });
    expect(applyClusterEvent(view, ev('delete', entity('x'), t(5), 'b'))).toEqual({ applied: false, reason: 'duplicate' });
    expect(view.entities.has('nova.instance:x')).toBe(false);
    expect(applyClusterEvent(view, ev('create', entity('x'), t(6)))).toEqual({ applied: true });
    expect(view.entities.has('nova.instance:x')).toBe(true);
  });

  it('reads a message of the exchange: event lines and replay items with their headers, nothing else', () => {
    const e = entity('x', 'ACTIVE', {}, t(1));
    const line = eventLine({ action: 'delete', origin: 'snapshot', entity: e, hash: 'h' } as EntityEvent).slice(0, -1);
    expect(readClusterEvent(Buffer.from(line), { [INSTANCE_HEADER]: 'i1', [OBSERVED_AT_HEADER]: t(9) })).toMatchObject({ action: 'delete', instance: 'i1', observedAt: t(9), entity: { key: e.key } });
    // Without the headers (a message of an older publisher): the entity's own time, no instance.
    expect(readClusterEvent(JSON.stringify({ kind: 'replay', entity: e }), undefined)).toMatchObject({ action: 'replay', instance: '', observedAt: t(1) });
    expect(readClusterEvent('{"kind":"synced","count":3}', {})).toBeUndefined();
    expect(readClusterEvent('not json', {})).toBeUndefined();
    expect(readClusterEvent(JSON.stringify({ action: 'explode', entity: e }), {})).toBeUndefined();
  });
});

describe('leasedSource', () => {
  it(
    'runs the source only while the lease is held, and stops it the moment the lease is lost',
    marbles((m) => {
      const values = { f: false, t: true };
      const held$ = m.hot('f--t-----f--t--', values);
      const inner = m.cold<SourceSignal<Entity>>('-a-b-c-', { a: snapshot(t(0), []), b: snapshot(t(1), []), c: snapshot(t(2), []) });
      const source: Source<Entity> = { name: 'nova', types: ['nova.instance'], signal$: inner, map: (r) => r };
      const up = { kind: 'health', status: 'up' };
      m.expect(leasedSource(source, held$).signal$).toBeObservable('u---a-b-cu---a-b-c', { u: up, a: snapshot(t(0), []), b: snapshot(t(1), []), c: snapshot(t(2), []) } as never);
      m.expect(inner).toHaveSubscriptions(['---^-----!', '------------^']);
    }),
  );
});

describe('the cluster: config', () => {
  const base = { sources: [{ name: 's', use: 'static', file: 'x.yaml' }] };
  const refused = async (cluster: unknown): Promise<string> => {
    try {
      await parseConfig({ ...base, cluster }, '/tmp');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error('accepted');
  };

  it('reads the block with its defaults', async () => {
    const c = (await parseConfig({ ...base, cluster: { transportUrl: 'rabbit://u:p@127.0.0.1:5672/' } }, '/tmp')).cluster!;
    expect(c).toMatchObject({ name: 'synchronizer', exchange: 'synchronizer', heartbeatSeconds: 10, leaseRetryMs: 1000, everywhere: [], mirror: true, url: 'rabbit://u:***@127.0.0.1:5672/' });
    expect(c.instance).toMatch(/^.+-\d+$/);
  });

  it('refuses a bad field naming its path', async () => {
    expect(await refused({})).toMatch(/^cluster\.transportUrl: /);
    expect(await refused({ transportUrl: 'http://x/' })).toMatch(/^cluster\.transportUrl: unsupported scheme/);
    expect(await refused({ transportUrl: 'rabbit://h/', name: 'amq.x' })).toMatch(/^cluster\.name: /);
    expect(await refused({ transportUrl: 'rabbit://h/', instance: 'a b' })).toMatch(/^cluster\.instance: /);
    expect(await refused({ transportUrl: 'rabbit://h/', heartbeat: '1500ms' })).toMatch(/^cluster\.heartbeat: /);
    expect(await refused({ transportUrl: 'rabbit://h/', leaseRetry: '6s' })).toMatch(/^cluster\.leaseRetry: .*half the heartbeat/);
    expect(await refused({ transportUrl: 'rabbit://h/', everywhere: ['nope'] })).toMatch(/^cluster\.everywhere\[0\]: "nope" is not the name of a configured source/);
    expect(await refused({ transportUrl: 'rabbit://h/', leases: 3 })).toMatch(/^cluster\.leases: /);
  });
});

describe('the hub with a mirror', () => {
  it('folds the mirror into the baseline without events, so a later snapshot emits only real changes', () => {
    const source$ = new Subject<SourceSignal<Entity>>();
    const mirror$ = new Subject<Observation>();
    const settled: boolean[] = [];
    const sync = createSynchronizer({ sources: [{ name: 'nova', types: ['nova.instance'], signal$: source$, map: (r) => r as Entity }], mirror: mirror$ });
    const events: string[] = [];
    sync.entity$.subscribe((e) => events.push(`${e.action}:${e.entity.id}`));
    sync.start();
    for (const id of ['a', 'b', 'c']) {
      mirror$.next({ kind: 'change', source: 'cluster', action: 'upsert', at: t(1), record: entity(id, 'ACTIVE', {}, t(1), 'nova'), settle: (s) => settled.push(s.ok) });
    }
    expect(events).toEqual([]);
    expect(settled).toEqual([true, true, true]);
    expect(sync.snapshot().map((e) => e.id)).toEqual(['a', 'b', 'c']);
    source$.next(snapshot(t(2), [entity('a'), entity('b', 'SHUTOFF')]));
    expect(events).toEqual(['update:b', 'delete:c']);
  });
});
