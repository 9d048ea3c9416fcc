import { from, lastValueFrom, map, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import {
  type BaselineState,
  DEFAULT_TOMBSTONE_MS,
  type DiffOptions,
  applyObservation,
  diffAgainstBaseline,
  emptyBaseline,
  entryOf,
  indexedBaseline,
  prepareSnapshot,
  restoreBaseline,
} from '../../operators/diffAgainstBaseline.js';
import { toPatch } from '../../operators/normalizeEntity.js';
import type { Entity, EntityDraft, EntityEvent, Observation, SnapshotObservation } from '../../src/model.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';

/**
 * The edges of the baseline rules (DESIGN 1–8) that the example and property tests leave open:
 * equal times, the default tombstone window, what vouches for an entry (syncedAt, keep), the
 * order of deletions. Written to kill mutants (docs/testing.md, "Mutation testing").
 */

const brief = (e: EntityEvent): string => `${e.action} ${e.entity.key} ${e.entity.state}${e.changed ? ' [' + e.changed.join(',') + ']' : ''}`;

async function eventsOf(observations: Observation[], options: DiffOptions = {}): Promise<string[]> {
  const events = await lastValueFrom(from(observations).pipe(diffAgainstBaseline(options), map(brief), toArray()));
  const steps = stepsOf(observations, options, 'no');
  expect(stepsOf(observations, options, 'at its turn'), 'each snapshot prepared at its turn').toEqual(steps);
  expect(stepsOf(observations, options, 'ahead'), 'each snapshot prepared from the step before it on').toEqual(steps);
  expect(stepsOf(observations, options, 'ahead, dropping'), 'the same, its no-ops dropped once read').toEqual(steps);
  return events;
}

/**
 * The events of each step of `observations`, with each snapshot prepared (prepareSnapshot, one
 * record or entry a slice, as the hub does with a big one) or not: `at its turn`, just before its
 * step; `ahead`, from before the step of the observation ahead of it on, so a change in between is
 * one the preparation must account for (a snapshot in between voids it).
 */
function stepsOf(observations: Observation[], options: DiffOptions, prepared: 'no' | 'at its turn' | 'ahead' | 'ahead, dropping'): string[][] {
  // Dropping: each snapshot prepared and stepped as a copy with records of its own (they are replaced).
  const copies = new Map<Observation, Observation>();
  const own = (o: Observation): Observation => {
    if (prepared !== 'ahead, dropping' || o.kind !== 'snapshot') return o;
    let copy = copies.get(o);
    if (copy === undefined) copies.set(o, (copy = { ...o, records: [...o.records] }));
    return copy;
  };
  const prepare = (state: BaselineState, given: Observation | undefined, slices: number): void => {
    const o = given === undefined ? undefined : own(given);
    if (prepared === 'no' || o?.kind !== 'snapshot') return;
    for (let i = 0; i < slices; i++) if (prepareSnapshot(state, o, 1, { drop: prepared === 'ahead, dropping' })) return;
    if (slices > 1) throw new Error('a preparation that never completes');
  };
  // Indexed from the start when prepared, so that a first snapshot (all creates) is prepared too.
  let state = prepared === 'no' ? emptyBaseline() : indexedBaseline(emptyBaseline());
  const steps = observations.map((o, i) => {
    if (prepared.startsWith('ahead')) prepare(state, observations[i + 1], 1);
    prepare(state, o, 10_000);
    const step = applyObservation(state, own(o), options);
    state = step.state;
    return step.events.map(brief);
  });
  // And the baseline's own map at the end (what is stored and restored), not only the events.
  const held = [...state.entities.values()].map((e) => `${e.entity.key} ${e.entity.state} ${e.at} ${e.bySnapshot} ${e.misses}`).sort();
  return [...steps, held];
}

const a = entity('a');
const aOff = entity('a', 'SHUTOFF');
const minutes = (m: number): number => m * 60;

describe('diffAgainstBaseline: tombstones', () => {
  it('holds a tombstone 10 minutes by default', async () => {
    expect(DEFAULT_TOMBSTONE_MS).toBe(600_000);
    const late = (clock: number): Observation[] => [upsert(t(0), a), remove(t(10), a), snapshot(t(10 + clock), [], ['nova.host']), upsert(t(5), a)];
    expect(await eventsOf(late(minutes(9)))).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE']);
    expect(await eventsOf(late(minutes(11)))).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE', 'create nova.instance:a ACTIVE']);
  });

  it('keeps a tombstone for tombstoneMs and drops it at the first observation past it', async () => {
    const options = { tombstoneMs: 60_000 };
    // Deleted at t(0); the clock then reaches exactly t(60): the tombstone still holds.
    const atWindow = [upsert(t(-5), a), remove(t(0), a), snapshot(t(60), [], ['nova.host']), upsert(t(-1), a)];
    expect(await eventsOf(atWindow, options)).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE']);
    // A millisecond later it is gone (no longer ten times per window only: a tenth later at most, until session 9).
    const past = [upsert(t(-5), a), remove(t(0), a), snapshot(t(60), [], ['nova.host']), snapshot(t(60.001), [], ['nova.host']), upsert(t(-1), a)];
    expect(await eventsOf(past, options)).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE', 'create nova.instance:a ACTIVE']);
    // And when the observation that passes the window is the late one itself.
    const itself = [upsert(t(-5), a), remove(t(0), a), snapshot(t(60), [], ['nova.host']), upsert(t(60.001), a)];
    expect(await eventsOf(itself, options)).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE', 'create nova.instance:a ACTIVE']);
  });

  it('drives expiry by the newest time seen: a late observation does not turn the clock back', () => {
    let state = emptyBaseline();
    for (const o of [upsert(t(0), a), remove(t(1), a), snapshot(t(30), [], ['nova.host']), snapshot(t(2), [], ['nova.host'])]) {
      state = applyObservation(state, o, { tombstoneMs: 60_000 }).state;
    }
    expect(state.clock).toBe(Date.parse(t(30)));
    expect(state.tombstones.get(a.key)).toBe(Date.parse(t(1)));
    // An observation at the same time as the clock changes nothing but what it brings.
    const same = applyObservation(state, snapshot(t(30), [], ['nova.host']), { tombstoneMs: 60_000 }).state;
    expect(same.clock).toBe(state.clock);
    expect(same.tombstones).toBe(state.tombstones);
  });

  it('refuses a notification stamped at the very time of the deletion, and remembers the latest deletion time', async () => {
    expect(await eventsOf([upsert(t(0), a), remove(t(10), a), upsert(t(10), a)])).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE']);
    // Deletes of an unknown entity leave a tombstone; an older one does not move it back.
    expect(await eventsOf([remove(t(50), a), remove(t(20), a), upsert(t(40), a)])).toEqual([]);
    const state = applyObservation(applyObservation(emptyBaseline(), remove(t(50), a)).state, remove(t(20), a)).state;
    expect(state.tombstones.get(a.key)).toBe(Date.parse(t(50)));
  });

  it('lets no snapshot older than a deletion bring the entity back, prepared or not', async () => {
    expect(await eventsOf([upsert(t(0), a), remove(t(10), a), snapshot(t(5), [a])])).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE']);
    // …and the tombstone still stops a notification older than the deletion.
    expect(await eventsOf([upsert(t(0), a), remove(t(10), a), snapshot(t(5), [a]), upsert(t(8), aOff)])).toEqual([
      'create nova.instance:a ACTIVE',
      'delete nova.instance:a ACTIVE',
    ]);
  });

  it('lets a snapshot started at the very time of a deletion bring the entity back, and clears the tombstone', () => {
    const deleted = applyObservation(applyObservation(emptyBaseline(), upsert(t(0), a)).state, remove(t(10), a)).state;
    const step = applyObservation(deleted, snapshot(t(10), [a]));
    expect(step.events.map(brief)).toEqual(['create nova.instance:a ACTIVE']);
    expect(step.state.tombstones.has(a.key)).toBe(false);
    const older = applyObservation(deleted, snapshot(t(9), [a]));
    expect(older.events).toEqual([]);
    expect(older.state.tombstones.has(a.key)).toBe(true);
  });
});

describe('diffAgainstBaseline: equal times and what vouches for an entry (rule 4)', () => {
  it('applies a change stamped at the same time as the entry it changes', async () => {
    expect(await eventsOf([upsert(t(10), a), upsert(t(10), aOff)])).toEqual(['create nova.instance:a ACTIVE', 'update nova.instance:a SHUTOFF [state]']);
    expect(await eventsOf([upsert(t(10), a), remove(t(10), a)])).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE']);
  });

  it('lets a snapshot stamped at the same time as a notification update and delete what it wrote', async () => {
    expect(await eventsOf([upsert(t(10), a), snapshot(t(10), [aOff])])).toEqual(['create nova.instance:a ACTIVE', 'update nova.instance:a SHUTOFF [state]']);
    expect(await eventsOf([upsert(t(10), a), snapshot(t(10), [])])).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE']);
  });

  it('counts a later snapshot that confirmed an entry unchanged as vouching for it', async () => {
    // Written at t(0), confirmed by the t(60) snapshot: a notification stamped t(30) is older news.
    expect(await eventsOf([snapshot(t(0), [a]), snapshot(t(60), [a]), upsert(t(30), aOff)])).toEqual(['create nova.instance:a ACTIVE']);
    expect(await eventsOf([snapshot(t(0), [a]), snapshot(t(60), [a]), remove(t(30), a)])).toEqual(['create nova.instance:a ACTIVE']);
    // A late snapshot (started earlier) does not take that back.
    expect(await eventsOf([snapshot(t(0), [a]), snapshot(t(60), [a]), snapshot(t(20), [a]), upsert(t(45), aOff)])).toEqual([
      'create nova.instance:a ACTIVE',
    ]);
  });

  it('counts a later snapshot of the entry\'s own scope as vouching for it, and no other scope\'s', async () => {
    const scoped = (e: typeof a, scope: string): typeof a => ({ ...e, scope });
    const inScope = (at: number, scope: string, records: (typeof a)[]): Observation => snapshot(t(at), records, ['nova.instance'], { scope });
    // Confirmed by region-a's t(60) snapshot: a notification stamped t(30) is older news.
    expect(await eventsOf([inScope(0, 'region-a', [scoped(a, 'region-a')]), inScope(60, 'region-a', [scoped(a, 'region-a')]), upsert(t(30), scoped(aOff, 'region-a'))])).toEqual([
      'create nova.instance:a ACTIVE',
    ]);
    // region-b's snapshot at t(60) says nothing of region-a's entity, nor does an unscoped one.
    expect(await eventsOf([inScope(0, 'region-a', [scoped(a, 'region-a')]), inScope(60, 'region-b', []), upsert(t(30), scoped(aOff, 'region-a'))])).toEqual([
      'create nova.instance:a ACTIVE',
      'update nova.instance:a SHUTOFF [state]',
    ]);
    expect(await eventsOf([inScope(0, 'region-a', [scoped(a, 'region-a')]), snapshot(t(60), []), upsert(t(30), scoped(aOff, 'region-a'))])).toEqual([
      'create nova.instance:a ACTIVE',
      'update nova.instance:a SHUTOFF [state]',
    ]);
  });

  it('makes a notification-written entry vouched for by the snapshot that confirms it', async () => {
    expect(await eventsOf([upsert(t(10), a), snapshot(t(20), [a]), upsert(t(15), aOff)])).toEqual(['create nova.instance:a ACTIVE']);
    const step = applyObservation(applyObservation(emptyBaseline(), upsert(t(10), a)).state, snapshot(t(20), [a]));
    expect(step.events).toEqual([]);
    expect(step.state.entities.get(a.key)).toMatchObject({ at: Date.parse(t(20)), bySnapshot: true, misses: 0 });
  });

  it('does not count a snapshot that kept an entry only because its record was invalid', async () => {
    // The t(80) snapshot says nothing of a: the notification at t(75) is newer than what wrote a.
    const kept = snapshot(t(80), [], ['nova.instance'], { keep: [a.key] });
    expect(await eventsOf([upsert(t(70), a), kept, upsert(t(75), aOff)])).toEqual(['create nova.instance:a ACTIVE', 'update nova.instance:a SHUTOFF [state]']);
    expect(await eventsOf([snapshot(t(0), [a]), snapshot(t(60), [], ['nova.instance'], { keep: [a.key] }), upsert(t(30), aOff)])).toEqual([
      'create nova.instance:a ACTIVE',
    ]);
  });

  it('keeps the entity object it holds when a notification repeats it unchanged', () => {
    const first = applyObservation(emptyBaseline(), upsert(t(0), a)).state;
    const held = first.entities.get(a.key)!.entity;
    const again = applyObservation(first, upsert(t(5), a)).state;
    expect(again.entities.get(a.key)!.entity).toBe(held);
    expect(again.entities.get(a.key)).toMatchObject({ at: Date.parse(t(5)), bySnapshot: false, misses: 0 });
  });
});

describe('diffAgainstBaseline: hysteresis and deletions (rules 2, 5)', () => {
  it('starts counting misses again when a snapshot holds the entity', async () => {
    const s = (at: number, records = [entity('b')]): Observation => snapshot(t(at), records, ['nova.instance'], { missesBeforeDelete: 2 });
    expect(await eventsOf([s(0, [a, entity('b')]), s(10), s(20, [a, entity('b')]), s(30), s(40)])).toEqual([
      'create nova.instance:a ACTIVE',
      'create nova.instance:b ACTIVE',
      'delete nova.instance:a ACTIVE',
    ]);
    // The count is per row of misses: the third one (s(40)) deletes, not the second (s(30)).
    const steps: string[][] = [];
    let state = emptyBaseline();
    for (const o of [s(0, [a, entity('b')]), s(10), s(20, [a, entity('b')]), s(30), s(40)]) {
      const step = applyObservation(state, o);
      state = step.state;
      steps.push(step.events.map(brief));
    }
    expect(steps.map((e) => e.length)).toEqual([2, 0, 0, 0, 1]);
  });

  it('does not count a snapshot that missed an entry as vouching for it', async () => {
    // Missed at t(10) (kept by hysteresis): a notification stamped t(5) is newer than what the baseline knows of a.
    const s = (at: number, records = [entity('b')]): Observation => snapshot(t(at), records, ['nova.instance'], { missesBeforeDelete: 2 });
    expect(await eventsOf([s(0, [a, entity('b')]), s(10), upsert(t(5), aOff)])).toEqual([
      'create nova.instance:a ACTIVE',
      'create nova.instance:b ACTIVE',
      'update nova.instance:a SHUTOFF [state]',
    ]);
  });

  it('treats missesBeforeDelete below 1 as 1', async () => {
    for (const missesBeforeDelete of [0, -3]) {
      expect(await eventsOf([snapshot(t(0), [a]), snapshot(t(10), [], ['nova.instance'], { missesBeforeDelete })])).toEqual([
        'create nova.instance:a ACTIVE',
        'delete nova.instance:a ACTIVE',
      ]);
    }
  });

  it('deletes in key order, whatever order the entities came in', async () => {
    const [c, b] = [entity('c'), entity('b')];
    expect(await eventsOf([snapshot(t(0), [c, a, b]), snapshot(t(10), [])])).toEqual([
      'create nova.instance:c ACTIVE',
      'create nova.instance:a ACTIVE',
      'create nova.instance:b ACTIVE',
      'delete nova.instance:a ACTIVE',
      'delete nova.instance:b ACTIVE',
      'delete nova.instance:c ACTIVE',
    ]);
  });

  it('records each type a snapshot is complete for, at the latest time', () => {
    let state = applyObservation(emptyBaseline(), snapshot(t(60), [], ['nova.instance', 'nova.host'])).state;
    state = applyObservation(state, snapshot(t(30), [], ['nova.instance'])).state;
    expect(state.syncedAt.toJS()).toEqual({ 'nova.instance': Date.parse(t(60)), 'nova.host': Date.parse(t(60)) });
  });
});

describe('diffAgainstBaseline: a record repeated in one snapshot', () => {
  it('writes the last state as the snapshot wrote it, vouched for by the snapshots that follow', async () => {
    const a2 = entity('a', 'ERROR');
    const step = applyObservation(emptyBaseline(), snapshot(t(0), [a, entity('b'), a2]));
    expect(step.events.map(brief)).toEqual(['create nova.instance:a ERROR', 'create nova.instance:b ACTIVE']);
    expect(step.state.entities.get(a.key)).toMatchObject({ at: Date.parse(t(0)), bySnapshot: true, misses: 0 });
    // Kept (not missed) by the t(60) snapshot, like any snapshot-written entry: t(30) is older news.
    expect(await eventsOf([snapshot(t(0), [a, a2]), snapshot(t(60), [], ['nova.instance'], { keep: [a.key] }), upsert(t(30), aOff)])).toEqual([
      'create nova.instance:a ERROR',
    ]);
  });

  it('updates an entity it holds once per occurrence that changes it, the first one a change and the repeat back', async () => {
    // eventsOf also prepares the snapshot: the repeat, equal to what the baseline held before the
    // first occurrence, must still be visited after it.
    expect(await eventsOf([snapshot(t(0), [a]), snapshot(t(10), [aOff, a])])).toEqual([
      'create nova.instance:a ACTIVE',
      'update nova.instance:a SHUTOFF [state]',
      'update nova.instance:a ACTIVE [state]',
    ]);
  });
});

describe('diffAgainstBaseline: purity (rule 6)', () => {
  it('reduces an older state again as if the detour since had not happened', () => {
    const b = entity('b');
    const s1 = applyObservation(emptyBaseline(), snapshot(t(0), [a, b])).state;
    // A detour: b deleted, then a changed by a notification.
    const detour = applyObservation(applyObservation(s1, snapshot(t(10), [a])).state, upsert(t(11), aOff));
    expect(detour.events.map(brief)).toEqual(['update nova.instance:a SHUTOFF [state]']);
    // Back to s1: a and b are as s1 holds them, so the same snapshot makes no event.
    const again = applyObservation(s1, snapshot(t(20), [a, b]));
    expect(again.events).toEqual([]);
    expect(applyObservation(s1, upsert(t(21), b)).events).toEqual([]);
    expect(applyObservation(s1, snapshot(t(22), [])).events.map(brief)).toEqual(['delete nova.instance:a ACTIVE', 'delete nova.instance:b ACTIVE']);
  });
});

describe('diffAgainstBaseline: events and errors', () => {
  it('gives creates no `changed` field and updates the changed fields', () => {
    const created = applyObservation(emptyBaseline(), snapshot(t(0), [a]));
    expect(created.events[0]).not.toHaveProperty('changed');
    expect(created.events[0]).toMatchObject({ action: 'create', origin: 'snapshot' });
    const updated = applyObservation(created.state, snapshot(t(10), [aOff]));
    expect(updated.events[0]).toMatchObject({ action: 'update', origin: 'snapshot', changed: ['state'] });
    const deleted = applyObservation(updated.state, snapshot(t(20), []));
    expect(deleted.events[0]).toMatchObject({ action: 'delete', origin: 'snapshot' });
    expect(deleted.events[0]).not.toHaveProperty('changed');
    expect(deleted.observation).toBeDefined();
  });

  it('reads each event hash once and keeps it', () => {
    const e = applyObservation(emptyBaseline(), snapshot(t(0), [a])).events[0]!;
    const first = e.hash;
    expect(first).toMatch(/^[A-Za-z0-9+/]{27}=$/);
    expect(e.hash).toBe(first);
  });

  it('refuses an observation whose time is not a date, naming its source and time', () => {
    expect(() => applyObservation(emptyBaseline(), { ...snapshot(t(0), []), source: 'nova', at: 'soon' })).toThrow(
      new TypeError('observation from nova has an invalid time: "soon"'),
    );
  });

  it('hands each step its observation', () => {
    const o = upsert(t(0), a);
    expect(applyObservation(emptyBaseline(), o).observation).toBe(o);
    const d = remove(t(1), entity('zzz'));
    expect(applyObservation(emptyBaseline(), d).observation).toBe(d);
    const old = applyObservation(applyObservation(emptyBaseline(), upsert(t(10), a)).state, upsert(t(5), aOff));
    expect(old.observation).toMatchObject({ at: t(5) });
    expect(old.events).toEqual([]);
  });
});

describe('diffAgainstBaseline: patches (rule 3)', () => {
  const patch = (at: string, draft: EntityDraft, keepRaw = false): Observation => ({ kind: 'patch', source: 'aodh', at, record: toPatch(draft, 'aodh', at, keepRaw) });

  it('sets the fields a patch names, keeps the others, removes an attribute set to undefined, and takes its raw record', () => {
    const held = entity('a', 'ACTIVE', { name: 'web', project: 'p1', attributes: { flavor: 'm1', az: 'z1' } });
    let state = applyObservation(emptyBaseline(), upsert(t(0), held)).state;
    state = applyObservation(state, patch(t(1), { type: 'nova.instance', id: 'a', name: 'db', attributes: { az: undefined, host: 'h1' } })).state;
    expect(state.entities.get(held.key)!.entity).toMatchObject({ name: 'db', project: 'p1', state: 'ACTIVE', attributes: { flavor: 'm1', host: 'h1' } });
    expect(state.entities.get(held.key)!.entity.attributes).not.toHaveProperty('az');
    state = applyObservation(state, patch(t(2), { type: 'nova.instance', id: 'a', project: 'p2', raw: { alarm: 1 } }, true)).state;
    expect(state.entities.get(held.key)!.entity).toMatchObject({ name: 'db', project: 'p2', raw: { alarm: 1 } });
    state = applyObservation(state, patch(t(3), { type: 'nova.instance', id: 'a', state: 'error' })).state;
    expect(state.entities.get(held.key)!.entity).toMatchObject({ state: 'ERROR', raw: { alarm: 1 } });
  });
});

describe('diffAgainstBaseline: a prepared snapshot stepped against another state than it was read from', () => {
  /** Prepares `s` against `state` to the end, in one-record slices. */
  const prepareAll = (state: BaselineState, s: SnapshotObservation): void => {
    for (let i = 0; i < 1_000; i++) if (prepareSnapshot(state, s, 1)) return;
    throw new Error('a preparation that never completes');
  };
  const b = entity('b');

  it('does not prepare against a state whose index a later step took', () => {
    // a deleted at t(5) by the step after s1: the index now describes that step's state.
    const s1 = applyObservation(emptyBaseline(), snapshot(t(0), [a])).state;
    const s2 = applyObservation(s1, remove(t(5), a)).state;
    // Prepared against s1 (a held there, no tombstone), the record would be a create built ahead;
    // stepped against s2 it is older than the deletion (rule 4) and makes nothing.
    const late = snapshot(t(3), [a]);
    prepareAll(s1, late);
    expect(applyObservation(s2, late).events).toEqual([]);
  });

  it('ignores a preparation read from another index when it steps against an older state again', () => {
    // A restored baseline starts a fresh index, so no snapshot step of nova.instance is counted in
    // either index: only the index itself tells the preparation's reading apart.
    const s1 = indexedBaseline(restoreBaseline(applyObservation(emptyBaseline(), snapshot(t(0), [a, b])).state));
    const s2 = applyObservation(s1, remove(t(5), b)).state;
    // Read against s2, the snapshot lacks nothing (b is gone); against s1 it lacks b.
    const next = snapshot(t(10), [a]);
    prepareAll(s2, next);
    expect(applyObservation(s1, next).events.map(brief)).toEqual(['delete nova.instance:b ACTIVE']);
  });

  it('visits the records a change touched during the preparation in the snapshot\'s order', () => {
    const bOff = entity('b', 'SHUTOFF');
    let state = applyObservation(emptyBaseline(), snapshot(t(0), [a, b])).state;
    // Read whole: only b (second) changes.
    const next = snapshot(t(20), [a, bOff]);
    prepareAll(state, next);
    // Meanwhile a notification older than the snapshot changes a (first): the snapshot sets it back.
    state = applyObservation(state, upsert(t(10), aOff)).state;
    expect(applyObservation(state, next).events.map(brief)).toEqual(['update nova.instance:a ACTIVE [state]', 'update nova.instance:b SHUTOFF [state]']);
  });
});

describe('entryOf', () => {
  it("reads a state's own entry, also once a later step took the index that described it", () => {
    const a = entity('a');
    const s1 = applyObservation(indexedBaseline(emptyBaseline()), snapshot(t(1), [a])).state;
    const s2 = applyObservation(s1, snapshot(t(2), [entity('a', 'SHUTOFF')])).state;
    expect(entryOf(s2, a.key)).toBe(s2.entities.get(a.key));
    expect(entryOf(s1, a.key)).toBe(s1.entities.get(a.key));
    expect(entryOf(s1, a.key)).not.toBe(entryOf(s2, a.key));
  });
});

describe('diffAgainstBaseline: a step built ahead, whatever slice a change falls after', () => {
  // Held: a, b, c, e (by a snapshot) and r. The next snapshot holds a changed and r, and lacks b,
  // c and e; while it is prepared, notifications older than it create cc and f (which it lacks:
  // deleted, in key order between b and e, and after e), change r (set back by the snapshot), delete c
  // (nothing left to delete) and create z newer than it (left alone). Whichever slice of the
  // preparation each falls after — before it, while the records are read, while the index is
  // scanned, while the step is built ahead, after it — the step emits what an unprepared one does.
  const [b, c, cc, e, f, r, z] = ['b', 'c', 'cc', 'e', 'f', 'r', 'z'].map((id) => entity(id));
  const changes = [upsert(t(8), cc!), upsert(t(8), entity('r', 'SHUTOFF')), remove(t(8), c!), upsert(t(12), z!), upsert(t(9), f!)];
  // The same changes with f created before cc: the late deletions come out of key order and must be sorted.
  const reordered = [changes[4]!, ...changes.slice(0, 4)];
  const held = (): BaselineState => applyObservation(indexedBaseline(emptyBaseline()), snapshot(t(0), [a, b!, c!, e!, r!])).state;
  const next = (): SnapshotObservation => snapshot(t(10), [aOff, r!]);
  const expected = [
    'update nova.instance:a SHUTOFF [state]',
    'update nova.instance:r ACTIVE [state]',
    'delete nova.instance:b ACTIVE',
    'delete nova.instance:cc ACTIVE',
    'delete nova.instance:e ACTIVE',
    'delete nova.instance:f ACTIVE',
  ];

  it('the unprepared step', () => {
    for (const order of [changes, reordered]) {
      let state = held();
      for (const o of order) state = applyObservation(state, o).state;
      expect(applyObservation(state, next()).events.map(brief)).toEqual(expected);
    }
  });

  it.each([
    ['in their order', changes],
    ['f created before cc', reordered],
  ])('each change after any number of one-key slices (%s)', (_name, changes) => {
    let slices = 0;
    // How many slices a whole preparation takes without changes (records, scan, the step built ahead).
    for (let state = held(), s = next(); !prepareSnapshot(state, s, 1); ) slices++;
    expect(slices).toBeGreaterThan(6);
    for (let k = 0; k <= slices + 1; k++) {
      let state = held();
      const s = next();
      let done = false;
      for (let i = 0; i < k && !done; i++) done = prepareSnapshot(state, s, 1);
      // The changes one by one, a slice between two, then the rest of the preparation.
      for (const o of changes) {
        state = applyObservation(state, o).state;
        if (!done) done = prepareSnapshot(state, s, 1);
      }
      while (!done) done = prepareSnapshot(state, s, 1);
      const step = applyObservation(state, s);
      expect(step.events.map(brief), `changes after ${k} slices`).toEqual(expected);
      expect([...step.state.tombstones.keys()].sort(), `tombstones after ${k} slices`).toEqual(['nova.instance:b', 'nova.instance:c', 'nova.instance:cc', 'nova.instance:e', 'nova.instance:f']);
      expect([...step.state.entities.keys()].sort(), `entities after ${k} slices`).toEqual(['nova.instance:a', 'nova.instance:r', 'nova.instance:z']);
      expect(entryOf(step.state, 'nova.instance:cc'), `index after ${k} slices`).toBeUndefined();
      expect(entryOf(step.state, 'nova.instance:r')?.entity.state).toBe('ACTIVE');
    }
  });
});

describe('prepareSnapshot: records dropped once found unchanged', () => {
  const held = (): BaselineState => applyObservation(indexedBaseline(emptyBaseline()), snapshot(t(0), [entity('a'), entity('b'), entity('c'), entity('d'), entity('e')])).state;

  it('drops only when asked, and only a record it can make again: stamped as its snapshot, no other field, in their order', () => {
    const state = held();
    const again = (): SnapshotObservation => snapshot(t(10), [entity('a'), entity('b'), entity('c'), entity('d'), entity('e')]);
    const kept = again();
    const given = [...kept.records];
    while (!prepareSnapshot(state, kept, 100)) continue;
    expect(kept.records).toEqual(given);
    for (let i = 0; i < given.length; i++) expect(kept.records[i]).toBe(given[i]);
    const o = again();
    const [a, b, c, d] = o.records as [Entity, Entity, Entity, Entity];
    // b: another time; c: raw; d: the same fields in another order.
    o.records[1] = { ...b, observedAt: t(9) };
    o.records[2] = { ...c, raw: { id: 'c' } };
    const { key, ...rest } = d;
    o.records[3] = { ...rest, key };
    const records = [...o.records];
    while (!prepareSnapshot(state, o, 100, { drop: true })) continue;
    // a and e dropped: their slots hold the baseline's entities; the others are kept as given.
    expect(o.records[0]).toBe(entryOf(state, a.key)!.entity);
    expect(o.records[4]).toBe(entryOf(state, 'nova.instance:e')!.entity);
    for (const i of [1, 2, 3]) expect(o.records[i]).toBe(records[i]);
    // A source of another name: not the record's, not dropped.
    const other = { ...again(), source: 'other' };
    while (!prepareSnapshot(state, other, 100, { drop: true })) continue;
    expect(other.records.map((r) => r.observedAt)).toEqual([t(10), t(10), t(10), t(10), t(10)]);
  });

  it('gives a snapshot clock-corrected at its step the records it dropped, made again and stamped at the local time', () => {
    let state = held();
    // Far ahead of the local clock (rule 8): taken at the local time, its records with it.
    const ahead: SnapshotObservation = snapshot(t(100_000), [entity('a'), entity('b'), entity('c'), entity('d'), entity('e')]);
    while (!prepareSnapshot(state, ahead, 100, { drop: true })) continue;
    expect(ahead.records[1]!.observedAt).toBe(t(0));
    // b changed by a notification before the step: the step writes b's record back.
    state = applyObservation(state, upsert(t(50), entity('b', 'ERROR'))).state;
    const step = applyObservation(state, ahead, { now: () => Date.parse(t(100)), maxClockSkewMs: 0 });
    expect(step.skewedAt).toBe(t(100_000));
    expect(step.events.map(brief)).toEqual(['update nova.instance:b ACTIVE [state]']);
    expect(step.events[0]!.entity).toStrictEqual({ ...entity('b', 'ACTIVE', {}, t(100), 'test') });
  });
});
