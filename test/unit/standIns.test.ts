import { describe, expect, it } from 'vitest';
import { toEntity } from '../../operators/normalizeEntity.js';
import { recordAt, recordsOf, recordsWhere, standIn, standInsOf, standsIn } from '../../operators/standIns.js';
import type { Entity, SnapshotObservation } from '../../src/model.js';
import { t } from '../support/entities.js';

/**
 * Stand-ins (operators/standIns.ts) through their functions: whatever a slot holds, the record a
 * snapshot was given is what comes out. The preparation (diffAgainstBaseline) and normalizeEntity
 * put stand-ins in place; the step, the clock's correction and the hub's copy of a snapshot with
 * an inactive type (recordsWhere) read them back.
 */

const AT = t(10);

/** The record the source's mapping gives for `id` in the snapshot of AT. */
const record = (id: string, raw?: unknown): Entity =>
  toEntity({ type: 'nova.instance', id, state: 'ACTIVE', ...(raw === undefined ? {} : { raw }) }, 'nova', AT, true, raw !== undefined);

/** The baseline's entity of the same meaning: observed earlier, by the same source. */
const held = (id: string): Entity => toEntity({ type: 'nova.instance', id, state: 'ACTIVE' }, 'nova', t(0));

const snapshotOf = (records: Entity[]): SnapshotObservation => ({ kind: 'snapshot', source: 'nova', at: AT, types: ['nova.instance'], records });

/** What a writer sees of each record: every field, in its order. */
const written = (records: readonly Entity[]): string[] => records.map((r) => JSON.stringify(r));

describe('stand-ins: the baseline’s entity in the slot of a record', () => {
  it('makes each record again with its snapshot’s time and source, stand-ins appended one after another included', () => {
    const records: Entity[] = [];
    // As normalizeEntity appends them: two kept records in a row, a mapped one, a kept one.
    const b = held('b');
    standIn(records, 0, held('a'), AT, 'nova');
    standIn(records, 1, b, AT, 'nova');
    records.push(record('c'));
    standIn(records, 3, held('d'), AT, 'nova');
    const snapshot = snapshotOf(records);
    // The slot holds the baseline's entity; what comes out is its record.
    expect(records[1]).toBe(b);
    expect(written(recordsOf(snapshot))).toEqual(written(['a', 'b', 'c', 'd'].map((id) => record(id))));
    expect(recordsOf(snapshot)).toStrictEqual(['a', 'b', 'c', 'd'].map((id) => record(id)));
    expect(recordAt(snapshot, 2)).toBe(records[2]);
    const d = standInsOf(records);
    expect([0, 1, 2, 3, 4].map((i) => standsIn(d, i))).toEqual([true, true, false, true, false]);
    expect(standsIn(standInsOf([record('e')]), 0)).toBe(false);
  });

  it('makes a record again in a slot past many others (the stand-ins grown to it)', () => {
    const records = Array.from({ length: 40 }, (_, i) => record(`r${i}`));
    standIn(records, 3, held('r3'), AT, 'nova');
    standIn(records, 39, held('r39'), AT, 'nova');
    standIn(records, 40, held('r40'), AT, 'nova');
    const out = recordsOf(snapshotOf(records));
    expect(out).toHaveLength(41);
    expect(written(out)).toEqual(written(Array.from({ length: 41 }, (_, i) => record(`r${i}`))));
  });

  it('recordsWhere: the records kept, each stand-in still standing in for its record and every other record as it was', () => {
    const own = record('b', { id: 'b', status: 'ACTIVE' });
    const records: Entity[] = [];
    standIn(records, 0, held('a'), AT, 'nova');
    records.push(record('gone'));
    records.push(own);
    standIn(records, 3, held('d'), AT, 'nova');
    const snapshot = snapshotOf(records);
    const copy = recordsWhere(snapshot, (r) => r.id !== 'gone');
    // The stand-ins still hold the baseline's entities; the copy has stand-ins of its own.
    expect(copy[0]).toBe(records[0]);
    const out = recordsOf({ ...snapshot, records: copy });
    expect(out[1]).toBe(own);
    expect(out).toStrictEqual([record('a'), own, record('d')]);
    expect(out[1]!.raw).toEqual({ id: 'b', status: 'ACTIVE' });
  });
});
