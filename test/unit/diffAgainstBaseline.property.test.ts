import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BaselineState, applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { entityHash, entityMeaning, sameMeaning } from '../../src/hash.js';
import type { Entity, EntityEvent, Observation } from '../../src/model.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';

const ids = ['a', 'b', 'c', 'd', 'e'];
const types = ['nova.instance', 'nova.host'] as const;

const arbEntity: fc.Arbitrary<Entity> = fc
  .record({
    type: fc.constantFrom(...types),
    id: fc.constantFrom(...ids),
    state: fc.constantFrom('ACTIVE', 'SHUTOFF', 'ERROR'),
    name: fc.option(fc.constantFrom('web', 'db'), { nil: undefined }),
    flavor: fc.option(fc.constantFrom('m1', 'm2'), { nil: undefined }),
    parent: fc.option(fc.constantFrom('h1', 'h2'), { nil: undefined }),
    project: fc.option(fc.constantFrom('p1', 'p2'), { nil: undefined }),
    child: fc.option(fc.constantFrom('port1', 'port2'), { nil: undefined }),
  })
  .map((r) =>
    entity(r.id, r.state, {
      type: r.type,
      name: r.name,
      attributes: r.flavor ? { flavor: r.flavor } : {},
      parents: r.parent ? [{ type: 'nova.host', id: r.parent }] : [],
      project: r.project,
      children: r.child ? [{ type: 'neutron.port', id: r.child }] : [],
    }),
  );

/** Snapshots and changes at times that mostly go forward but sometimes arrive late. */
const arbObservation: fc.Arbitrary<Observation> = fc.oneof(
  fc
    .record({
      at: fc.integer({ min: 0, max: 200 }),
      types: fc.subarray([...types], { minLength: 1 }),
      records: fc.uniqueArray(arbEntity, { selector: (e) => e.key, maxLength: 8 }),
      misses: fc.integer({ min: 1, max: 3 }),
    })
    .map(({ at, types: ts, records, misses }) =>
      snapshot(
        t(at),
        records.filter((r) => ts.includes(r.type as (typeof types)[number])),
        ts,
        { missesBeforeDelete: misses },
      ),
    ),
  fc.record({ at: fc.integer({ min: 0, max: 200 }), e: arbEntity, del: fc.boolean() }).map(({ at, e, del }) => (del ? remove(t(at), e) : upsert(t(at), e))),
);

/** What a consumer holds after applying every event in order. */
function replay(events: readonly EntityEvent[], into: Map<string, Entity>): void {
  for (const e of events) {
    if (e.action === 'delete') {
      expect(into.has(e.entity.key), `delete of unknown ${e.entity.key}`).toBe(true);
      into.delete(e.entity.key);
    } else {
      expect(into.has(e.entity.key), `${e.action} of ${e.entity.key}`).toBe(e.action === 'update');
      if (e.action === 'update') expect(e.hash).not.toBe(entityHash(into.get(e.entity.key)!));
      expect(e.hash).toBe(entityHash(e.entity));
      into.set(e.entity.key, e.entity);
    }
  }
}

