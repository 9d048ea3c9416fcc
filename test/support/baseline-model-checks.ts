/**
 * The comparisons of the baseline with its reference model (test/support/baseline-model.ts), over
 * random observation sequences: run at length by baseline-model.property.test.ts, and with a fixed
 * seed and a few runs by baseline-model.mutation.test.ts, the part a mutation run can afford.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { type BaselineState, type BaselineStep, type DiffOptions, applyObservation, emptyBaseline, prepareSnapshot } from '../../operators/diffAgainstBaseline.js';
import { toEntity, toPatch } from '../../operators/normalizeEntity.js';
import { type EntityScope, entityScope } from '../../src/scope.js';
import { changedFields, entityHash, sameMeaning } from '../../src/hash.js';
import type { Entity, EntityDraft, EntityEvent, EntityRef, Observation, SnapshotObservation } from '../../src/model.js';
import { BaselineModel, type ModelEvent, type ModelOptions, meaningOf } from './baseline-model.js';
import { t } from './entities.js';

// ——— Generators: every entity field varies, over small domains so that equal and near-equal
// entities, repeated records, ties in time and late observations are all common. ———

const TYPES = ['nova.instance', 'nova.host', 'neutron.port'] as const;
const SOURCES = ['nova', 'bus', 'static'] as const;

const arbRef: fc.Arbitrary<EntityRef> = fc.record({ type: fc.constantFrom('nova.host', 'neutron.network'), id: fc.constantFrom('h1', 'h2', 'n1') });
/** Refs as a mapping writes them: any order, sometimes repeated (normalizeEntity sorts and dedupes). */
const arbRefs = fc.array(arbRef, { maxLength: 3 });

const arbValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('x', 'y', '', 0, 1, -1, 2.5, true, false, null, undefined),
  fc.constantFrom([1, 2], [2, 1], [], [null], { a: 1 }, { a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 }, { a: undefined }, { a: null }),
);
/** Attributes in any key order, with undefined members, nesting, null, arrays. */
const arbAttributes = fc
  .uniqueArray(fc.tuple(fc.constantFrom('flavor', 'az', 'host', 'a', 'zz'), arbValue), { selector: ([k]) => k, maxLength: 4 })
  .chain((pairs) => fc.shuffledSubarray(pairs, { minLength: pairs.length, maxLength: pairs.length }))
  .map((pairs) => Object.fromEntries(pairs) as Record<string, unknown>);

/** Mostly the plain value, sometimes another: two versions of an entity then often differ in one field only. */
function usually<T>(plain: T, other: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ weight: 3, arbitrary: fc.constant(plain) }, { weight: 1, arbitrary: other });
}

export const arbDraft: fc.Arbitrary<EntityDraft> = fc.record({
  type: fc.constantFrom(...TYPES),
  id: fc.constantFrom('a', 'b', 'c'),
  name: usually<string | undefined>(undefined, fc.constantFrom('web', 'db', '')),
  state: usually('ACTIVE', fc.constantFrom('active', 'SHUTOFF', 'ERROR')),
  project: usually<string | undefined>(undefined, fc.constantFrom('p1', 'p2', '')),
  parents: usually<EntityRef[] | undefined>(undefined, arbRefs),
  children: usually<EntityRef[] | undefined>(undefined, arbRefs),
  attributes: usually<Record<string, unknown> | undefined>(undefined, arbAttributes),
  raw: usually<unknown>(undefined, fc.constantFrom({ id: 1 }, { id: 2 })),
});

/** The model's clock reads NOW; times run from 0 to 240 s, and a few are far in the future. */
export const NOW = Date.parse(t(200));
export const arbTime: fc.Arbitrary<string> = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 48 }).map((n) => t(n * 5)) },
  { weight: 1, arbitrary: fc.constantFrom('2099-01-01T00:00:00.000Z', t(200 + 400), t(200 + 31)) },
);

const arbSource = fc.constantFrom(...SOURCES);

/**
 * Mostly unscoped (single-cloud configs), sometimes one of two clouds: `nova.host` ids are then
 * qualified (`a/h1`), `nova.instance` and `neutron.port` ids are not, so the same key can be met
 * from two scopes too.
 */
const arbScope: fc.Arbitrary<EntityScope | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom(entityScope('a'), entityScope('b')) },
);

