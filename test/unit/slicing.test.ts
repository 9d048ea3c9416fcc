import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Subject, firstValueFrom, of, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { applyObservation, emptyBaseline, indexedBaseline } from '../../operators/diffAgainstBaseline.js';
import { SLICE_CHECK, type SliceOptions, normalizeEntity, toEntity } from '../../operators/normalizeEntity.js';
import { preparedInSlices, preparingAsNormalized } from '../../src/hub/slicing.js';
import { SLICE_MS, pauseForIo, setSliceMs } from '../../src/pause.js';
import type { Entity, EntityDraft, EntityEvent, Observation } from '../../src/model.js';
import type { Kept } from '../../src/kept.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { entity, snapshot, t, upsert } from '../support/entities.js';

/** Pauses that resume only when the test says so: what runs between two slices is then visible. */
function manualPauses(records: number): SliceOptions & { pending: number; resume(): void } {
  const waiting: (() => void)[] = [];
  return {
    records,
    pause: () => new Promise<void>((resolve) => waiting.push(resolve)),
    get pending() {
      return waiting.length;
    },
    resume() {
      waiting.shift()?.();
    },
  };
}

const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const drafts = (n: number): EntityDraft[] => Array.from({ length: n }, (_, i) => ({ type: 'nova.instance', id: `i${i}`, state: 'ACTIVE' }));

describe('normalizeEntity in slices', () => {
  it('normalizes a big snapshot slice by slice, and what follows it waits for it, in order', async () => {
    const slice = manualPauses(2);
    const input = new Subject<Observation<EntityDraft>>();
    const out: string[] = [];
    input.pipe(normalizeEntity((d: EntityDraft) => d, { slice })).subscribe((o) => out.push(o.kind === 'snapshot' ? `snapshot ${o.records.length}` : `change ${o.record.id}`));
    input.next({ kind: 'change', source: 's', action: 'upsert', at: t(0), record: { type: 'nova.instance', id: 'before', state: 'ACTIVE' } });
    input.next({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records: drafts(5) });
    input.next({ kind: 'change', source: 's', action: 'upsert', at: t(2), record: { type: 'nova.instance', id: 'after', state: 'ACTIVE' } });
    // The change before passed at once; the snapshot waits in its first pause, the change after behind it.
    expect(out).toEqual(['change before']);
    expect(slice.pending).toBe(1);
    slice.resume();
    await settled();
    expect(out).toEqual(['change before']);
    slice.resume();
    await settled();
    expect(out).toEqual(['change before', 'snapshot 5', 'change after']);
  });

  it('ends a slice once its time has passed, before its count of records', async () => {
    // A clock that each mapped record moves on by 1 ms: a slice of 5 ms ends at the first look
    // at it, after SLICE_CHECK records (100 of the 1,000 a slice may hold).
    let clock = 0;
    const slice = Object.assign(manualPauses(1000), { ms: 5, now: () => clock });
    let mapped = 0;
    of<Observation<EntityDraft>>({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records: drafts(1500) })
      .pipe(normalizeEntity((d: EntityDraft) => (mapped++, clock++, d), { slice }))
      .subscribe();
    expect(mapped).toBe(SLICE_CHECK);
    expect(slice.pending).toBe(1);
    slice.resume();
    await settled();
    expect(mapped).toBe(2 * SLICE_CHECK);
    // A slow clock: the count bounds the slice.
    clock = 0;
    mapped = 0;
    const counted = Object.assign(manualPauses(1000), { ms: 5, now: () => 0 });
    of<Observation<EntityDraft>>({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records: drafts(1500) })
      .pipe(normalizeEntity((d: EntityDraft) => (mapped++, d), { slice: counted }))
      .subscribe();
    expect(mapped).toBe(1000);
  });

  it('takes a snapshot no bigger than a slice at once, as without slices', () => {
    const slice = manualPauses(5);
    const out: Observation<Entity>[] = [];
    of<Observation<EntityDraft>>({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records: drafts(5) })
      .pipe(normalizeEntity((d: EntityDraft) => d, { slice }))
      .subscribe((o) => out.push(o));
    expect(out).toHaveLength(1);
    expect(slice.pending).toBe(0);
  });

  it('stops normalizing when unsubscribed between two slices', async () => {
    const slice = manualPauses(2);
    let mapped = 0;
    const subscription = of<Observation<EntityDraft>>({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records: drafts(6) })
      .pipe(normalizeEntity((d: EntityDraft) => (mapped++, d), { slice }))
      .subscribe();
    expect(mapped).toBe(2);
    subscription.unsubscribe();
    slice.resume();
    await settled();
    expect(mapped).toBe(2);
  });

  it("hands the stream an error thrown in a later slice (the caller's onInvalid), rather than losing it", async () => {
    const slice = manualPauses(2);
    const records = drafts(6);
    records[4] = { type: 'nova.instance', id: 'bad' } as EntityDraft;
    const failure = firstValueFrom(
      of<Observation<EntityDraft>>({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records }).pipe(
        normalizeEntity((d: EntityDraft) => d, {
          slice,
          onInvalid: (r) => {
            throw new Error(`refused: ${r.reason}`);
          },
        }),
        toArray(),
      ),
    );
    slice.resume();
    await settled();
    slice.resume();
    await expect(failure).rejects.toThrow(/refused: .*state/);
  });
});

