import fc from 'fast-check';
import { of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { type InvalidRecord, normalizeEntity, toEntity } from '../../operators/normalizeEntity.js';
import { canonicalJson } from '../../src/hash.js';
import { entityScope } from '../../src/scope.js';
import type { EntityDraft, Observation, Settlement } from '../../src/model.js';
import { t } from '../support/entities.js';
import { marbles } from '../support/marbles.js';

type Raw = { id?: unknown; status?: unknown; host?: string; extra?: boolean };

const map = (r: Raw): EntityDraft | EntityDraft[] | undefined => {
  if (r.id === 'skip') return undefined;
  if (r.id === 'boom') throw new Error('no such field');
  const instance = { type: 'nova.instance', id: r.id as string, state: r.status as string, parents: r.host ? [{ type: 'nova.host', id: r.host }] : [] };
  return r.extra ? [instance, { type: 'nova.host', id: r.host!, state: 'up' }] : instance;
};

describe('normalizeEntity', () => {
  it(
    'maps raw records to entities and leaves out invalid ones with the reason, without erroring',
    marbles((m) => {
      const invalid: InvalidRecord[] = [];
      const source = m.cold<Observation<Raw>>('-s-|', {
        s: {
          kind: 'snapshot',
          source: 'nova',
          types: ['nova.instance'],
          at: t(0),
          records: [{ id: 'a', status: 'active', host: 'h1' }, { id: 'b', status: 7 }, { status: 'ACTIVE' }, { id: 'boom' }, { id: 'skip' }],
        },
      });
      const out = source.pipe(normalizeEntity(map, { onInvalid: (r) => invalid.push(r) }));
      m.expect(out).toBeObservable('-s-|', {
        s: {
          kind: 'snapshot',
          source: 'nova',
          types: ['nova.instance'],
          at: t(0),
          keep: ['nova.instance:b'],
          records: [
            {
              key: 'nova.instance:a',
              type: 'nova.instance',
              id: 'a',
              scope: undefined,
              name: undefined,
              state: 'ACTIVE',
              project: undefined,
              parents: [{ type: 'nova.host', id: 'h1' }],
              children: [],
              observedAt: t(0),
              source: 'nova',
              attributes: {},
            },
          ],
        },
      });
      m.flush();
      expect(invalid.map((i) => [i.source, i.key, i.reason])).toEqual([
        ['nova', 'nova.instance:b', 'state must be a non-empty string, got 7'],
        ['nova', undefined, 'id of nova.instance must be a non-empty string, got undefined'],
        ['nova', undefined, 'mapping failed: no such field'],
      ]);
    }),
  );

  it('refuses a snapshot record whose type is not among the snapshot types (it could never be deleted)', () => {
    const invalid: InvalidRecord[] = [];
    const seen: Observation[] = [];
    const snapshot: Observation<Raw> = { kind: 'snapshot', source: 'nova', types: ['nova.instance'], at: t(0), records: [{ id: 'a', status: 'x', host: 'h', extra: true }] };
    normalizeEntity(map, { onInvalid: (r) => invalid.push(r) })(of(snapshot)).subscribe((o) => seen.push(o));
    expect(seen[0]!.kind === 'snapshot' && seen[0]!.records.map((r) => r.key)).toEqual(['nova.instance:a']);
    expect(invalid[0]!.reason).toMatch(/type nova.host is not among the snapshot's types/);
  });

  it('settles a change it cannot map as not ok, one the mapping ignores as ok, and sorts refs', () => {
    const settled: Settlement[] = [];
    const seen: Observation[] = [];
    const change = (record: Raw, action: 'upsert' | 'delete' = 'upsert'): Observation<Raw> => ({
      kind: 'change',
      source: 'bus',
      action,
      at: t(1),
      record,
      settle: (s) => settled.push(s),
    });
    const refs = (r: { parents: { type: string; id: string }[] }): EntityDraft => ({ type: 'neutron.port', id: 'p', state: 'UP', parents: r.parents });
    normalizeEntity(map)(of(change({ id: 'a' }), change({ id: 'skip' }), change({ id: 'a' }, 'delete'), change({ id: 'a', status: 'on' }))).subscribe((o) => seen.push(o));
    expect(settled).toEqual([{ ok: false, reason: 'state is missing' }, { ok: true }]);
    expect(seen.map((o) => (o.kind === 'change' ? [o.action, o.record.key, o.record.state] : []))).toEqual([
      ['delete', 'nova.instance:a', 'DELETED'],
      ['upsert', 'nova.instance:a', 'ON'],
    ]);
    const sorted: Observation[] = [];
    normalizeEntity(refs)(
      of<Observation<{ parents: { type: string; id: string }[] }>>({ kind: "change", source: "bus", action: "upsert", at: t(1), record: { parents: [{ type: 'nova.instance', id: 'i' }, { type: 'neutron.network', id: 'n' }, { type: 'nova.instance', id: 'i' }] } }),
    ).subscribe((o) => sorted.push(o));
    expect(sorted[0]!.kind === 'change' && sorted[0]!.record.parents).toEqual([
      { type: 'neutron.network', id: 'n' },
      { type: 'nova.instance', id: 'i' },
    ]);
  });

  it('keeps the time a pushed record arrived on every change and patch made of it', () => {
    const seen: Observation[] = [];
    const extra = (action: 'upsert' | 'delete', receivedAt?: number): Observation<Raw> => ({
      kind: 'change',
      source: 'bus',
      action,
      at: t(1),
      record: { id: 'a', status: 'on', host: 'h', extra: true },
      ...(receivedAt === undefined ? {} : { receivedAt }),
    });
    normalizeEntity(map)(of(extra('upsert', 1234.5), extra('upsert'))).subscribe((o) => seen.push(o));
    expect(seen.map((o) => o.receivedAt)).toEqual([1234.5, 1234.5, undefined, undefined]);
    expect(seen.slice(2).every((o) => !('receivedAt' in o))).toBe(true);
    const patches: Observation[] = [];
    normalizeEntity(map)(of<Observation<Raw>>({ kind: 'patch', source: 'bus', at: t(1), record: { id: 'a', status: 'off' }, receivedAt: 99 })).subscribe((o) => patches.push(o));
    expect(patches.map((o) => [o.kind, o.receivedAt])).toEqual([['patch', 99]]);
  });

  it('drops an observation whose time is not a date, and says so', () => {
    const invalid: InvalidRecord[] = [];
    const seen: Observation[] = [];
    normalizeEntity(map, { onInvalid: (r) => invalid.push(r) })(of<Observation<Raw>>({ kind: "snapshot", source: 'nova', types: ['nova.instance'], at: 'yesterday', records: [] })).subscribe((o) => seen.push(o));
    expect(seen).toEqual([]);
    expect(invalid[0]!.reason).toBe('observation time is not a date: "yesterday"');
  });

  it('in a scope: every entity carries it, and local types (the entity and its refs) are qualified by it', () => {
    const seen: Observation[] = [];
    const records: Raw[] = [{ id: 'a', status: 'active', host: 'compute-01', extra: true }];
    normalizeEntity(map, { scope: entityScope('region-a') })(
      of<Observation<Raw>[]>({ kind: 'snapshot', source: 'nova', types: ['nova.instance', 'nova.host'], at: t(0), records }, { kind: 'change', source: 'nova', action: 'upsert', at: t(1), record: records[0]! }),
    ).subscribe((o) => seen.push(o));
    const snapshot = seen[0]!;
    expect(snapshot.kind === 'snapshot' && [snapshot.scope, snapshot.records.map((e) => [e.key, e.id, e.scope, e.parents])]).toEqual([
      'region-a',
      [
        ['nova.instance:a', 'a', 'region-a', [{ type: 'nova.host', id: 'region-a/compute-01' }]],
        ['nova.host:region-a/compute-01', 'region-a/compute-01', 'region-a', []],
      ],
    ]);
    expect(seen.slice(1).map((o) => o.kind === 'change' && o.record.key)).toEqual(['nova.instance:a', 'nova.host:region-a/compute-01']);
    // Without a scope: exactly what it always was (no scope field set, ids as mapped).
    const plain: Observation[] = [];
    normalizeEntity(map)(of<Observation<Raw>>({ kind: 'snapshot', source: 'nova', types: ['nova.instance', 'nova.host'], at: t(0), records })).subscribe((o) => plain.push(o));
    expect(plain[0]!.kind === 'snapshot' && [Object.hasOwn(plain[0]!, 'scope'), plain[0]!.records.map((e) => e.key)]).toEqual([false, ['nova.instance:a', 'nova.host:compute-01']]);
  });

  it('makes a patch of a partial draft: only the fields it sets, checked as a whole entity\'s are', () => {
    const seen: Observation[] = [];
    const settled: Settlement[] = [];
    const partial = (r: { id: string; state?: unknown; reason?: string }): EntityDraft => ({
      type: 'aodh.alarm',
      id: r.id,
      ...(r.state !== undefined ? { state: r.state as string } : {}),
      ...(r.reason !== undefined ? { attributes: { state_reason: r.reason, gone: undefined } } : {}),
    });
    normalizeEntity(partial)(
      of<Observation<{ id: string; state?: unknown; reason?: string }>[]>(
        { kind: 'patch', source: 'bus', at: t(1), record: { id: 'x', state: 'alarm', reason: 'Manually set' }, settle: (s: Settlement) => settled.push(s) },
        { kind: 'patch', source: 'bus', at: t(2), record: { id: 'x', state: 7 }, settle: (s: Settlement) => settled.push(s) },
      ),
    ).subscribe((o) => seen.push(o));
    expect(seen).toEqual([
      { kind: 'patch', source: 'bus', at: t(1), record: { key: 'aodh.alarm:x', type: 'aodh.alarm', id: 'x', state: 'ALARM', attributes: { state_reason: 'Manually set', gone: undefined }, observedAt: t(1), source: 'bus' }, settle: expect.any(Function) },
    ]);
    expect(seen[0]!.kind === 'patch' && Object.keys(seen[0]!.record)).not.toContain('name');
    expect(settled).toEqual([{ ok: false, reason: 'state must be a non-empty string, got 7' }]);
  });
});

describe('normalizeEntity keeps the baseline small', () => {
  it('shares one frozen list for entities that name the same single parent, equal in value to the one mapped', () => {
    const a = toEntity({ type: 'nova.instance', id: 'a', state: 'ACTIVE', parents: [{ type: 'nova.host', id: 'compute-1' }] }, 'nova', t(0));
    const b = toEntity({ type: 'nova.instance', id: 'b', state: 'ACTIVE', parents: [{ type: 'nova.host', id: 'compute-1' }] }, 'nova', t(0));
    const c = toEntity({ type: 'nova.instance', id: 'c', state: 'ACTIVE', parents: [{ type: 'nova.host', id: 'compute-2' }] }, 'nova', t(0));
    expect(a.parents).toBe(b.parents);
    expect(a.parents).not.toBe(c.parents);
    expect(a.parents).toEqual([{ type: 'nova.host', id: 'compute-1' }]);
    expect(Object.isFrozen(a.parents) && Object.isFrozen(a.parents[0])).toBe(true);
  });

  it('keeps a long id equal to the one mapped, and the key its type and id', () => {
    const id = '0ca13c88-108b-4f84-a588-000000003039';
    const e = toEntity({ type: 'nova.instance', id, state: 'ACTIVE' }, 'nova', t(0));
    expect([e.id, e.key]).toEqual([id, `nova.instance:${id}`]);
    const scoped = toEntity({ type: 'nova.host', id: 'compute-0000000001' }, 'nova', t(0), false, false, entityScope('region-a'));
    expect([scoped.id, scoped.key]).toEqual(['region-a/compute-0000000001', 'nova.host:region-a/compute-0000000001']);
  });

  it('copies attributes into an object of their names: the same names in the same order, the same values', () => {
    const attributes = { availability_zone: 'nova', flavor: 'm1.tiny', host: 'compute-1', image: 'cirros', nested: { a: [1] }, user: 'u', vm_state: 'active' };
    const e = toEntity({ type: 'nova.instance', id: 'x', state: 'ACTIVE', attributes }, 'nova', t(0));
    expect(Object.entries(e.attributes)).toEqual(Object.entries(attributes));
    expect(e.attributes.nested).toBe(attributes.nested);
    // The draft's own object is left as the mapping made it.
    expect(attributes.flavor).toBe('m1.tiny');
    // Names a copy could not keep as they are: an own `__proto__` (as JSON.parse makes it) stays one.
    const odd = JSON.parse('{"__proto__":"p","a":1,"b":2,"c":3,"d":4,"e":5}') as Record<string, unknown>;
    const kept = toEntity({ type: 'nova.instance', id: 'y', state: 'ACTIVE', attributes: odd }, 'nova', t(0)).attributes;
    expect([Object.getPrototypeOf(kept), Object.entries(kept)]).toEqual([Object.prototype, Object.entries(odd)]);
    fc.assert(
      fc.property(fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', '1', '10', '00', '01', 'toString')), fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.string())), { minKeys: 3, maxKeys: 12 }), (raw) => {
        const attrs = JSON.parse(JSON.stringify(raw)) as Record<string, unknown>;
        const got = toEntity({ type: 'nova.instance', id: 'p', state: 'ACTIVE', attributes: attrs }, 'nova', t(0)).attributes;
        expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
        expect(canonicalJson(got)).toBe(canonicalJson(attrs));
        // Integer-like names (array indexes: "0", "10", not "00" or "01") come first, in numeric order.
        const index = (k: string): boolean => /^(0|[1-9]\d*)$/.test(k) && Number(k) < 2 ** 32 - 1;
        expect(Object.keys(got)).toEqual(Object.keys(attrs).sort((a, b) => (index(a) && index(b) ? Number(a) - Number(b) : index(a) ? -1 : index(b) ? 1 : a < b ? -1 : a > b ? 1 : 0)));
      }),
    );
  });

  it('interns attribute values in place, and leaves a frozen attributes object as it is', () => {
    const frozen = Object.freeze({ flavor: 'm1.tiny' });
    const e = toEntity({ type: 'nova.instance', id: 'f', state: 'ACTIVE', attributes: frozen }, 'nova', t(0));
    expect(e.attributes).toBe(frozen);
    const values = Array.from({ length: 5000 }, (_, i) => toEntity({ type: 'nova.instance', id: `v${i}`, state: 'ACTIVE', attributes: { address: `10.0.${i >> 8}.${i & 255}`, zone: 'nova' } }, 'nova', t(0)));
    // High-cardinality values stop being interned; every value stays what was mapped.
    expect(values.map((v) => v.attributes.address)).toEqual(Array.from({ length: 5000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`));
    expect(values.every((v) => v.attributes.zone === 'nova')).toBe(true);
  });
});

describe('normalizeEntity sizes attributes to their names, within bounds', () => {
  it('keeps attributes with inherited names as built, and stops making templates past its bound', () => {
    const inherited = Object.assign(Object.create({ z: 'inherited' }) as Record<string, unknown>, { a: 1, b: 2, c: 3, d: 4, e: 5 });
    expect(toEntity({ type: 'nova.instance', id: 'i', state: 'ACTIVE', attributes: inherited }, 'nova', t(0)).attributes).toBe(inherited);
    // Distinct lists of five names, until the tree of names is full: then the object as built.
    const made = Array.from({ length: 1000 }, (_, i) => {
      const attributes = Object.fromEntries(Array.from({ length: 5 }, (_, j) => [`n${i}_${j}`, j]));
      return { attributes, entity: toEntity({ type: 'nova.instance', id: `s${i}`, state: 'ACTIVE', attributes }, 'nova', t(0)) };
    });
    expect(made.every(({ attributes, entity }) => canonicalJson(entity.attributes) === canonicalJson(attributes))).toBe(true);
    expect(made[0]!.entity.attributes).not.toBe(made[0]!.attributes);
    expect(made[999]!.entity.attributes).toBe(made[999]!.attributes);
  });
});