describe('diffAgainstBaseline (properties)', () => {
  it('replaying the emitted events onto an empty map gives exactly the baseline the operator holds', () => {
    fc.assert(
      fc.property(fc.array(arbObservation, { maxLength: 40 }), fc.integer({ min: 1, max: 300 }), (observations, tombstoneSec) => {
        let state: BaselineState = emptyBaseline();
        const consumer = new Map<string, Entity>();
        for (const o of observations) {
          const step = applyObservation(state, o, { tombstoneMs: tombstoneSec * 1000 });
          replay(step.events, consumer);
          state = step.state;
          const held = new Map([...state.entities].map(([k, v]) => [k, v.entity]));
          expect(consumer).toEqual(held);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('is pure: reducing an older state again (a discarded detour) changes nothing that follows', () => {
    fc.assert(
      fc.property(fc.array(arbObservation, { minLength: 1, maxLength: 25 }), fc.array(arbObservation, { maxLength: 5 }), fc.nat(), (observations, detour, at) => {
        const straight: string[][] = [];
        let state = emptyBaseline();
        for (const o of observations) {
          const step = applyObservation(state, o);
          straight.push(step.events.map((e) => `${e.action} ${e.entity.key} ${e.entity.state}`));
          state = step.state;
        }
        const cut = at % observations.length;
        let again = emptyBaseline();
        const replayed: string[][] = [];
        observations.forEach((o, i) => {
          if (i === cut) {
            // Go somewhere else from this state and throw the result away…
            let side = again;
            for (const d of detour) side = applyObservation(side, d).state;
          }
          const step = applyObservation(again, o);
          replayed.push(step.events.map((e) => `${e.action} ${e.entity.key} ${e.entity.state}`));
          again = step.state;
        });
        // …the same observations from the same states give the same events and the same baseline.
        expect(replayed).toEqual(straight);
        expect([...again.entities.keys()].sort()).toEqual([...state.entities.keys()].sort());
      }),
      { numRuns: 300 },
    );
  });

  it('a snapshot that repeats the current state makes no event', () => {
    fc.assert(
      fc.property(fc.array(arbObservation, { maxLength: 20 }), (observations) => {
        let state = emptyBaseline();
        for (const o of observations) state = applyObservation(state, o).state;
        const current = [...state.entities.values()].map((e) => e.entity);
        const again = applyObservation(state, snapshot(t(1000), current, [...types]));
        expect(again.events).toEqual([]);
      }),
    );
  });

  it('sameMeaning and entityHash agree with the meaning text', () => {
    fc.assert(
      fc.property(arbEntity, arbEntity, (x, y) => {
        const same = entityMeaning(x) === entityMeaning(y);
        expect(sameMeaning(x, y)).toBe(same);
        expect(entityHash(x) === entityHash(y)).toBe(same);
      }),
      { numRuns: 2000 },
    );
  });

  it('entityHash tells apart values that only an injective encoding separates', () => {
    const attrs = fc.dictionary(
      fc.string({ unit: 'binary', maxLength: 6 }),
      fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 })),
      { maxKeys: 3 },
    );
    const arb = fc.record({ id: fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }), name: fc.option(fc.string({ unit: 'binary', maxLength: 4 }), { nil: undefined }), attributes: attrs });
    fc.assert(
      fc.property(arb, arb, (a, b) => {
        const x = entity(a.id, 'UP', { name: a.name, attributes: a.attributes });
        const y = entity(b.id, 'UP', { name: b.name, attributes: b.attributes });
        expect(entityHash(x) === entityHash(y)).toBe(entityMeaning(x) === entityMeaning(y));
      }),
      { numRuns: 3000 },
    );
  });

  it('sameMeaning compares attributes whatever their key order, undefined members and nesting', () => {
    // Few keys and values, so equal and near-equal pairs are common; insertion order is shuffled.
    const value = fc.oneof(fc.constantFrom('x', 'y', 1, null, undefined), fc.constant({ b: 1, a: [1, { c: 'x' }] }), fc.constant({ a: [1, { c: 'x' }], b: 1 }));
    const attrs = fc
      .uniqueArray(fc.tuple(fc.constantFrom('az', 'flavor', 'host', 'a'), value), { selector: ([k]) => k, maxLength: 4 })
      .chain((pairs) => fc.shuffledSubarray(pairs, { minLength: pairs.length, maxLength: pairs.length }))
      .map((pairs) => Object.fromEntries(pairs));
    fc.assert(
      fc.property(attrs, attrs, (a, b) => {
        // x and y as normalizeEntity makes them (sorted keys); b as a mapping wrote it.
        const x = entity('a', 'UP', { attributes: a });
        const y = entity('a', 'UP', { attributes: b });
        const same = entityMeaning(x) === entityMeaning(y);
        expect(sameMeaning(x, y)).toBe(same);
        expect(sameMeaning(x, { ...x, attributes: b })).toBe(same);
        expect(sameMeaning({ ...y, attributes: b }, x)).toBe(same);
        expect(sameMeaning(x, { ...x, attributes: Object.fromEntries(Object.entries(a).reverse()) })).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});