describe('preparedInSlices', () => {
  it('holds a big snapshot until it is prepared, reading the baseline as it is at each slice', async () => {
    const slice = manualPauses(2);
    let state = applyObservation(emptyBaseline(), snapshot(t(0), [entity('a'), entity('b'), entity('c')])).state;
    const input = new Subject<Observation>();
    const out: Observation[] = [];
    input.pipe(preparedInSlices(() => state, slice)).subscribe((o) => out.push(o));
    const big = snapshot(t(10), [entity('a'), entity('b', 'SHUTOFF'), entity('d')]);
    input.next(big);
    expect(out).toEqual([]);
    // A change applied between two slices (as the hub applies another source's notifications).
    state = applyObservation(state, upsert(t(20), entity('d', 'ERROR'))).state;
    while (slice.pending > 0) {
      slice.resume();
      await settled();
    }
    expect(out).toEqual([big]);
    const step = applyObservation(state, big);
    // b changed; d was changed after the snapshot's request started (rule 4); c is gone.
    expect(step.events.map((e) => `${e.action} ${e.entity.id} ${e.entity.state}`)).toEqual(['update b SHUTOFF', 'delete c ACTIVE']);
  });

  it("prepares a first snapshot once the empty baseline is indexed (as the hub seeds it); a key a change created meanwhile stays the change's", async () => {
    const first = (): Observation => snapshot(t(10), [entity('a'), entity('b'), entity('c'), entity('d')]);
    // Without an index there is nothing to prepare against: the snapshot passes at once, whole.
    const unprepared: Observation[] = [];
    of(first()).pipe(preparedInSlices(() => emptyBaseline(), manualPauses(2))).subscribe((o) => unprepared.push(o));
    expect(unprepared).toHaveLength(1);

    const slice = manualPauses(2);
    let state = indexedBaseline(emptyBaseline());
    const input = new Subject<Observation>();
    const out: Observation[] = [];
    input.pipe(preparedInSlices(() => state, slice)).subscribe((o) => out.push(o));
    const big = first();
    input.next(big);
    expect(out).toEqual([]);
    state = applyObservation(state, upsert(t(20), entity('c', 'ERROR'))).state;
    while (slice.pending > 0) {
      slice.resume();
      await settled();
    }
    expect(out).toEqual([big]);
    const step = applyObservation(state, big);
    expect(step.events.map((e) => `${e.action} ${e.entity.id} ${e.entity.state}`)).toEqual(['create a ACTIVE', 'create b ACTIVE', 'create d ACTIVE']);
    expect([...step.state.entities.values()].map((v) => `${v.entity.id} ${v.entity.state} ${v.bySnapshot}`).sort()).toEqual(['a ACTIVE true', 'b ACTIVE true', 'c ERROR false', 'd ACTIVE true']);
  });

  it('ends a slice of the preparation at its time or at its count, whichever comes first', async () => {
    const pausesOf = async (ms: number | undefined, tick = 1, records = 1000, size = 1500): Promise<number> => {
      let clock = 0;
      // Each look at the clock finds `tick` ms more: with 1 ms a slice, its first look after a step ends it.
      const slice = Object.assign(manualPauses(records), ms !== undefined ? { ms } : {}, { now: () => (clock += tick) });
      const state = indexedBaseline(emptyBaseline());
      const out: Observation[] = [];
      of(snapshot(t(10), Array.from({ length: size }, (_, i) => entity(`i${i}`)))).pipe(preparedInSlices(() => state, slice)).subscribe((o) => out.push(o));
      let pauses = 0;
      while (slice.pending > 0) {
        pauses += 1;
        slice.resume();
        await settled();
      }
      expect(out).toHaveLength(1);
      return pauses;
    };
    // By count: 1,000 records in one slice, the rest and the (empty) index in another.
    expect(await pausesOf(undefined)).toBe(1);
    // By time: SLICE_CHECK records a slice, then the index.
    expect(await pausesOf(1)).toBe(1500 / SLICE_CHECK);
    // A clock that stands still: the count bounds the slice, as without a time.
    expect(await pausesOf(5, 0)).toBe(1);
    // Without a time, a slice reads its count exactly, not in steps of SLICE_CHECK: 1,000 records in 7 slices of 150 (200 a slice would take 5 pauses).
    expect(await pausesOf(undefined, 1, 150, 1000)).toBe(6);
  });

  it('passes changes and small snapshots at once', () => {
    const out: Observation[] = [];
    const small = snapshot(t(0), [entity('a')]);
    of<Observation[]>(upsert(t(0), entity('x')), small)
      .pipe(preparedInSlices(() => emptyBaseline(), manualPauses(2)))
      .subscribe((o) => out.push(o));
    expect(out.map((o) => o.kind)).toEqual(['change', 'snapshot']);
  });

  it('passes a snapshot of exactly a slice at once, unprepared, though the baseline has more to read than the slice', () => {
    // Three entries in the indexed baseline: preparing two records would also read them, past the slice.
    const state = indexedBaseline(applyObservation(indexedBaseline(emptyBaseline()), snapshot(t(0), [entity('a'), entity('b'), entity('c')])).state);
    const slice = manualPauses(2);
    const out: Observation[] = [];
    of<Observation[]>(snapshot(t(1), [entity('a'), entity('b')]))
      .pipe(preparedInSlices(() => state, slice))
      .subscribe((o) => out.push(o));
    expect(out).toHaveLength(1);
    expect(slice.pending).toBe(0);
  });

  it('stops preparing once unsubscribed between two slices', async () => {
    let reads = 0;
    const state = indexedBaseline(applyObservation(indexedBaseline(emptyBaseline()), snapshot(t(0), [entity('a'), entity('b'), entity('c')])).state);
    const slice = manualPauses(1);
    const out: Observation[] = [];
    const subscription = of<Observation[]>(snapshot(t(1), [entity('a'), entity('b'), entity('d')]))
      .pipe(
        preparedInSlices(() => {
          reads++;
          return state;
        }, slice),
      )
      .subscribe((o) => out.push(o));
    expect([reads, slice.pending]).toEqual([1, 1]);
    subscription.unsubscribe();
    slice.resume();
    await settled();
    expect([reads, slice.pending, out.length]).toEqual([1, 0, 0]);
  });

  it('hands the stream an error thrown while preparing a later slice', async () => {
    let reads = 0;
    const state = indexedBaseline(applyObservation(indexedBaseline(emptyBaseline()), snapshot(t(0), [entity('a'), entity('b'), entity('c')])).state);
    const slice = manualPauses(1);
    const errors: unknown[] = [];
    of<Observation[]>(snapshot(t(1), [entity('a'), entity('b'), entity('d')]))
      .pipe(
        preparedInSlices(() => {
          if (++reads === 2) throw new Error('baseline unreadable');
          return state;
        }, slice),
      )
      .subscribe({ error: (e: unknown) => errors.push(e) });
    slice.resume();
    await settled();
    expect(errors).toEqual([new Error('baseline unreadable')]);
  });
});

