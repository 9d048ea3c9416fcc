import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject, defer } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { type BaselineState, applyObservation, emptyBaseline, indexedBaseline } from '../../operators/diffAgainstBaseline.js';
import { toEntity } from '../../operators/normalizeEntity.js';
import { createBaselineLookup } from '../../src/hub/kept.js';
import { type BaselineLookup, Kept } from '../../src/kept.js';
import type { EntityDraft, EntityEvent, Observation, SnapshotObservation } from '../../src/model.js';
import { type EntityScope, entityScope } from '../../src/scope.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { type Synchronizer, type SynchronizerOptions, createSynchronizer } from '../../src/synchronizer.js';
import { t } from '../support/entities.js';
import { waitFor } from '../support/wait.js';

const NOW = () => Date.parse(t(1000));

/** A snapshot of `source` as normalizeEntity makes it. */
function poll(at: string, drafts: EntityDraft[], extra: Partial<SnapshotObservation> = {}, source = 'nova', scope?: EntityScope): SnapshotObservation {
  const types = extra.types ?? ['nova.instance'];
  return {
    kind: 'snapshot',
    source,
    at,
    types,
    records: drafts.map((d) => toEntity(d, source, at, true, false, scope)),
    ...(scope !== undefined ? { scope: scope.name } : {}),
    ...extra,
  };
}

const vm = (id: string, state = 'ACTIVE'): EntityDraft => ({ type: 'nova.instance', id, state });

/** The baseline's reducer with one source's lookup told of its snapshots, as the hub's scan does. */
function reducer(name = 'nova', scope?: EntityScope) {
  let state: BaselineState = indexedBaseline(emptyBaseline());
  const lookup = createBaselineLookup(name, scope, () => state);
  const apply = (o: Observation): void => {
    const step = applyObservation(state, o, { now: NOW });
    if (o.kind === 'snapshot' && o.source === name) lookup.applied(step);
    state = step.state;
  };
  return { lookup, apply, state: () => state };
}

describe('the hub’s baseline lookup (src/hub/kept.ts)', () => {
  it('says the generation of the source’s last snapshot applied, and vouches for its settled entities with the baseline’s own object', () => {
    const { lookup, apply, state } = reducer();
    expect(lookup.base()).toBeUndefined();
    expect(lookup.kept('nova.instance', 'a', 1)).toBeUndefined();
    apply(poll(t(10), [vm('a'), vm('b')], { generation: 7 }));
    expect(lookup.base()).toBe(7);
    const kept = lookup.kept('nova.instance', 'a', 7);
    expect(kept).toBeInstanceOf(Kept);
    expect(kept!.entity).toBe(state().entities.get('nova.instance:a')!.entity);
    // Another base than the last applied (a stale poll's), an id it does not hold, another type.
    expect(lookup.kept('nova.instance', 'a', 6)).toBeUndefined();
    expect(lookup.kept('nova.instance', 'zz', 7)).toBeUndefined();
    expect(lookup.kept('nova.host', 'a', 7)).toBeUndefined();
  });

  it('forgets the base at a snapshot of the source without a generation, one older than the one before, and at a reset', () => {
    const { lookup, apply } = reducer();
    apply(poll(t(10), [vm('a')], { generation: 7 }));
    apply(poll(t(20), [vm('a')]));
    expect(lookup.base()).toBeUndefined();
    expect(lookup.kept('nova.instance', 'a', 7)).toBeUndefined();
    apply(poll(t(30), [vm('a')], { generation: 8 }));
    expect(lookup.base()).toBe(8);
    // A clock set back: this snapshot leaves what the one of t(30) vouches for as newer (rule 4).
    apply(poll(t(25), [vm('a', 'SHUTOFF')], { generation: 9 }));
    expect(lookup.base()).toBeUndefined();
    apply(poll(t(40), [vm('a')], { generation: 10 }));
    expect(lookup.base()).toBe(10);
    lookup.reset();
    expect(lookup.base()).toBeUndefined();
    expect(lookup.kept('nova.instance', 'a', 10)).toBeUndefined();
  });

  it('forgets the base at a snapshot older than an earlier one of any of its types, though the first of another', () => {
    const { lookup, apply } = reducer();
    apply(poll(t(30), [vm('a')], { generation: 1 }));
    expect(lookup.base()).toBe(1);
    // nova.host is first synced by this snapshot; nova.instance was synced at t(30), later: a
    // clock set back for it, whose record of a (SHUTOFF) the baseline leaves alone (rule 4).
    apply(poll(t(20), [vm('a', 'SHUTOFF'), { type: 'nova.host', id: 'h', state: 'UP' }], { types: ['nova.instance', 'nova.host'], generation: 2 }));
    expect(lookup.base()).toBeUndefined();
    expect(lookup.kept('nova.instance', 'a', 2)).toBeUndefined();
    expect(lookup.kept('nova.host', 'h', 2)).toBeUndefined();
  });

  it('refuses an entry a notification wrote since (unsettled), one the last snapshot missed, one it kept as invalid, and one of a type it was not about', () => {
    const { lookup, apply } = reducer();
    apply(poll(t(5), [{ type: 'nova.host', id: 'h', state: 'UP' }], { types: ['nova.host'], generation: 1 }));
    apply(poll(t(10), [vm('a'), vm('b'), vm('c'), vm('d')], { generation: 2 }));
    // b missed once (two misses delete it), c kept as it was (its record was invalid).
    apply(poll(t(20), [vm('a'), vm('d')], { generation: 3, missesBeforeDelete: 2, keep: ['nova.instance:c'] }));
    // Unchanged in meaning, yet written by a notification since: no longer as a snapshot left it.
    apply({ kind: 'change', source: 'bus', action: 'upsert', at: t(25), record: toEntity(vm('a'), 'bus', t(25)) });
    expect(lookup.base()).toBe(3);
    expect(lookup.kept('nova.instance', 'a', 3)).toBeUndefined();
    expect(lookup.kept('nova.instance', 'b', 3)).toBeUndefined();
    expect(lookup.kept('nova.instance', 'c', 3)).toBeUndefined();
    expect(lookup.kept('nova.instance', 'd', 3)?.entity.id).toBe('d');
    // Settled, this source's, but the base snapshot was not about nova.host.
    expect(lookup.kept('nova.host', 'h', 3)).toBeUndefined();
  });

  it('qualifies a local type’s id by the scope, and refuses an entity of another source or another scope', () => {
    const a = entityScope('a');
    const { lookup, apply } = reducer('nova', a);
    const host = { type: 'nova.host', id: 'h1', state: 'UP' };
    // The same source name in another scope (a config changed), newer: left alone by the base.
    apply(poll(t(30), [vm('x')], {}, 'nova', entityScope('b')));
    apply(poll(t(10), [vm('x'), vm('y'), host], { types: ['nova.instance', 'nova.host'], generation: 4 }, 'nova', a));
    expect(lookup.base()).toBe(4);
    expect(lookup.kept('nova.host', 'h1', 4)?.entity.key).toBe('nova.host:a/h1');
    expect(lookup.kept('nova.instance', 'x', 4)).toBeUndefined();
    // Another source writes y (in the hub, one whose type this source took over: a config changed): not this source's.
    apply(poll(t(40), [vm('y', 'SHUTOFF')], {}, 'other', a));
    expect(lookup.base()).toBe(4);
    expect(lookup.kept('nova.instance', 'y', 4)).toBeUndefined();
  });
});