const arbSnapshot: fc.Arbitrary<Observation> = fc
  .record({
    at: arbTime,
    source: arbSource,
    types: fc.subarray([...TYPES], { minLength: 1 }),
    drafts: fc.array(arbDraft, { maxLength: 7 }),
    repeat: fc.array(fc.nat(), { maxLength: 2 }),
    missesBeforeDelete: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    keep: fc.option(fc.subarray(['nova.instance:a', 'nova.host:b', 'nova.host:a/b', 'neutron.port:c', 'nova.instance:zz']), { nil: undefined, freq: 3 }),
    keepRaw: fc.boolean(),
    scope: arbScope,
  })
  .map(({ at, source, types, drafts, repeat, missesBeforeDelete, keep, keepRaw, scope }) => {
    const records = drafts.filter((d) => types.includes(d.type as (typeof TYPES)[number])).map((d) => toEntity(d, source, at, true, keepRaw, scope));
    // A record repeated in one snapshot, as when a page shifts under a paginated poll.
    for (const i of repeat) if (records.length > 0) records.push(records[i % records.length]!);
    return {
      kind: 'snapshot' as const,
      source,
      at,
      types,
      records,
      ...(missesBeforeDelete !== undefined ? { missesBeforeDelete } : {}),
      ...(keep !== undefined ? { keep } : {}),
      ...(scope !== undefined ? { scope: scope.name } : {}),
    };
  });

export const arbChange: fc.Arbitrary<Observation> = fc
  .record({ at: arbTime, source: arbSource, draft: arbDraft, del: fc.boolean(), scope: arbScope })
  .map(({ at, source, draft, del, scope }) => ({
    kind: 'change' as const,
    source,
    at,
    action: del ? ('delete' as const) : ('upsert' as const),
    record: toEntity(del ? { type: draft.type, id: draft.id } : draft, source, at, !del, false, scope),
  }));

/**
 * A partial draft: type and id, and any subset of the other fields (an attribute may be set to
 * undefined: removed), as Aodh's state transitions and rule changes carry.
 */
const arbPatchDraft: fc.Arbitrary<EntityDraft> = fc
  .tuple(arbDraft, fc.subarray(['name', 'state', 'project', 'parents', 'children', 'attributes'] as const), fc.option(fc.constantFrom('flavor', 'az', 'zz'), { nil: undefined }))
  .map(([draft, fields, removed]) => {
    const patch: EntityDraft = { type: draft.type, id: draft.id };
    for (const field of fields) (patch as unknown as Record<string, unknown>)[field] = draft[field];
    if (removed !== undefined) patch.attributes = { ...patch.attributes, [removed]: undefined };
    return patch;
  });

export const arbPatch: fc.Arbitrary<Observation> = fc
  .record({ at: arbTime, source: arbSource, draft: arbPatchDraft, scope: arbScope, keepRaw: fc.boolean() })
  .map(({ at, source, draft, scope, keepRaw }) => ({ kind: 'patch' as const, source, at, record: toPatch(draft, source, at, keepRaw, scope) }));

const arbObservations = fc.array(fc.oneof(arbSnapshot, arbChange, arbPatch), { maxLength: 30 });

/**
 * The same, mostly in time order, as a live system sees them, a few of them late: the clock then
 * moves a step at a time and tombstones expire all through a run (in random order the clock jumps
 * near its end at once, and little expires after). Deletions of one key at several times are
 * common, so a tombstone replaced by a later one before it expires is too.
 */
const arbTimeline: fc.Arbitrary<Observation[]> = fc.tuple(arbObservations, fc.array(fc.nat(), { maxLength: 3 })).map(([observations, late]) => {
  const timeline = [...observations].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  for (const i of late) {
    if (timeline.length < 2) break;
    const [o] = timeline.splice(i % timeline.length, 1);
    timeline.splice(Math.min(timeline.length, (i % timeline.length) + 1 + (i % 4)), 0, o!);
  }
  return timeline;
});

/** How a run draws its observations and what it compares after each step. */
export interface CheckOptions {
  /** Observations mostly in time order ({@link arbTimeline}), and the tombstones compared after every step. */
  timeline?: boolean;
}

/** Default options in a good share of runs: a changed default must show. */
const arbOptions: fc.Arbitrary<ModelOptions> = fc.record({
  tombstoneMs: fc.option(fc.constantFrom(1_000, 10_000, 30_000, 60_000, 120_000, 300_000), { nil: undefined, freq: 3 }),
  maxClockSkewMs: fc.option(fc.constantFrom(0, 30_000, 600_000), { nil: undefined, freq: 3 }),
  now: fc.constant(() => NOW),
});