function sourceOf(name: string, signal$: Subject<SourceSignal<Entity>>): Source<unknown> {
  return { name, types: ['nova.instance'], signal$, map: (r) => r as EntityDraft } as Source<unknown>;
}

describe('the hub with a big snapshot', () => {
  it('applies a notification that arrives while a big snapshot is sliced before it, ordered by time as ever', async () => {
    const poll = new Subject<SourceSignal<Entity>>();
    const bus = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', poll), sourceOf('bus', bus)] });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    const n = 5000;
    const all = Array.from({ length: n }, (_, i) => entity(`i${i}`));
    const snapshots = (count: number): Promise<void> =>
      new Promise<void>((resolve) => {
        const check = (): void => (sync.metrics().observations.nova === count ? resolve() : void setImmediate(check));
        check();
      });
    poll.next({ ...snapshot(t(0), all), source: 'nova' });
    // Normalizing and preparing 5,000 records takes several slices: the snapshot is not in yet.
    expect(events).toHaveLength(0);
    await snapshots(1);
    expect(events).toHaveLength(n);
    // A notification newer than the next snapshot, and one older, both while it is being sliced.
    poll.next({ ...snapshot(t(10), all.map((e, i) => (i === 7 ? entity(e.id, 'SHUTOFF') : e))), source: 'nova' });
    bus.next(upsert(t(20), entity('i3', 'ERROR')));
    bus.next(upsert(t(5), entity('i7', 'PAUSED')));
    expect(events).toHaveLength(n + 2);
    await snapshots(2);
    const said = events.slice(n).map((e) => `${e.action} ${e.entity.id} ${e.entity.state} ${e.origin}`);
    // Both notifications went in while the second snapshot was being sliced, before its step:
    // i3 stays as the newer notification says; i7's older notification is overridden by the snapshot.
    expect(said).toEqual(['update i3 ERROR notification', 'update i7 PAUSED notification', 'update i7 SHUTOFF snapshot']);
    expect(sync.snapshot().find((e) => e.id === 'i3')?.state).toBe('ERROR');
    sync.stop();
  });

  it('drops the unchanged records of a big snapshot as they are normalized, and makes one again exactly when a notification touched its key meanwhile', async () => {
    const poll = new Subject<SourceSignal<Entity>>();
    const bus = new Subject<SourceSignal<Entity>>();
    const observed: Observation[] = [];
    const sync = createSynchronizer({ sources: [sourceOf('nova', poll), sourceOf('bus', bus)], onObserved: (o) => void observed.push(o) });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    const n = 5000;
    const all = Array.from({ length: n }, (_, i) => entity(`i${i}`));
    const snapshots = (count: number): Promise<void> =>
      new Promise<void>((resolve) => {
        const check = (): void => (sync.metrics().observations.nova === count ? resolve() : void setImmediate(check));
        check();
      });
    poll.next({ ...snapshot(t(0), all), source: 'nova' });
    await snapshots(1);
    // A turn with the budget whole (src/pause.ts), and a budget no machine spends before the first
    // slice's first records (a 2 ms one was, under a full suite with coverage, and i7 was then read
    // after the notification): the snapshot's first slice runs at once, and reads i7.
    setSliceMs(60_000);
    try {
      // The turn's budget ends where the turn began: set before it.
      await pauseForIo();
      // The same again: every record a no-op; i7 is touched by an older notification while it is sliced.
      poll.next({ ...snapshot(t(10), all), source: 'nova' });
    } finally {
      setSliceMs(SLICE_MS);
    }
    bus.next(upsert(t(5), entity('i7', 'PAUSED')));
    await snapshots(2);
    const second = events.slice(n);
    expect(second.map((e) => `${e.action} ${e.entity.id} ${e.entity.state} ${e.origin}`)).toEqual(['update i7 PAUSED notification', 'update i7 ACTIVE snapshot']);
    // The record as the snapshot had it: its time and source, not those of the entity it was compared with.
    expect(second[1]!.entity).toStrictEqual(toEntity({ type: 'nova.instance', id: 'i7', state: 'ACTIVE' }, 'nova', t(10)));
    // All were dropped as they were read: their slots hold the entities the baseline held then (the first snapshot's time).
    const records = (observed.filter((o) => o.kind === 'snapshot')[1] as Observation & { kind: 'snapshot' }).records;
    expect(records.filter((r) => r.observedAt === t(0))).toHaveLength(n);
    sync.stop();
  });
});

