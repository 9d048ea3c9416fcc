import { hash as digest } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalize, changedFields, entityHash, entityMeaning, sameMeaning } from '../../src/hash.js';
import type { Entity } from '../../src/model.js';
import { entity } from '../support/entities.js';

/**
 * src/hash.ts against its documented contract, field by field: written to kill the mutants that
 * the property tests let live (docs/testing.md, "Mutation testing"). The expected hashes are
 * built here from the byte format hash.ts documents, token by token, not with its own writer.
 */

// ---- the documented byte format, written out by hand -------------------------------------------

/** A string token: 0x01, its length in UTF-16 units (4 bytes, big-endian), each unit (< 0x80: one byte, else 0xFF hi lo). */
function str(s: string): number[] {
  const n = s.length;
  const out = [0x01, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) out.push(c);
    else out.push(0xff, c >> 8, c & 0xff);
  }
  return out;
}
const ABSENT = [0x7e]; // ~
const mark = (c: string): number[] => [c.charCodeAt(0)];
const sha1 = (tokens: number[][]): string => digest('sha1', Buffer.from(tokens.flat()), 'base64');

const base: Entity = {
  key: 'nova.instance:vm-1',
  type: 'nova.instance',
  id: 'vm-1',
  name: 'web',
  state: 'ACTIVE',
  project: 'p1',
  parents: [{ type: 'nova.host', id: 'h1' }],
  children: [{ type: 'neutron.port', id: 'port-1' }],
  observedAt: '2026-11-25T12:00:00.000Z',
  source: 'nova',
  attributes: {},
};
const withAttrs = (attributes: Record<string, unknown>, extra: Partial<Entity> = {}): Entity => ({ ...base, ...extra, attributes });

describe('entityHash: the documented token stream, byte for byte', () => {
  it('writes type, id, name, state, project, parents, children and each attribute by kind', () => {
    const e = withAttrs({ a: 'x', b: 1.5, c: true, d: false, e: null, f: { z: [1, 'y'] }, g: Number.POSITIVE_INFINITY, h: undefined, i: -2 });
    const tokens = [
      str('nova.instance'),
      str('vm-1'),
      str('web'),
      str('ACTIVE'),
      str('p1'),
      mark('r'), str('1'), str('nova.host'), str('h1'),
      mark('r'), str('1'), str('neutron.port'), str('port-1'),
      mark('a'),
      str('a'), mark('s'), str('x'),
      str('b'), mark('n'), str('1.5'),
      str('c'), mark('T'),
      str('d'), mark('F'),
      str('e'), mark('z'),
      str('f'), mark('j'), str('{"z":[1,"y"]}'),
      str('g'), mark('z'),
      str('i'), mark('n'), str('-2'),
    ];
    expect(entityHash(e)).toBe(sha1(tokens));
    // The same text as entityMeaning documents it.
    expect(entityMeaning(e)).toBe(
      '13:nova.instance4:vm-13:web6:ACTIVE2:p1r1:19:nova.host2:h1r1:112:neutron.port6:port-1a1:as1:x1:bn3:1.51:cT1:dF1:ez1:fj13:{"z":[1,"y"]}1:gz1:in2:-2',
    );
  });

  it('writes an absent name and project as `~`, and empty refs as a zero count', () => {
    const e: Entity = { ...base, name: undefined, project: undefined, parents: [], children: [] };
    expect(entityHash(e)).toBe(sha1([str('nova.instance'), str('vm-1'), ABSENT, str('ACTIVE'), ABSENT, mark('r'), str('0'), mark('r'), str('0'), mark('a')]));
    expect(entityMeaning(e)).toBe('13:nova.instance4:vm-1~6:ACTIVE~r1:0r1:0a');
  });

  it('encodes units from 0x80 up in three bytes, and grows its buffer for a long value (keeping what it held)', () => {
    const long = 'ü\u0080\u007f€'.repeat(20_000) + 'end';
    const e = withAttrs({ note: long, after: 'tail' }, { name: 'näme' });
    const tokens = [
      str('nova.instance'),
      str('vm-1'),
      str('näme'),
      str('ACTIVE'),
      str('p1'),
      mark('r'), str('1'), str('nova.host'), str('h1'),
      mark('r'), str('1'), str('neutron.port'), str('port-1'),
      mark('a'),
      str('note'), mark('s'), str(long),
      str('after'), mark('s'), str('tail'),
    ];
    expect(entityHash(e)).toBe(sha1(tokens));
    // The buffer is reused: the next hash starts from an empty one.
    expect(entityHash(base)).toBe(entityHash({ ...base }));
    expect(entityHash(e)).toBe(sha1(tokens));
    expect(entityHash(withAttrs({ x: '\u0080' }))).not.toBe(entityHash(withAttrs({ x: '\u0000\u0080' })));
  });

  it('changes with every field of the meaning, and with none of the rest', () => {
    const h = entityHash(base);
    const variants: Partial<Entity>[] = [
      { type: 'nova.host' },
      { id: 'vm-2' },
      { name: 'db' },
      { name: undefined },
      { state: 'SHUTOFF' },
      { project: 'p2' },
      { project: undefined },
      { parents: [] },
      { parents: [{ type: 'nova.host', id: 'h2' }] },
      { parents: [{ type: 'nova.zone', id: 'h1' }] },
      { children: [] },
      { children: [{ type: 'neutron.port', id: 'port-2' }] },
      { attributes: { flavor: 'm1' } },
    ];
    for (const v of variants) expect(entityHash({ ...base, ...v }), JSON.stringify(v)).not.toBe(h);
    expect(entityHash({ ...base, observedAt: '2030-01-01T00:00:00.000Z', source: 'other', raw: { x: 1 } })).toBe(h);
    // Members JSON leaves out are not part of the meaning either.
    expect(entityHash(withAttrs({ a: 1, f: () => 1, u: undefined }))).toBe(entityHash(withAttrs({ a: 1 })));
    // A field's value cannot slide into the next one.
    expect(entityHash({ ...base, name: 'ab', state: 'C' })).not.toBe(entityHash({ ...base, name: 'a', state: 'BC' }));
    expect(entityHash({ ...base, parents: [], children: [{ type: 'nova.host', id: 'h1' }] })).not.toBe(
      entityHash({ ...base, parents: [{ type: 'nova.host', id: 'h1' }], children: [] }),
    );
  });
});