// ——— Comparison ———

/** An implementation event as the model states events: every field but the lazy hash. */
export function asModelEvent(e: EntityEvent): ModelEvent {
  return { action: e.action, origin: e.origin, entity: e.entity, ...(e.changed !== undefined ? { changed: e.changed } : {}) };
}

export const sorted = <V>(m: Iterable<[string, V]>): [string, V][] => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** Hashes must be a function of meaning, and meaning of hashes, over everything a run shows. */
class HashWitness {
  private readonly hashOf = new Map<string, string>();
  private readonly meaningOfHash = new Map<string, string>();
  check(entity: Entity, hash: string): void {
    const meaning = meaningOf(entity);
    expect(this.hashOf.get(meaning) ?? hash, `one meaning, two hashes: ${meaning}`).toBe(hash);
    expect(this.meaningOfHash.get(hash) ?? meaning, `one hash, two meanings`).toBe(meaning);
    this.hashOf.set(meaning, hash);
    this.meaningOfHash.set(hash, meaning);
  }
}

function diffOptionsOf(o: ModelOptions): DiffOptions {
  return { now: o.now, ...(o.tombstoneMs !== undefined ? { tombstoneMs: o.tombstoneMs } : {}), ...(o.maxClockSkewMs !== undefined ? { maxClockSkewMs: o.maxClockSkewMs } : {}) };
}

/** Every step of a random run emits what the model emits, and the run ends in the same entities and tombstones. */
/**
 * A snapshot's step names every key whose entry it set or deleted (`touched`): the state store
 * writes those and compares nothing else.
 */
function checkTouched(prev: BaselineState, step: BaselineStep, i: number): void {
  if (step.observation?.kind !== 'snapshot') return;
  const touched = new Set(step.touched);
  const changed = new Set<string>();
  for (const [key, entry] of step.state.entities) if (prev.entities.get(key) !== entry) changed.add(key);
  for (const key of prev.entities.keys()) if (!step.state.entities.has(key)) changed.add(key);
  expect([...changed].filter((key) => !touched.has(key)), `entries observation #${i} changed but did not name as touched`).toEqual([]);
}

export function checkSteps(runs: fc.Parameters<unknown>, check: CheckOptions = {}): void {
    fc.assert(
      fc.property(check.timeline === true ? arbTimeline : arbObservations, arbOptions, (observations, options) => {
        const model = new BaselineModel(options);
        const diffOptions = diffOptionsOf(options);
        const hashes = new HashWitness();
        let state: BaselineState = emptyBaseline();
        let skewed = 0;
        observations.forEach((o, i) => {
          const step = applyObservation(state, o, diffOptions);
          const expected = model.apply(o);
          expect(step.events.map(asModelEvent), `events of observation #${i}`).toEqual(expected);
          for (const e of step.events) hashes.check(e.entity, e.hash);
          if (step.skewedAt !== undefined) skewed++;
          checkTouched(state, step, i);
          if (check.timeline === true) expect(sorted(step.state.tombstones), `tombstones after observation #${i}`).toEqual(sorted(model.tombstones));
          state = step.state;
        });
        expect(sorted([...state.entities].map(([k, v]) => [k, v.entity]))).toEqual(sorted(model.entityMap()));
        expect(sorted(state.tombstones)).toEqual(sorted(model.tombstones));
        expect(skewed).toBe(model.clockSkewCorrections);
        for (const [, entry] of state.entities) hashes.check(entry.entity, entityHash(entry.entity));
      }),
      runs,
    );
  }

/**
 * The same with each snapshot prepared in slices (prepareSnapshot) interleaved with the steps before
 * it, its no-ops dropped once read (`drop`), and some snapshots' records arriving in pieces
 * (`arriving`, as the hub's normalizeEntity appends them) or failing part-way (never stepped).
 */