describe('records read against the baseline as they are normalized', () => {
  it('hands the snapshot being built to `prepare` after each run of records, the same object it emits complete', async () => {
    const seen: number[] = [];
    let given: unknown;
    const out = await firstValueFrom(
      of<Observation<EntityDraft>>({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records: drafts(2500) }).pipe(
        normalizeEntity((d: EntityDraft) => d, {
          slice: { records: 1000, ms: 1e9, pause: settled },
          prepare: (o) => {
            given ??= o;
            expect(o).toBe(given);
            seen.push(o.records.length);
          },
        }),
        toArray(),
      ),
    );
    // Runs of SLICE_CHECK records, the snapshot's records growing; then it is emitted, the same object.
    expect(seen).toEqual(Array.from({ length: 2500 / SLICE_CHECK }, (_, i) => (i + 1) * SLICE_CHECK));
    expect(out).toHaveLength(1);
    expect(out[0]).toBe(given);
  });

  it('does not call `prepare` for a snapshot small enough to go at once', () => {
    let calls = 0;
    of<Observation<EntityDraft>>({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records: drafts(3) })
      .pipe(normalizeEntity((d: EntityDraft) => d, { slice: { records: 1000, pause: settled }, prepare: () => void calls++ }))
      .subscribe();
    expect(calls).toBe(0);
  });

  it('prepares and drops only a snapshot whose types are all active, once there is a baseline to read', () => {
    const held = Array.from({ length: 3 }, (_, i) => entity(`i${i}`));
    let state = applyObservation(indexedBaseline(emptyBaseline()), snapshot(t(0), held)).state;
    const again = (types: string[]): Observation & { kind: 'snapshot' } => ({ ...snapshot(t(10), held, types), source: 'test' });
    const all = again(['nova.instance']);
    preparingAsNormalized(() => state, () => true)(all);
    // Read and found unchanged: the slots hold the baseline's entities.
    expect(all.records.map((r) => r.observedAt)).toEqual([t(0), t(0), t(0)]);
    const partly = again(['nova.instance', 'nova.host']);
    preparingAsNormalized(() => state, (type) => type === 'nova.instance')(partly);
    expect(partly.records.map((r) => r.observedAt)).toEqual([t(10), t(10), t(10)]);
    const early = again(['nova.instance']);
    preparingAsNormalized(() => undefined, () => true)(early);
    expect(early.records.map((r) => r.observedAt)).toEqual([t(10), t(10), t(10)]);
    state = applyObservation(state, all).state;
    expect(state.entities.get('nova.instance:i1')?.entity.observedAt).toBe(t(0));
  });
});

