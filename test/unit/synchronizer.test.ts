import { type Observable, Subject, asyncScheduler, map } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ofType } from '../../operators/ofType.js';
import type { Entity, EntityDraft, EntityEvent, Settlement } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { type SyncItem, createSynchronizer } from '../../src/synchronizer.js';
import { entity, snapshot, t, upsert } from '../support/entities.js';
import { marbles } from '../support/marbles.js';

/** A source whose records are already entities (the mapping passes them through). */
function sourceOf(name: string, signal$: Observable<SourceSignal<Entity>>, types = ['nova.instance', 'nova.host']): Source<unknown> {
  return { name, types, signal$, map: (r) => r as EntityDraft } as Source<unknown>;
}

const brief = (i: SyncItem): string =>
  i.kind === 'replay' ? `r:${i.entity.id}` : i.kind === 'synced' ? `s${i.count}` : i.kind === 'event' ? `${i.event.action}:${i.event.entity.id}` : `resync${i.dropped}`;

const briefEvent = (e: EntityEvent): string => `${e.action}:${e.entity.id}`;

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('createSynchronizer', () => {
  it(
    'entities$ replays the current state, marks synced, then follows the changes — no gap, no duplicate',
    marbles((m) => {
      const source$ = m.hot<SourceSignal<Entity>>('-a-------b---c', {
        a: snapshot(t(0), [entity('x'), entity('y')]),
        b: upsert(t(1), entity('z')),
        c: snapshot(t(2), [entity('x'), entity('z')]),
      });
      const sync = createSynchronizer({ sources: [sourceOf('nova', source$)], scheduler: m.scheduler });
      sync.start();
      const values = { x: 'r:x', y: 'r:y', s: 's2', z: 'create:z', d: 'delete:y' };
      m.expect(sync.entities$().pipe(mapBrief), '---^').toBeObservable('---(xys)-z---d', values);
      m.expect(sync.entity$.pipe(mapEvent)).toBeObservable('-(pq)----b---d', { p: 'create:x', q: 'create:y', b: 'create:z', d: 'delete:y' });
    }),
  );

  it('entities$ subscribed in the middle of a step gets that step once, in the replay', () => {
    const source$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', source$)] });
    sync.start();
    const late: string[] = [];
    const first = sync.entity$.subscribe(() => {
      first.unsubscribe();
      sync.entities$().subscribe((i) => late.push(brief(i)));
    });
    source$.next(snapshot(t(0), [entity('a'), entity('b'), entity('c')]));
    source$.next(upsert(t(1), entity('d')));
    expect(late).toEqual(['r:a', 'r:b', 'r:c', 's3', 'create:d']);
    expect(sync.snapshot().map((e) => e.id)).toEqual(['a', 'b', 'c', 'd']);
  });

  it(
    'retries a failing source with backoff and reports its health, while the other sources go on',
    marbles((m) => {
      const failing = m.cold<SourceSignal<Entity>>('-#', {}, new Error('connection refused'));
      const healthy = m.hot<SourceSignal<Entity>>('---a----b', {
        a: snapshot(t(0), [entity('h1', 'UP', { type: 'nova.host' })], ['nova.host']),
        b: snapshot(t(1), [], ['nova.host']),
      });
      const sync = createSynchronizer({
        sources: [sourceOf('bus', failing), sourceOf('nova', healthy)],
        retry: { initialMs: 3, factor: 2, random: () => 0 },
        scheduler: m.scheduler,
      });
      sync.start();
      m.scheduler.schedule(() => sync.stop(), 30); // a failing source is retried for ever
      // bus fails at 1, retried at 4 (fails at 5), at 11 (fails at 12), at 24…
      m.expect(failing).toHaveSubscriptions(['^!', '----^!', '-----------^!', '------------------------^!']);
      m.expect(sync.entity$.pipe(mapEvent), '^ 29ms !').toBeObservable('---c----d', { c: 'create:h1', d: 'delete:h1' });
      const downs: unknown[] = [];
      sync.health$.subscribe((h) => h.bus?.status === 'down' && downs.push({ error: h.bus.error, failures: h.bus.failures, retryInMs: h.bus.retryInMs }));
      m.flush();
      expect(downs).toEqual([
        { error: 'connection refused', failures: 1, retryInMs: 3 },
        { error: 'connection refused', failures: 2, retryInMs: 6 },
        { error: 'connection refused', failures: 3, retryInMs: 12 },
        { error: 'connection refused', failures: 4, retryInMs: 24 },
      ]);
      const health = sync.health();
      expect(health.bus).toMatchObject({ status: 'stopped', failures: 4 });
      expect(health.nova).toMatchObject({ status: 'stopped', failures: 0 });
    }),
  );

  it('drops inactive types at the door and settles an observation only after its events reached subscribers', () => {
    const source$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', source$)], types: ['nova.instance'] });
    const log: string[] = [];
    sync.entity$.subscribe((e) => log.push(briefEvent(e)));
    sync.start();
    const settle = (s: Settlement) => log.push(`settled:${s.ok}`);
    source$.next({ ...snapshot(t(0), [entity('a'), entity('h', 'UP', { type: 'nova.host' })], ['nova.instance', 'nova.host']), settle });
    source$.next({ ...upsert(t(1), entity('h2', 'UP', { type: 'nova.host' })), settle });
    source$.next({ ...upsert(t(2), entity('b')), settle });
    expect(log).toEqual(['create:a', 'settled:true', 'settled:true', 'create:b', 'settled:true']);
    expect(sync.snapshot(['nova.host'])).toEqual([]);
    expect(sync.metrics()).toMatchObject({ entities: 2, events: { create: 2, update: 0, delete: 0 }, observations: { nova: 2 } });
  });

  it('register() runs callbacks asynchronously: a slow or throwing consumer blocks neither the pipeline nor the others', async () => {
    const source$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', source$)] });
    sync.start();
    const fast: string[] = [];
    const slow: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    sync.register(['nova.instance'], (item) => void fast.push(brief(item)));
    sync.register(['nova.instance'], async (item) => {
      slow.push(brief(item));
      await gate;
    });
    sync.register(undefined, () => {
      throw new Error('consumer bug');
    });
    source$.next(snapshot(t(0), [entity('a')]));
    source$.next(upsert(t(1), entity('b')));
    expect(fast).toEqual([]); // never called from inside the pipeline
    await nextTick();
    await nextTick();
    expect(fast).toEqual(['s0', 'create:a', 'create:b']);
    expect(slow).toEqual(['s0']); // still busy with its first item
    release();
    await nextTick();
    expect(slow).toEqual(['s0', 'create:a', 'create:b']);
    expect(sync.metrics().callbackErrors).toBe(3);
  });

  it('register() resynchronises a consumer that falls more than its buffer behind, instead of growing memory', async () => {
    const source$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', source$)], bufferSize: 3 });
    sync.start();
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handle = sync.register(['nova.instance'], async (item) => {
      seen.push(brief(item));
      await gate;
    });
    await nextTick(); // the consumer is now stuck on its `synced` marker
    for (const id of ['a', 'b', 'c', 'd', 'e']) source$.next(upsert(t(1), entity(id)));
    release();
    for (let i = 0; i < 5; i++) await nextTick();
    // The backlog is dropped; the fresh replay holds everything, including what came after.
    expect(seen).toEqual(['s0', 'resync4', 'r:a', 'r:b', 'r:c', 'r:d', 'r:e', 's5']);
    expect(sync.metrics().resyncs).toBe(1);
    source$.next(upsert(t(2), entity('f')));
    await nextTick();
    expect(seen.at(-1)).toBe('create:f');
    handle.unsubscribe();
    source$.next(upsert(t(3), entity('g')));
    await nextTick();
    expect(seen.at(-1)).toBe('create:f');
  });

  it('refuses two sources with the same name', () => {
    const s = sourceOf('nova', new Subject());
    expect(() => createSynchronizer({ sources: [s, s], scheduler: asyncScheduler })).toThrow(/two sources are named "nova"/);
  });

  it('refuses the snapshots of a second source of the same type, instead of letting the two delete each other\'s entities', () => {
    const one$ = new Subject<SourceSignal<Entity>>();
    const two$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('region-one', one$), sourceOf('region-two', two$)] });
    const seen: string[] = [];
    sync.entity$.subscribe((e) => seen.push(`${e.action}:${e.entity.id}`));
    sync.start();
    one$.next({ kind: 'health', status: 'up' });
    one$.next(snapshot(t(0), [entity('a')]));
    two$.next({ kind: 'health', status: 'up' });
    two$.next(snapshot(t(1), [entity('b')]));
    one$.next(snapshot(t(2), [entity('a'), entity('c')]));
    expect(seen).toEqual(['create:a', 'create:c']);
    expect(sync.health()['region-one']!.status).toBe('up');
    expect(sync.health()['region-two']).toMatchObject({
      status: 'down',
      error: expect.stringMatching(/region-two and region-one both send complete snapshots of nova\.instance.*refused/),
    });
    // Changes of that type from any source still apply: notifications go with a poll source.
    two$.next(upsert(t(3), entity('d')));
    expect(seen.at(-1)).toBe('create:d');
  });

  it('takes the snapshots of two sources of the same type in two scopes: each complete within its own, local ids qualified', () => {
    const one$ = new Subject<SourceSignal<Entity>>();
    const two$ = new Subject<SourceSignal<Entity>>();
    const also$ = new Subject<SourceSignal<Entity>>();
    const scoped = (name: string, signal$: Subject<SourceSignal<Entity>>, scope: string): Source<unknown> => ({ ...sourceOf(name, signal$), scope });
    const sync = createSynchronizer({ sources: [scoped('nova-a', one$, 'a'), scoped('nova-b', two$, 'b'), scoped('nova-a2', also$, 'a')] });
    const seen: string[] = [];
    sync.entity$.subscribe((e) => seen.push(`${e.action}:${e.entity.key}${e.entity.parents.map((p) => `>${p.id}`).join('')}`));
    sync.start();
    const onHost = (id: string): Entity => entity(id, 'ACTIVE', { parents: [{ type: 'nova.host', id: 'compute-01' }] });
    const host = entity('compute-01', 'UP', { type: 'nova.host' });
    one$.next(snapshot(t(0), [onHost('i1'), host], ['nova.instance', 'nova.host']));
    two$.next(snapshot(t(1), [onHost('i2'), host], ['nova.instance', 'nova.host']));
    expect(seen).toEqual([
      'create:nova.instance:i1>a/compute-01',
      'create:nova.host:a/compute-01',
      'create:nova.instance:i2>b/compute-01',
      'create:nova.host:b/compute-01',
    ]);
    // Cloud a loses everything: b's instance and host stay.
    one$.next(snapshot(t(2), [], ['nova.instance', 'nova.host']));
    expect(seen.slice(4)).toEqual(['delete:nova.host:a/compute-01', 'delete:nova.instance:i1>a/compute-01']);
    expect(sync.snapshot().map((e) => e.key).sort()).toEqual(['nova.host:b/compute-01', 'nova.instance:i2']);
    expect([sync.health()['nova-a']!.status, sync.health()['nova-b']!.status]).not.toContain('down');
    // A second poll source in the same scope is refused, as without scopes.
    also$.next(snapshot(t(3), [onHost('i3')], ['nova.instance']));
    expect(() => createSynchronizer({ sources: [scoped('x', new Subject(), 'a/b')] })).toThrow(/source "x": a scope is 1 to 63 letters/);
    expect(sync.health()['nova-a2']).toMatchObject({ status: 'down', error: expect.stringMatching(/nova-a2 and nova-a both send complete snapshots of nova\.instance in scope a/) });
  });

  it('composes with ofType on entity$', () => {
    const source$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', source$)] });
    const hosts: string[] = [];
    sync.entity$.pipe(ofType('nova.host')).subscribe((e) => hosts.push(e.entity.id));
    sync.start();
    source$.next(snapshot(t(0), [entity('a'), entity('h1', 'UP', { type: 'nova.host' })], ['nova.instance', 'nova.host']));
    expect(hosts).toEqual(['h1']);
  });
});

const mapBrief = map(brief);
const mapEvent = map(briefEvent);