export function checkPreparedSteps(runs: fc.Parameters<unknown>, check: CheckOptions = {}): void {
    // Each snapshot's preparation (prepareSnapshot) runs in slices of 1–4 records or entries,
    // interleaved with the steps of the observations before it (changes, other snapshots, a
    // preparation of another snapshot), as the hub interleaves them; the steps, in their order,
    // must emit what the model emits and end where it ends. The implementation prepares and steps
    // a copy of each snapshot with a records array of its own (`drop` replaces its no-ops by the
    // baseline's entities; the model reads the records as given). With `arrive`, the copy's
    // records come a few per slice, each slice prepared `arriving`; with `fails`, they stop coming
    // part-way and the snapshot is stepped by neither (a poll that failed, rule 2).
    const arbRun = (check.timeline === true ? arbTimeline : arbObservations).chain((observations) =>
      fc.tuple(
        fc.constant(observations),
        // Per observation: how many steps before its own its preparation starts, and slice sizes.
        fc.array(
          fc.record({
            lead: fc.integer({ min: 0, max: 4 }),
            budgets: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 12 }),
            arrive: fc.boolean(),
            fails: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
          }),
          {
            minLength: observations.length,
            maxLength: observations.length,
          },
        ),
      ),
    );
    fc.assert(
      fc.property(arbRun, arbOptions, ([observations, schedule], options) => {
        const model = new BaselineModel(options);
        const diffOptions = diffOptionsOf(options);
        // The actions in time order: a step at 10·j + 5; slices of j's preparation spread from
        // 10·(j − lead) up to just before its step (several slices may fall between two steps).
        const actions: { time: number; j: number; budget?: number }[] = [];
        observations.forEach((o, j) => {
          actions.push({ time: 10 * j + 5, j });
          if (o.kind !== 'snapshot') return;
          const { lead, budgets } = schedule[j]!;
          const from = 10 * (j - lead);
          budgets.forEach((budget, k) => actions.push({ time: from + (k * (10 * lead + 4)) / budgets.length, j, budget }));
        });
        actions.sort((a, b) => a.time - b.time || (a.budget === undefined ? 1 : 0) - (b.budget === undefined ? 1 : 0));
        let state: BaselineState = emptyBaseline();
        /** The implementation's copy of each snapshot, and how many of its records have arrived. */
        const copies = new Map<number, { copy: SnapshotObservation; given: Entity[] }>();
        const copyOf = (j: number): { copy: SnapshotObservation; given: Entity[] } => {
          let c = copies.get(j);
          if (c === undefined) {
            const o = observations[j] as SnapshotObservation;
            copies.set(j, (c = { copy: { ...o, records: schedule[j]!.arrive ? [] : [...o.records] }, given: o.records }));
          }
          return c;
        };
        for (const action of actions) {
          const o = observations[action.j]!;
          const { arrive, fails } = schedule[action.j]!;
          if (action.budget !== undefined) {
            const { copy, given } = copyOf(action.j);
            // Arriving: a few more records (a failing poll's stop at half), fewer than the slice's
            // budget (so a slice can read all there is and go on), then the slice.
            const limit = fails ? given.length >> 1 : given.length;
            if (arrive) for (let n = 0; n < action.budget >> 1 && copy.records.length < limit; n++) copy.records.push(given[copy.records.length]!);
            prepareSnapshot(state, copy, action.budget, { drop: true, arriving: arrive && copy.records.length < given.length });
            continue;
          }
          if (o.kind === 'snapshot' && fails) continue;
          const taken = o.kind === 'snapshot' ? copyOf(action.j) : undefined;
          // The rest of the records arrive before the step (the hub steps a complete snapshot only).
          if (taken !== undefined) for (const { copy, given } = taken; copy.records.length < given.length; ) copy.records.push(given[copy.records.length]!);
          const step = applyObservation(state, taken?.copy ?? o, diffOptions);
          expect(step.events.map(asModelEvent), `events of observation #${action.j}`).toEqual(model.apply(o));
          checkTouched(state, step, action.j);
          if (check.timeline === true) expect(sorted(step.state.tombstones), `tombstones after observation #${action.j}`).toEqual(sorted(model.tombstones));
          state = step.state;
        }
        expect(sorted([...state.entities].map(([k, v]) => [k, v.entity]))).toEqual(sorted(model.entityMap()));
        expect(sorted([...state.entities].map(([k, v]) => [k, [v.at, v.bySnapshot, v.misses]]))).toEqual(
          sorted([...model.entities].map(([k, v]) => [k, [v.writtenAt, v.bySnapshot, v.misses]])),
        );
        expect(sorted(state.tombstones)).toEqual(sorted(model.tombstones));
      }),
      runs,
    );
  }