describe('toArray of a sliced stream completes', () => {
  it('completes after the last sliced snapshot', async () => {
    const out = await firstValueFrom(
      of<Observation<EntityDraft>>({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records: drafts(5) }).pipe(
        normalizeEntity((d: EntityDraft) => d, { slice: { records: 2, pause: settled } }),
        toArray(),
      ),
    );
    expect(out).toHaveLength(1);
  });
});

/** The garbage collector, to see what a dropped snapshot still holds (--expose-gc for this isolate). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

describe('a snapshot whose records come in pages', () => {
  const paged = (pages: Subject<readonly EntityDraft[]>, records: EntityDraft[] = [], at = t(1)): Observation<EntityDraft> => ({
    kind: 'snapshot',
    source: 's',
    types: ['nova.instance'],
    at,
    records,
    pages,
  });

  it('normalizes each page as it comes, in slices read against the baseline (`prepare`), and emits the snapshot whole, in order, once its pages complete', async () => {
    const slice = manualPauses(2);
    const input = new Subject<Observation<EntityDraft>>();
    const pages = new Subject<readonly EntityDraft[]>();
    const out: Observation[] = [];
    const prepared: number[] = [];
    input.pipe(normalizeEntity((d: EntityDraft) => d, { slice, prepare: (o) => void prepared.push(o.records.length) })).subscribe((o) => out.push(o));
    const all = drafts(7);
    const snapshotIn = paged(pages, all.slice(0, 1)) as Observation<EntityDraft> & { kind: 'snapshot' };
    input.next(snapshotIn);
    input.next({ kind: 'change', source: 's', action: 'upsert', at: t(2), record: { type: 'nova.instance', id: 'after', state: 'ACTIVE' } });
    // The records given with it are read at once; the pages as they come (a piece of 3: a slice of 2, a pause, 1).
    expect(prepared).toEqual([1]);
    pages.next(all.slice(1, 4));
    await settled();
    // A pause between two pieces, as between two slices; a page that comes meanwhile waits its turn.
    expect(prepared).toEqual([1]);
    pages.next(all.slice(4, 7));
    slice.resume();
    await settled();
    expect(prepared).toEqual([1, 3]);
    slice.resume();
    await settled();
    expect(prepared).toEqual([1, 3, 4]);
    slice.resume();
    await settled();
    expect(prepared).toEqual([1, 3, 4, 6]);
    slice.resume();
    await settled();
    expect(prepared).toEqual([1, 3, 4, 6, 7]);
    // Not complete until its pages are: nothing out yet, the change behind it.
    expect(out).toEqual([]);
    snapshotIn.read = { pages: 3, bytes: 100, readMs: 5 };
    pages.complete();
    await settled();
    expect(out.map((o) => o.kind)).toEqual(['snapshot', 'change']);
    const whole = out[0] as Observation & { kind: 'snapshot' };
    expect(whole.records.map((r) => r.id)).toEqual(['i0', 'i1', 'i2', 'i3', 'i4', 'i5', 'i6']);
    expect(whole.read).toEqual({ pages: 3, bytes: 100, readMs: 5 });
    expect('pages' in whole).toBe(false);
  });

  it('without slices, normalizes each page at once as it comes, and the snapshot is emitted whole when they complete', () => {
    const pages = new Subject<readonly EntityDraft[]>();
    const out: Observation[] = [];
    const invalid: string[] = [];
    of(paged(pages)).pipe(normalizeEntity((d: EntityDraft) => d, { onInvalid: (r) => void invalid.push(r.reason) })).subscribe((o) => out.push(o));
    pages.next(drafts(2));
    pages.next([{ type: 'nova.instance', id: 'bad', state: '' }]);
    expect(invalid).toEqual(['state must be a non-empty string, got ""']);
    expect(out).toEqual([]);
    pages.complete();
    expect(out).toHaveLength(1);
    expect((out[0] as Observation & { kind: 'snapshot' }).records.map((r) => r.id)).toEqual(['i0', 'i1']);
    expect((out[0] as Observation & { kind: 'snapshot' }).keep).toEqual(['nova.instance:bad']);
  });

  it('drops a snapshot whose pages fail part-way: nothing emitted, settled not ok, nothing of it held, and what follows goes on', async () => {
    const gc = collector();
    const input = new Subject<Observation<EntityDraft>>();
    const pages = new Subject<readonly EntityDraft[]>();
    const out: Observation[] = [];
    let held: WeakRef<object> | undefined;
    const settledAs: unknown[] = [];
    input
      .pipe(normalizeEntity((d: EntityDraft) => d, { slice: { records: 1000, pause: settled }, prepare: (o) => void (held ??= new WeakRef(o)) }))
      .subscribe((o) => out.push(o));
    input.next({ ...paged(pages), settle: (s) => void settledAs.push(s) });
    pages.next(drafts(1500));
    await settled();
    // A boolean, not the object: an assertion that was given the object may keep it.
    expect(held?.deref() !== undefined).toBe(true);
    pages.error(new Error('GET /servers?marker=i1499 failed with 500'));
    input.next({ kind: 'change', source: 's', action: 'upsert', at: t(2), record: { type: 'nova.instance', id: 'after', state: 'ACTIVE' } });
    await settled();
    expect(out.map((o) => (o.kind === 'change' ? o.record.id : o.kind))).toEqual(['after']);
    expect(settledAs).toEqual([{ ok: false, reason: "the snapshot's pages failed: GET /servers?marker=i1499 failed with 500" }]);
    // The snapshot normalized so far (and its preparation) is nobody's once the slice in hand has
    // ended: a slice is bounded by time too, so on a loaded machine (a full suite with coverage)
    // the piece in hand may take many turns to reach the check that stops it. A WeakRef's target
    // also lives to the end of the job that read it. So: turns and collections until it is gone,
    // or 100 of them (a snapshot held for good fails).
    for (let turn = 0; turn < 100 && held?.deref() !== undefined; turn += 1) {
      await settled();
      gc();
    }
    expect(held?.deref() === undefined).toBe(true);
  });

  it('is refused by the baseline if it ever got there with its pages unread (they would be taken for deletions)', () => {
    const state = applyObservation(indexedBaseline(emptyBaseline()), snapshot(t(0), [entity('i1')])).state;
    expect(() => applyObservation(state, { ...snapshot(t(1), []), source: 'nova', pages: new Subject<readonly Entity[]>() })).toThrow(
      'a snapshot of nova (nova.instance) still has its pages: normalizeEntity reads them before the baseline',
    );
  });
});

describe('the hub with a snapshot in pages', () => {
  /** Every event of a hub fed `feed`: whole snapshots, or the same in pages of `size`. */
  async function eventsOf(inPages: number | undefined, feed: (send: (o: SourceSignal<Entity>) => Promise<void>) => Promise<void>): Promise<string[]> {
    const poll = new Subject<SourceSignal<Entity>>();
    const bus = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', poll), sourceOf('bus', bus)] });
    const events: string[] = [];
    sync.entity$.subscribe((e) => events.push(`${e.action} ${e.entity.id} ${e.entity.state} ${e.origin} ${e.entity.observedAt}`));
    sync.start();
    let snapshots = 0;
    const stepped = (count: number): Promise<void> =>
      new Promise<void>((resolve) => {
        const check = (): void => (sync.metrics().observations.nova === count ? resolve() : void setImmediate(check));
        check();
      });
    await feed(async (o) => {
      if (o.kind !== 'snapshot' || o.source === 'bus') return void (o.kind === 'change' ? bus : poll).next(o);
      if (inPages === undefined) poll.next(o);
      else {
        const pages = new Subject<readonly (Entity | Kept)[]>();
        poll.next({ ...o, records: [], pages });
        for (let i = 0; i < o.records.length; i += inPages) {
          pages.next(o.records.slice(i, i + inPages));
          await settled();
        }
        pages.complete();
      }
      await stepped(++snapshots);
    });
    sync.stop();
    return events;
  }

  it('makes the same events as the same snapshots whole: changes, deletes, and notifications that arrive between its pages', async () => {
    const n = 5000;
    const all = Array.from({ length: n }, (_, i) => entity(`i${i}`));
    const feed = async (send: (o: SourceSignal<Entity>) => Promise<void>): Promise<void> => {
      await send({ ...snapshot(t(0), all), source: 'nova' });
      // Changed records in the first and last pages, two gone, and a notification sent while it is read (older and newer ones).
      const next = all.filter((_, i) => i !== 10 && i !== 4990).map((e, i) => (i === 3 || i === 4500 ? entity(e.id, 'SHUTOFF') : e));
      next.push(entity('new', 'BUILD'));
      const sent = send({ ...snapshot(t(10), next), source: 'nova' });
      await send(upsert(t(5), entity('i7', 'PAUSED')));
      await send(upsert(t(20), entity('i8', 'ERROR')));
      await sent;
    };
    const whole = await eventsOf(undefined, feed);
    const paged = await eventsOf(1000, feed);
    expect(paged).toEqual(whole);
    expect(paged.slice(n)).toEqual(
      expect.arrayContaining([`update i3 SHUTOFF snapshot ${t(10)}`, `create new BUILD snapshot ${t(10)}`, `delete i10 ACTIVE snapshot ${t(0)}`, `update i8 ERROR notification ${t(20)}`]),
    );
    expect(paged.length).toBeGreaterThan(n + 5);
  });

  it('steps nothing of a poll whose pages fail part-way, holds none of its records, and takes the next one whole', async () => {
    const gc = collector();
    const poll = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf('nova', poll)] });
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    const all = Array.from({ length: 3000 }, (_, i) => entity(`i${i}`));
    const stepped = (count: number): Promise<void> =>
      new Promise<void>((resolve) => {
        const check = (): void => (sync.metrics().observations.nova === count ? resolve() : void setImmediate(check));
        check();
      });
    poll.next({ ...snapshot(t(0), all), source: 'nova' });
    await stepped(1);
    expect(events).toHaveLength(3000);
    // The next poll: its first page changes everything, then a page fails.
    const pages = new Subject<readonly Entity[]>();
    poll.next({ ...snapshot(t(10), []), source: 'nova', pages });
    let piece: Entity[] | undefined = all.slice(0, 1000).map((e) => entity(e.id, 'SHUTOFF'));
    const given = new WeakRef(piece);
    pages.next(piece);
    piece = undefined;
    for (let i = 0; i < 5; i++) await settled();
    pages.error(new Error('GET /servers?marker=i999 failed with 500'));
    for (let i = 0; i < 5; i++) await settled();
    expect(events).toHaveLength(3000);
    expect(sync.metrics().observations.nova).toBe(1);
    gc();
    expect(given.deref()).toBeUndefined();
    expect(sync.snapshot().filter((e) => e.state === 'ACTIVE')).toHaveLength(3000);
    // The next poll goes through as ever.
    poll.next({ ...snapshot(t(20), all.slice(1)), source: 'nova' });
    await stepped(2);
    expect(events.slice(3000).map((e) => `${e.action} ${e.entity.id}`)).toEqual(['delete i0']);
    sync.stop();
  });
});