// ——— In the hub ———

const dirs: string[] = [];
const closing: Synchronizer[] = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface TestSource extends Source<unknown> {
  lookup: BaselineLookup | undefined;
  /** Whether the lookup was lent when the hub subscribed. */
  lentFirst: boolean | undefined;
}

/** A hand-fed poll source that keeps unchanged records (it implements useBaseline). */
function keeping(name: string, signal$: Subject<SourceSignal<unknown>>, types = ['nova.instance']): TestSource {
  const s: TestSource = {
    name,
    types,
    lookup: undefined,
    lentFirst: undefined,
    signal$: defer(() => {
      s.lentFirst = s.lookup !== undefined;
      return signal$;
    }),
    map: (r) => r as EntityDraft,
    useBaseline(lookup) {
      s.lookup = lookup;
    },
  };
  return s;
}

function hub(sources: Source<unknown>[], options: Omit<SynchronizerOptions, 'sources'> = {}) {
  const sync = createSynchronizer({ sources, ...options });
  closing.push(sync);
  const events: EntityEvent[] = [];
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
  const stepped = (name: string, n: number): Promise<unknown> => waitFor(`${n} observations of ${name}`, () => (sync.metrics().observations[name] ?? 0) >= n);
  return { sync, events, stepped };
}

const raw = (at: string, records: (EntityDraft | Kept)[], extra: Partial<SnapshotObservation<EntityDraft | Kept>> = {}): SnapshotObservation<EntityDraft | Kept> => ({
  kind: 'snapshot',
  source: 'nova',
  at,
  types: ['nova.instance'],
  records,
  ...extra,
});