/** sameMeaning, entityHash and changedFields agree with the model on any two entities. */
export function checkMeaning(runs: fc.Parameters<unknown>): void {
    const pair = fc.tuple(arbDraft, arbDraft, fc.boolean(), arbScope, arbScope).map(([x, y, sameKey, sx, sy]) => {
      const a = toEntity(x, 'nova', t(0), true, false, sx);
      const b = toEntity(sameKey ? { ...y, type: x.type, id: x.id } : y, 'bus', t(1), true, false, sameKey && x.type === 'nova.host' ? sx : sy);
      return [a, b] as const;
    });
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const same = meaningOf(a) === meaningOf(b);
        expect(sameMeaning(a, b)).toBe(same);
        expect(sameMeaning(b, a)).toBe(same);
        expect(entityHash(a) === entityHash(b)).toBe(same);
        if (a.key === b.key) {
          const model = new BaselineModel({ now: () => NOW });
          model.apply({ kind: 'change', source: 'nova', action: 'upsert', at: t(0), record: a });
          const events = model.apply({ kind: 'change', source: 'bus', action: 'upsert', at: t(1), record: b });
          expect(same ? [] : [changedFields(a, b)]).toEqual(events.map((e) => e.changed));
        }
      }),
      runs,
    );
  }

/**
 * The records a preparation drops as no-ops (`drop`) are made again exactly wherever the step
 * needs them: a snapshot repeats the one before it (same drafts, a later time, so every record is
 * a no-op and most are dropped), then changes, some stamped before it and some after, touch its
 * keys before its step; every step must emit what the model emits. (The general run above meets
 * a dropped record that its step needs again only now and then.)
 */
export function checkDroppedRecords(runs: fc.Parameters<unknown>): void {
  const arbRun = fc.record({
    source: arbSource,
    // The second snapshot's source (another one takes over a type, as after a config change).
    other: usually<(typeof SOURCES)[number] | undefined>(undefined, arbSource),
    types: fc.subarray([...TYPES], { minLength: 1 }),
    drafts: fc.array(arbDraft, { minLength: 1, maxLength: 7 }),
    // The second snapshot keeps raw records (a record with `raw` is not dropped), and a record
    // may be stamped otherwise than its snapshot (not dropped either: it could not be made again).
    keepRaw: fc.boolean(),
    restamped: fc.array(fc.nat(), { maxLength: 2 }),
    scope: arbScope,
    // The changes between the second snapshot's preparation and its step: at 0–115 s (it is at 60 s).
    changes: fc.array(arbChange.map((c) => ({ ...c, at: t(Date.parse(c.at) % 120_000 / 1000) })), { maxLength: 6 }),
    budget: fc.integer({ min: 1, max: 8 }),
  });
  fc.assert(
    fc.property(arbRun, ({ source: firstSource, other, types, drafts, keepRaw, restamped, scope, changes, budget }) => {
      const snapshot = (at: string, source: string, raw = false): SnapshotObservation => ({
        kind: 'snapshot',
        source,
        at,
        types,
        records: drafts.filter((d) => types.includes(d.type as (typeof TYPES)[number])).map((d) => toEntity(d, source, at, true, raw, scope)),
        ...(scope !== undefined ? { scope: scope.name } : {}),
      });
      const model = new BaselineModel({ now: () => NOW });
      const first = snapshot(t(0), firstSource);
      let state = applyObservation(emptyBaseline(), first, { now: () => NOW }).state;
      model.apply(first);
      const second = snapshot(t(60), other ?? firstSource, keepRaw);
      for (const i of restamped) if (second.records.length > 0) second.records[i % second.records.length] = { ...second.records[i % second.records.length]!, observedAt: t(55) };
      const copy: SnapshotObservation = { ...second, records: [...second.records] };
      while (!prepareSnapshot(state, copy, budget, { drop: true })) continue;
      for (const [i, change] of changes.entries()) {
        const step = applyObservation(state, change, { now: () => NOW });
        expect(step.events.map(asModelEvent), `events of change #${i}`).toEqual(model.apply(change));
        state = step.state;
      }
      const step = applyObservation(state, copy, { now: () => NOW });
      expect(step.events.map(asModelEvent), 'events of the second snapshot').toEqual(model.apply(second));
      expect(sorted([...step.state.entities].map(([k, v]) => [k, v.entity]))).toEqual(sorted(model.entityMap()));
    }),
    runs,
  );
}