describe('canonicalJson', () => {
  it('writes each kind of value as JSON does, with sorted keys', () => {
    expect(canonicalJson('a"b')).toBe('"a\\"b"');
    expect(canonicalJson(1.5)).toBe('1.5');
    expect(canonicalJson(Number.NaN)).toBe('null');
    expect(canonicalJson(Number.NEGATIVE_INFINITY)).toBe('null');
    expect(canonicalJson(true)).toBe('true');
    expect(canonicalJson(false)).toBe('false');
    expect(canonicalJson(12n)).toBe('12');
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson(undefined)).toBe('null');
    expect(canonicalJson(() => 1)).toBe('null');
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson([1, undefined, 'x', [true]])).toBe('[1,null,"x",[true]]');
    expect(canonicalJson(new Date(Date.UTC(2026, 0, 2)))).toBe('"2026-01-02T00:00:00.000Z"');
    expect(canonicalJson({})).toBe('{}');
    expect(canonicalJson({ c: 3, a: 1, b: undefined, d: () => 1, 'e"': { y: null, x: [] } })).toBe('{"a":1,"c":3,"e\\"":{"x":[],"y":null}}');
    expect(canonicalJson({ b: undefined, a: 1 })).toBe('{"a":1}');
  });
});

describe('canonicalize', () => {
  it('hands back the very value when every object in it is already sorted', () => {
    const sorted = { '': 0, a: [{ x: 1, y: 2 }, 3], b: { c: new Date(0), d: null }, e: 'f' };
    expect(canonicalize(sorted)).toBe(sorted);
    const list = [{ a: 1 }, 'x', null];
    expect(canonicalize(list)).toBe(list);
    expect(canonicalize('text')).toBe('text');
    // An array's indices are not keys to sort: 10 comes after 9.
    const long = { a: Array.from({ length: 12 }, (_, i) => ({ i })) };
    expect(canonicalize(long)).toBe(long);
  });

  it('sorts the keys of every object, however deep, into a copy', () => {
    const cases: unknown[] = [{ b: 1, a: 2 }, { a: { d: 1, c: 2 } }, { a: [{ z: 1, y: 2 }] }, [{ b: 1, a: 2 }], [[{ b: 1, a: 2 }]]];
    for (const value of cases) {
      const out = canonicalize(value);
      expect(out, JSON.stringify(value)).not.toBe(value);
      expect(out).toEqual(value);
      expect(JSON.stringify(out)).toBe(canonicalJson(value));
    }
  });
});

