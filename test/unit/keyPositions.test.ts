/**
 * KeyPositions (operators/diffAgainstBaseline.ts): a snapshot's key → position of its first
 * record, in an open-addressed table compared with the records' own keys, through growth as the
 * records arrive; the same answers as a Map.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entity, SnapshotObservation } from '../../src/model.js';
import { KeyPositions } from '../../operators/diffAgainstBaseline.js';

const snapshotOf = (keys: string[]): SnapshotObservation => ({ kind: 'snapshot', source: 's', at: '2026-12-01T00:00:00Z', types: ['t'], records: keys.map((key) => ({ key }) as Entity) });

describe('KeyPositions', () => {
  it('answers as a Map of first positions, through growth, with records arriving after it was made', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 6 }), { maxLength: 300 }), fc.nat({ max: 300 }), fc.array(fc.string({ maxLength: 6 }), { maxLength: 50 }), (keys, already, probes) => {
        // Made when `already` records were there; the rest arrive afterwards (appended in place).
        const snapshot = snapshotOf(keys.slice(0, already));
        const positions = new KeyPositions(snapshot);
        const model = new Map<string, number>();
        for (let i = 0; i < keys.length; i += 1) {
          if (i >= snapshot.records.length) snapshot.records.push({ key: keys[i]! } as Entity);
          // A claim answers the position already held, or records this one (every other key by `set`).
          if (i % 2 === 0) expect(positions.claim(keys[i]!, i)).toBe(model.get(keys[i]!));
          else positions.set(keys[i]!, i);
          if (!model.has(keys[i]!)) model.set(keys[i]!, i);
        }
        expect(positions.size).toBe(model.size);
        for (const key of [...keys, ...probes]) {
          expect(positions.get(key)).toBe(model.get(key));
          expect(positions.has(key)).toBe(model.has(key));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a key is found by its content (an equal string made elsewhere), and a stand-in at its position answers for it', () => {
    const snapshot = snapshotOf(Array.from({ length: 5000 }, (_, i) => `nova.instance:${i}`));
    const positions = new KeyPositions(snapshot);
    for (let i = 0; i < 5000; i += 1) positions.set(snapshot.records[i]!.key, i);
    expect(positions.get(['nova.instance:', '4321'].join(''))).toBe(4321);
    snapshot.records[4321] = { key: 'nova.instance:4321', name: 'stand-in' } as Entity;
    expect(positions.get('nova.instance:4321')).toBe(4321);
    expect(positions.has('nova.instance:5000')).toBe(false);
  });
});