describe('the hub lends the baseline to the sources that keep records', () => {
  it('lends it before subscribing, notes the snapshots it applies and not one it refuses (rule 7)', async () => {
    const owner$ = new Subject<SourceSignal<unknown>>();
    const nova$ = new Subject<SourceSignal<unknown>>();
    const nova = keeping('nova', nova$, ['nova.instance', 'nova.host']);
    const { sync, stepped } = hub([{ name: 'owner', types: ['nova.host'], signal$: owner$, map: (r) => r as EntityDraft }, nova]);
    expect(nova.lentFirst).toBe(true);
    owner$.next({ kind: 'snapshot', source: 'owner', at: t(0), types: ['nova.host'], records: [{ type: 'nova.host', id: 'h', state: 'UP' }] });
    await stepped('owner', 1);
    nova$.next(raw(t(1), [vm('a')], { generation: 1 }));
    await stepped('nova', 1);
    expect(nova.lookup!.base()).toBe(1);
    let refused = false;
    nova$.next(raw(t(2), [vm('a')], { types: ['nova.instance', 'nova.host'], generation: 2, settle: (s) => void (refused = !s.ok) }));
    await waitFor('the refusal', () => refused);
    expect(nova.lookup!.base()).toBe(1);
    expect(nova.lookup!.kept('nova.instance', 'a', 1)?.entity).toBe(sync.snapshot(['nova.instance'])[0]);
    // Stopped: nothing to vouch for; started again: not until the source's next snapshot.
    sync.stop();
    expect(nova.lookup!.base()).toBeUndefined();
    expect(nova.lookup!.kept('nova.instance', 'a', 1)).toBeUndefined();
    sync.start();
    expect(nova.lookup!.base()).toBeUndefined();
  });

  it('lends nothing with keepRaw: a kept record has no raw of its own', () => {
    const nova = keeping('nova', new Subject());
    hub([nova], { keepRaw: true });
    expect(nova.lookup).toBeUndefined();
    expect(nova.lentFirst).toBe(false);
  });

  it('vouches for nothing after a restore, though the stored entries are settled', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sync-kept-'));
    dirs.push(dir);
    const first$ = new Subject<SourceSignal<unknown>>();
    const first = keeping('nova', first$);
    const one = hub([first], { state: { dir } });
    first$.next(raw(t(0), [vm('a')], { generation: 1 }));
    await stepped(one, 'nova');
    expect(first.lookup!.kept('nova.instance', 'a', 1)).toBeDefined();
    await one.sync.drain();
    await one.sync.close();
    const second = keeping('nova', new Subject());
    const two = hub([second], { state: { dir } });
    expect(two.sync.snapshot()).toHaveLength(1);
    expect(second.lookup!.base()).toBeUndefined();
    expect(second.lookup!.kept('nova.instance', 'a', 1)).toBeUndefined();
  });

  it('steps a kept record as the record it stands for: restamped where it is written (a late notification changed it), in a copy with inactive types too', async () => {
    /** The events of a run whose second poll keeps what the lookup vouches for (`keep`), or maps every record. */
    const run = async (keep: boolean): Promise<string[]> => {
      const nova$ = new Subject<SourceSignal<unknown>>();
      const bus$ = new Subject<SourceSignal<unknown>>();
      const nova = keeping('nova', nova$, ['nova.instance', 'nova.host']);
      const h = hub([nova, { name: 'bus', types: ['nova.instance'], signal$: bus$, map: (r) => r as EntityDraft }], { types: ['nova.instance'] });
      const types = ['nova.instance', 'nova.host'];
      nova$.next(raw(t(0), [vm('a'), vm('b'), vm('c'), vm('d')], { types, generation: 1 }));
      await h.stepped('nova', 1);
      const elements = [vm('a'), vm('b', 'SHUTOFF'), vm('c'), vm('d')];
      const records = elements.map((e) => (keep && e.state === 'ACTIVE' ? (nova.lookup!.kept(e.type, e.id, 1) ?? e) : e));
      if (keep) expect(records.filter((r) => r instanceof Kept)).toHaveLength(3);
      // After the lookup, before the step: an older notification changes c (the poll wins), a newer one d (it stays).
      bus$.next({ kind: 'change', source: 'bus', action: 'upsert', at: t(5), record: vm('c', 'ERROR') });
      bus$.next({ kind: 'change', source: 'bus', action: 'upsert', at: t(20), record: vm('d', 'ERROR') });
      await h.stepped('bus', 2);
      nova$.next(raw(t(10), records, { types, generation: 2 }));
      await h.stepped('nova', 2);
      const held = h.sync.snapshot().map((e) => JSON.stringify(e));
      return [...h.events.map((e) => `${e.action} ${e.origin} ${JSON.stringify(e.entity)} ${e.changed?.join(',') ?? ''}`), ...held.sort()];
    };
    const mapped = await run(false);
    expect(mapped).toContain(`update snapshot ${JSON.stringify(toEntity(vm('c'), 'nova', t(10)))} state`);
    expect(await run(true)).toEqual(mapped);
  });
});

async function stepped(h: ReturnType<typeof hub>, name: string): Promise<void> {
  await h.stepped(name, 1);
}