describe('sameMeaning', () => {
  it('is false for a difference in any field of the meaning', () => {
    const variants: Partial<Entity>[] = [
      { type: 'nova.host' },
      { id: 'vm-2' },
      { name: 'db' },
      { state: 'SHUTOFF' },
      { project: 'p2' },
      { project: undefined },
      { parents: [] },
      { parents: [{ type: 'nova.host', id: 'h2' }] },
      { parents: [{ type: 'nova.zone', id: 'h1' }] },
      { children: [] },
      { children: [{ type: 'neutron.port', id: 'port-2' }] },
      { children: [{ type: 'neutron.net', id: 'port-1' }] },
      { attributes: { flavor: 'm1' } },
    ];
    for (const v of variants) {
      expect(sameMeaning(base, { ...base, ...v }), JSON.stringify(v)).toBe(false);
      expect(sameMeaning({ ...base, ...v }, base), JSON.stringify(v)).toBe(false);
    }
    expect(sameMeaning(base, { ...base, observedAt: 'later', source: 'other', parents: [{ type: 'nova.host', id: 'h1' }] })).toBe(true);
  });

  it('compares attributes as JSON: key order, undefined members, nesting, non-finite numbers', () => {
    const same = (a: Record<string, unknown>, b: Record<string, unknown>): boolean => sameMeaning(withAttrs(a), withAttrs(b));
    expect(same({ a: 1, b: 2 }, { a: 1, b: 2 })).toBe(true);
    expect(same({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(true);
    expect(same({ a: 1, u: undefined }, { a: 1 })).toBe(true);
    expect(same({ a: 1 }, { u: undefined, a: 1 })).toBe(true);
    expect(same({ a: 1, u: 2 }, { a: 1, u: undefined })).toBe(false);
    expect(same({ a: 1, u: undefined, b: 2 }, { a: 1, u: undefined, b: 2 })).toBe(true);
    expect(same({ a: 1, b: 2 }, { a: 1, u: undefined, b: 2 })).toBe(true);
    // An undefined member of b past a's last name, named as a longer comparison before left it.
    expect(same({ a: 1, b: 1, s: 1 }, { a: 1, b: 1, s: 1 })).toBe(true);
    expect(same({ a: 1, b: 1 }, { a: 1, b: 1, s: undefined })).toBe(true);
    expect(same({ a: 1, b: 2 }, { a: 1 })).toBe(false);
    expect(same({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(same({ b: 2, a: 1 }, { a: 1 })).toBe(false);
    expect(same({ a: 1 }, { b: 2, a: 1 })).toBe(false);
    expect(same({ a: 1 }, { b: 1 })).toBe(false);
    expect(same({ a: 1, b: 2 }, { a: 1, b: 3 })).toBe(false);
    expect(same({ b: 2, a: 1 }, { a: 1, b: 3 })).toBe(false);
    expect(same({ a: 1 }, { a: '1' })).toBe(false);
    expect(same({ a: { x: [1, { y: 2, z: 3 }] } }, { a: { x: [1, { z: 3, y: 2 }] } })).toBe(true);
    expect(same({ a: { x: 1 } }, { a: { x: 1, y: 2 } })).toBe(false);
    expect(same({ a: { x: 1, y: 2 } }, { a: { x: 1 } })).toBe(false);
    expect(same({ a: { x: 1, u: undefined } }, { a: { x: 1 } })).toBe(true);
    expect(same({ a: { x: 1 } }, { a: { x: 1, u: undefined } })).toBe(true);
    expect(same({ a: { x: 1 } }, { a: { y: 1 } })).toBe(false);
    expect(same({ a: [1, 2] }, { a: [1, 2, 3] })).toBe(false);
    expect(same({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(same({ a: [1] }, { a: { 0: 1 } })).toBe(false);
    expect(same({ a: { 0: 1 } }, { a: [1] })).toBe(false);
    expect(same({ a: [undefined] }, { a: [null] })).toBe(true);
    expect(same({ a: [null] }, { a: [undefined] })).toBe(true);
    expect(same({ a: null }, { a: {} })).toBe(false);
    expect(same({ a: {} }, { a: null })).toBe(false);
    expect(same({ a: Number.NaN }, { a: Number.POSITIVE_INFINITY })).toBe(true);
    expect(same({ a: Number.NaN }, { a: 1 })).toBe(false);
    expect(same({ a: 1 }, { a: Number.NaN })).toBe(false);
    expect(same({ a: Number.NaN }, { a: 'NaN' })).toBe(false);
    expect(same({ a: 'x' }, { a: Number.POSITIVE_INFINITY })).toBe(false);
    expect(same({ a: {} }, { a: 5 })).toBe(false);
    expect(same({ a: 5 }, { a: {} })).toBe(false);
    // Inside an object a non-finite number is not null (as entityHash tells them apart).
    expect(same({ a: { x: Number.NaN } }, { a: { x: null } })).toBe(false);
    expect(same({ a: new Date(0) }, { a: new Date(0) })).toBe(true);
    expect(same({ a: new Date(0) }, { a: new Date(1) })).toBe(false);
    expect(same({ a: new Date(0) }, { a: {} })).toBe(false);
    expect(same({ a: {} }, { a: new Date(0) })).toBe(false);
    // The scratch space of one comparison never leaks into the next.
    expect(same({ a: 1, b: 2, c: 3 }, { a: 1, b: 2, c: 3 })).toBe(true);
    expect(same({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(same({}, { b: 2 })).toBe(false);
    expect(same({ b: 2 }, {})).toBe(false);
    const shared = { a: 1 };
    expect(sameMeaning(withAttrs(shared), withAttrs(shared))).toBe(true);
  });

  it('agrees with entityHash on the cases above', () => {
    const pairs: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ a: 1, u: undefined }, { a: 1 }],
      [{ a: 1 }, { a: 1, b: 2 }],
      [{ a: [undefined] }, { a: [null] }],
      [{ a: Number.NaN }, { a: Number.NEGATIVE_INFINITY }],
    ];
    for (const [a, b] of pairs) expect(sameMeaning(withAttrs(a), withAttrs(b))).toBe(entityHash(withAttrs(a)) === entityHash(withAttrs(b)));
  });
});

describe('changedFields', () => {
  const e = (extra: Partial<Entity>): Entity => ({ ...base, ...extra });

  it('names each changed field of the meaning, in a fixed order', () => {
    expect(changedFields(base, base)).toEqual([]);
    expect(changedFields(base, e({ name: 'db' }))).toEqual(['name']);
    expect(changedFields(base, e({ state: 'SHUTOFF' }))).toEqual(['state']);
    expect(changedFields(base, e({ project: 'p2' }))).toEqual(['project']);
    expect(changedFields(base, e({ project: undefined }))).toEqual(['project']);
    expect(changedFields(base, e({ parents: [] }))).toEqual(['parents']);
    expect(changedFields(base, e({ parents: [{ type: 'nova.host', id: 'h2' }] }))).toEqual(['parents']);
    expect(changedFields(base, e({ children: [] }))).toEqual(['children']);
    expect(changedFields(base, e({ children: [{ type: 'neutron.port', id: 'port-2' }] }))).toEqual(['children']);
    expect(changedFields(base, e({ name: 'db', state: 'ERROR', project: 'p2', parents: [], children: [], attributes: { z: 1, a: 1 } }))).toEqual([
      'name',
      'state',
      'project',
      'parents',
      'children',
      'attributes.a',
      'attributes.z',
    ]);
  });

  it('names attributes added, removed or changed, sorted, and not those only present as undefined', () => {
    const before = withAttrs({ same: 1, changed: 'x', removed: true, nested: { a: [1] }, gone: undefined });
    const after = withAttrs({ added: 0, same: 1, changed: 'y', nested: { a: [1] }, gone: undefined, ghost: undefined });
    expect(changedFields(before, after)).toEqual(['attributes.added', 'attributes.changed', 'attributes.removed']);
    expect(changedFields(withAttrs({ a: null }), withAttrs({}))).toEqual(['attributes.a']);
    expect(changedFields(withAttrs({}), withAttrs({ a: null }))).toEqual(['attributes.a']);
    expect(changedFields(withAttrs({ a: undefined }), withAttrs({ a: null }))).toEqual(['attributes.a']);
    expect(changedFields(withAttrs({ a: null }), withAttrs({ a: undefined }))).toEqual(['attributes.a']);
    expect(changedFields(withAttrs({ a: { x: 1 } }), withAttrs({ a: { x: 2 } }))).toEqual(['attributes.a']);
  });

  it('is what diffAgainstBaseline reports on updates of normalized entities', () => {
    const one = entity('a', 'ACTIVE', { project: 'p1', children: [{ type: 'neutron.port', id: 'x' }] });
    const two = entity('a', 'ACTIVE', { project: 'p1', children: [{ type: 'neutron.port', id: 'y' }] });
    expect(changedFields(one, two)).toEqual(['children']);
  });
});
