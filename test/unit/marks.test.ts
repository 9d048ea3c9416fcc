import { describe, expect, it } from 'vitest';
import { mark } from '../../src/marks.js';

describe('marks: values kept on the objects the hub emits', () => {
  it('a value set is got back, per mark, and set again', () => {
    const seq = mark<number>('seq');
    const at = mark<string>('at');
    const event = { action: 'create', entity: { key: 'a' } };
    expect(seq.get(event)).toBeUndefined();
    seq.set(event, 1);
    at.set(event, '2026-12-01T00:00:00Z');
    expect(seq.get(event)).toBe(1);
    expect(at.get(event)).toBe('2026-12-01T00:00:00Z');
    seq.set(event, 2);
    expect(seq.get(event)).toBe(2);
    // Two marks of one name are two marks (two hubs never read each other's).
    expect(mark<number>('seq').get(event)).toBeUndefined();
  });

  it('is not a field anyone else sees: JSON, keys, spread, structuredClone, deep equality', () => {
    const m = mark<number>('seq');
    const event = { action: 'create', entity: { key: 'a' } };
    m.set(event, 7);
    expect(JSON.stringify(event)).toBe('{"action":"create","entity":{"key":"a"}}');
    expect(Object.keys(event)).toEqual(['action', 'entity']);
    expect(m.get({ ...event })).toBeUndefined();
    expect(m.get(structuredClone(event))).toBeUndefined();
    expect(event).toEqual({ action: 'create', entity: { key: 'a' } });
  });

  it('an object that cannot take a property (frozen, sealed) keeps its value all the same', () => {
    const m = mark<number>('seq');
    const frozen = Object.freeze({ kind: 'synced', count: 0 });
    const sealed = Object.seal({ kind: 'resync' });
    m.set(frozen, 3);
    m.set(sealed, 4);
    expect(m.get(frozen)).toBe(3);
    expect(m.get(sealed)).toBe(4);
    m.set(frozen, 5);
    expect(m.get(frozen)).toBe(5);
  });

  it('an object sealed or made non-extensible after its value was set takes a new value', () => {
    const m = mark<number>('seq');
    const sealed = { kind: 'synced', count: 0 };
    const closed = { kind: 'resync' };
    m.set(sealed, 1);
    m.set(closed, 1);
    Object.seal(sealed);
    Object.preventExtensions(closed);
    m.set(sealed, 2);
    m.set(closed, 3);
    expect(m.get(sealed)).toBe(2);
    expect(m.get(closed)).toBe(3);
  });

  it('an object frozen after its value was set (a consumer froze the event) takes a new value, and others keep theirs', () => {
    const m = mark<number>('hash');
    const event = { action: 'create' };
    const other = { action: 'update' };
    m.set(event, 1);
    m.set(other, 7);
    Object.freeze(event);
    expect(() => m.set(event, 2)).not.toThrow();
    expect(m.get(event)).toBe(2);
    expect(m.get(other)).toBe(7);
    m.set(other, 8);
    expect(m.get(other)).toBe(8);
    expect(Object.keys(event)).toEqual(['action']);
  });
});
