import { Subject, lastValueFrom, of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { type InvalidRecord, MAX_KEY_BYTES, SLICE_CHECK, inSlices, normalizeEntity, toEntity, toPatch } from '../../operators/normalizeEntity.js';
import type { Entity, EntityDraft, Observation, Settlement } from '../../src/model.js';
import { t } from '../support/entities.js';

/**
 * normalizeEntity and toEntity, reason by reason: every refusal names what was wrong (the
 * team's standard), so the exact text is part of the contract. Written to kill mutants
 * (docs/testing.md, "Mutation testing").
 */

const draft = (extra: Record<string, unknown> = {}): EntityDraft => ({ type: 'nova.instance', id: 'a', state: 'active', ...extra }) as EntityDraft;
const reason = (d: unknown, requireState = true): string => {
  try {
    toEntity(d as EntityDraft, 'src', t(0), requireState);
  } catch (e) {
    return (e as Error).message;
  }
  return 'accepted';
};

describe('toEntity', () => {
  it('refuses each kind of bad draft with a reason naming the field and the value', () => {
    expect(reason(null)).toBe('mapping returned null, not an entity');
    expect(reason('x')).toBe('mapping returned "x", not an entity');
    expect(reason(draft({ type: '' }))).toBe('type must be a non-empty string, got ""');
    expect(reason(draft({ type: 3 }))).toBe('type must be a non-empty string, got 3');
    expect(reason(draft({ id: '' }))).toBe('id of nova.instance must be a non-empty string, got ""');
    expect(reason(draft({ id: 7 }))).toBe('id of nova.instance must be a non-empty string, got 7');
    expect(reason(draft({ state: '' }))).toBe('state must be a non-empty string, got ""');
    expect(reason(draft({ state: 1 }))).toBe('state must be a non-empty string, got 1');
    expect(reason(draft({ state: undefined }))).toBe('state is missing');
    expect(reason(draft({ name: 5 }))).toBe('name must be a string, got 5');
    expect(reason(draft({ project: false }))).toBe('project must be a string, got false');
    expect(reason(draft({ attributes: null }))).toBe('attributes must be a mapping');
    expect(reason(draft({ attributes: [] }))).toBe('attributes must be a mapping');
    expect(reason(draft({ attributes: 'x' }))).toBe('attributes must be a mapping');
    expect(reason(draft({ parents: 'h1' }))).toBe('parents must be a list of {type, id}');
    expect(reason(draft({ children: {} }))).toBe('children must be a list of {type, id}');
    expect(reason(draft({ parents: [{ type: 'nova.host' }] }))).toBe('parents must be a list of {type, id} with non-empty strings, got {"type":"nova.host"}');
    expect(reason(draft({ children: [{ type: '', id: 'x' }] }))).toBe('children must be a list of {type, id} with non-empty strings, got {"type":"","id":"x"}');
    expect(reason(draft({ parents: [null] }))).toBe('parents must be a list of {type, id} with non-empty strings, got null');
  });

  it('refuses a key longer than MAX_KEY_BYTES in UTF-8, counting what a scope adds, in an entity and in a patch', () => {
    const type = 'nova.instance'; // `nova.instance:` is 14 bytes
    expect(MAX_KEY_BYTES).toBe(1024);
    expect(reason(draft({ id: 'x'.repeat(1024 - 14) }))).toBe('accepted');
    expect(reason(draft({ id: 'x'.repeat(1025 - 14) }))).toBe(`the key of this ${type} is 1025 bytes long, more than the 1024 allowed (id "${'x'.repeat(60)}")…`.replace('")…', '"…)'));
    // 'é' is one UTF-16 unit and two bytes: 505 of them and 1 byte more make 1,025 bytes in 520 units.
    expect(reason(draft({ id: `${'é'.repeat(505)}y` }))).toMatch(/^the key of this nova\.instance is 1025 bytes long/);
    expect(reason(draft({ id: `${'é'.repeat(505)}` }))).toBe('accepted');
    // '€' is three bytes: 337 of them are 1,011 bytes, the key 1,025; 336 are 1,022.
    expect(reason(draft({ id: '€'.repeat(337) }))).toMatch(/is 1025 bytes long/);
    expect(reason(draft({ id: '€'.repeat(336) }))).toBe('accepted');
    // A type of 3-byte characters too (a plugin's type is any string): 3 + 1 + 339 units, 9 + 1 + 1,017 bytes.
    expect(() => toEntity({ type: '€€€', id: '€'.repeat(339), state: 'up' } as EntityDraft, 'src', t(0))).toThrow(/^the key of this €€€ is 1027 bytes long/);
    // In a scope where the type is local, the key holds the scope too: `nova.instance:cloud-b/`.
    const scope = { name: 'cloud-b', isLocal: (ty: string) => ty === type };
    expect(() => toEntity(draft({ id: 'x'.repeat(1025 - 22) }), 'src', t(0), true, false, scope)).toThrow(/is 1025 bytes long/);
    expect(toEntity(draft({ id: 'x'.repeat(1024 - 22) }), 'src', t(0), true, false, scope).key).toBe(`${type}:cloud-b/${'x'.repeat(1002)}`);
    // A patch is identified the same way.
    expect(() => toPatch({ type, id: 'x'.repeat(1011) } as EntityDraft, 'src', t(0))).toThrow(/is 1025 bytes long/);
    expect(toPatch({ type, id: 'x'.repeat(1010) } as EntityDraft, 'src', t(0)).key).toBe(`${type}:${'x'.repeat(1010)}`);
  });

  it('accepts what may be absent: no name, project, refs or attributes; no state for a delete', () => {
    expect(reason(draft({ name: null, project: null, parents: null, children: undefined, attributes: undefined }))).toBe('accepted');
    expect(reason(draft({ state: undefined }), false)).toBe('accepted');
    expect(toEntity(draft({ state: undefined }), 'bus', t(1), false)).toMatchObject({ state: 'DELETED', source: 'bus', observedAt: t(1) });
  });

  it('completes a draft: key, trimmed upper-case state, empty strings as absent, attributes sorted', () => {
    const e = toEntity(draft({ state: '  shutoff ', name: '', project: '', attributes: { b: 1, a: { d: 1, c: 2 } } }), 'nova', t(2));
    expect(e).toEqual({
      key: 'nova.instance:a',
      type: 'nova.instance',
      id: 'a',
      name: undefined,
      state: 'SHUTOFF',
      project: undefined,
      parents: [],
      children: [],
      observedAt: t(2),
      source: 'nova',
      attributes: { a: { c: 2, d: 1 }, b: 1 },
    });
    expect(Object.keys(e.attributes)).toEqual(['a', 'b']);
    expect(Object.keys(e.attributes.a as object)).toEqual(['c', 'd']);
    expect(toEntity(draft({ name: 'web', project: 'p1' }), 'nova', t(2))).toMatchObject({ name: 'web', project: 'p1' });
    // The same state spelled twice gives the same text (a cache must not mix them up).
    expect(toEntity(draft({ state: 'Error' }), 's', t(0)).state).toBe('ERROR');
    expect(toEntity(draft({ state: 'Error' }), 's', t(0)).state).toBe('ERROR');
  });

  it('by default requires a state and leaves the raw record out', () => {
    expect(() => toEntity({ type: 'nova.instance', id: 'a' }, 's', t(0))).toThrow('state is missing');
    expect(toEntity(draft({ raw: { r: 1 } }), 's', t(0))).not.toHaveProperty('raw');
  });

  it('keeps the raw record only when asked to and when there is one', () => {
    expect(toEntity(draft({ raw: { r: 1 } }), 's', t(0), true, true).raw).toEqual({ r: 1 });
    expect(toEntity(draft({ raw: { r: 1 } }), 's', t(0), true, false)).not.toHaveProperty('raw');
    expect(toEntity(draft(), 's', t(0), true, true)).not.toHaveProperty('raw');
  });

  it('drops the fields besides type and id of a single ref once no more ref types are shared', () => {
    // Past its bound (1,000 types), a single ref's list is no longer shared: it is the entity's own.
    for (let i = 0; i < 1_001; i++) toEntity(draft({ id: `filler-${i}`, parents: [{ type: `t${i}.x`, id: '1' }] }), 's', t(0));
    const lone = toEntity(draft({ parents: [{ type: 'late.type', id: '1', note: 'n' }] }), 's', t(0)).parents;
    expect(lone).toEqual([{ type: 'late.type', id: '1' }]);
    expect(Object.keys(lone[0]!)).toEqual(['type', 'id']);
  });

  it('sorts refs by type then id, drops duplicates and fields other than type and id, and keeps a canonical list as it is', () => {
    const messy = [
      { type: 'nova.instance', id: 'b' },
      { type: 'neutron.network', id: 'z' },
      { type: 'nova.instance', id: 'a' },
      { type: 'nova.instance', id: 'b' },
    ];
    expect(toEntity(draft({ parents: messy }), 's', t(0)).parents).toEqual([
      { type: 'neutron.network', id: 'z' },
      { type: 'nova.instance', id: 'a' },
      { type: 'nova.instance', id: 'b' },
    ]);
    const extra = toEntity(draft({ children: [{ type: 'x.y', id: '1', note: 'n' }] }), 's', t(0)).children;
    expect(extra).toEqual([{ type: 'x.y', id: '1' }]);
    expect(Object.keys(extra[0]!)).toEqual(['type', 'id']);
    // Already canonical: the very list.
    const canonical = [
      { type: 'a.b', id: '1' },
      { type: 'a.b', id: '2' },
      { type: 'a.c', id: '1' },
    ];
    expect(toEntity(draft({ parents: canonical }), 's', t(0)).parents).toBe(canonical);
    // A field besides type and id is not canonical either, in a list of several in order too.
    const inOrderWithNote = toEntity(draft({ parents: [{ type: 'a.b', id: '1', note: 'n' }, { type: 'a.c', id: '1' }] }), 's', t(0)).parents;
    expect(inOrderWithNote).toEqual([
      { type: 'a.b', id: '1' },
      { type: 'a.c', id: '1' },
    ]);
    // Equal neighbours and a wrong order are both not canonical.
    const twice = [
      { type: 'a.b', id: '1' },
      { type: 'a.b', id: '1' },
    ];
    expect(toEntity(draft({ parents: twice }), 's', t(0)).parents).toEqual([{ type: 'a.b', id: '1' }]);
    const idsDown = [
      { type: 'a.b', id: '2' },
      { type: 'a.b', id: '1' },
    ];
    expect(toEntity(draft({ parents: idsDown }), 's', t(0)).parents).toEqual([
      { type: 'a.b', id: '1' },
      { type: 'a.b', id: '2' },
    ]);
    // No refs: an empty list that nobody can push into.
    const none = toEntity(draft({ parents: [] }), 's', t(0));
    expect(none.parents).toEqual([]);
    expect(Object.isFrozen(none.parents)).toBe(true);
    expect(Object.isFrozen(none.children)).toBe(true);
  });
});

type Raw = { id?: string; state?: string; type?: string; many?: number; throws?: unknown };
const mapRaw = (r: Raw): EntityDraft | EntityDraft[] | undefined => {
  if (r.throws !== undefined) throw r.throws;
  if (r.many !== undefined) return Array.from({ length: r.many }, (_, i) => ({ type: 'nova.instance', id: `${r.id}${i}`, state: 'on' }));
  if (r.id === undefined) return undefined;
  return { type: r.type ?? 'nova.instance', id: r.id, state: r.state as string };
};

function run(observations: Observation<Raw>[]): { out: Observation[]; invalid: InvalidRecord[] } {
  const out: Observation[] = [];
  const invalid: InvalidRecord[] = [];
  normalizeEntity(mapRaw, { onInvalid: (i) => invalid.push(i) })(of(...observations)).subscribe((o) => out.push(o));
  return { out, invalid };
}

describe('toEntity: shared copies of repeated values', () => {
  it('leaves attributes that come frozen as they are, values seen before too', () => {
    const first = toEntity(draft({ attributes: { flavor: 'm1.small' } }), 'src', t(0));
    expect(first.attributes).toEqual({ flavor: 'm1.small' });
    // Canonical already, so the very object is kept: writing the shared copy into it would throw.
    const frozen = Object.freeze({ flavor: 'm1.small' });
    const second = toEntity(draft({ id: 'b', attributes: frozen }), 'src', t(0));
    expect(second.attributes).toBe(frozen);
  });

  it('goes on after an attribute shows too many distinct values to share (addresses, ids)', () => {
    // Past 4,096 distinct values the attribute is no longer followed; its values stay as given.
    for (let i = 0; i < 4_200; i++) {
      const e = toEntity(draft({ id: `i${i}`, attributes: { address: `10.0.${i >> 8}.${i & 255}` } }), 'src', t(0));
      expect(e.attributes.address).toBe(`10.0.${i >> 8}.${i & 255}`);
    }
    expect(toEntity(draft({ id: 'again', attributes: { address: '10.0.0.1' } }), 'src', t(0)).attributes).toEqual({ address: '10.0.0.1' });
  });
});

describe('normalizeEntity', () => {
  it('reports every record left out of a snapshot, keeps the keys it knows, and passes the rest of the observation on', () => {
    const { out, invalid } = run([
      {
        kind: 'snapshot',
        source: 'nova',
        types: ['nova.instance', 'nova.host'],
        at: t(0),
        missesBeforeDelete: 2,
        keep: ['nova.instance:kept'],
        records: [{ id: 'a', state: 'on' }, { id: 'b' }, { throws: new Error('bad page') }, { throws: 'text' }, { id: 'z', type: 'cinder.volume', state: 'on' }, {}, { id: 'm', many: 2 }],
      },
    ]);
    expect(out).toHaveLength(1);
    const snap = out[0]!;
    expect(snap.kind === 'snapshot' && snap.records.map((r) => r.key)).toEqual(['nova.instance:a', 'nova.instance:m0', 'nova.instance:m1']);
    expect(snap).toMatchObject({ source: 'nova', types: ['nova.instance', 'nova.host'], at: t(0), missesBeforeDelete: 2, keep: ['nova.instance:kept', 'nova.instance:b'] });
    expect(invalid).toEqual([
      { source: 'nova', reason: 'state is missing', key: 'nova.instance:b', record: { id: 'b' } },
      { source: 'nova', reason: 'mapping failed: bad page', record: { throws: new Error('bad page') } },
      { source: 'nova', reason: 'mapping failed: text', record: { throws: 'text' } },
      { source: 'nova', reason: "type cinder.volume is not among the snapshot's types (nova.instance, nova.host)", record: { id: 'z', type: 'cinder.volume', state: 'on' } },
    ]);
    expect(Object.keys(invalid[1]!)).not.toContain('key');
  });

  it('leaves `keep` out when nothing is kept', () => {
    const { out } = run([{ kind: 'snapshot', source: 'nova', types: ['nova.instance'], at: t(0), records: [{ id: 'a', state: 'on' }] }]);
    expect(out[0]).not.toHaveProperty('keep');
    expect(out[0]).not.toHaveProperty('records.1');
  });

  it('drops an observation whose time is not a date, reporting its record and settling it not ok', () => {
    const settled: Settlement[] = [];
    const { out, invalid } = run([
      { kind: 'change', source: 'bus', action: 'upsert', at: 'never', record: { id: 'a', state: 'on' }, settle: (s) => settled.push(s) },
      { kind: 'snapshot', source: 'nova', types: ['nova.instance'], at: '', records: [{ id: 'a', state: 'on' }] },
    ]);
    expect(out).toEqual([]);
    expect(invalid).toEqual([
      { source: 'bus', reason: 'observation time is not a date: "never"', record: { id: 'a', state: 'on' } },
      { source: 'nova', reason: 'observation time is not a date: ""', record: undefined },
    ]);
    expect(settled).toEqual([{ ok: false, reason: 'observation time is not a date: "never"' }]);
  });

  it('settles a change once: on the last entity of a record that makes several, not ok with the reason when one is bad', () => {
    const settled: string[] = [];
    const change = (record: Raw, action: 'upsert' | 'delete' = 'upsert'): Observation<Raw> => ({
      kind: 'change',
      source: 'bus',
      action,
      at: t(3),
      record,
      settle: (s) => settled.push(s.ok ? `ok:${record.id}` : `fail:${s.reason}`),
    });
    const { out, invalid } = run([change({ id: 'm', many: 3 }), change({ id: 'x' }), change({ throws: new Error('boom') }), change({ throws: 42 }), change({}), change({ id: 'd' }, 'delete')]);
    expect(out.map((o) => (o.kind === 'change' ? `${o.action} ${o.record.key} ${o.record.state} ${o.settle ? 'settles' : '-'}` : o.kind))).toEqual([
      'upsert nova.instance:m0 ON -',
      'upsert nova.instance:m1 ON -',
      'upsert nova.instance:m2 ON settles',
      'delete nova.instance:d DELETED settles',
    ]);
    expect(out[0]).toEqual({ kind: 'change', source: 'bus', action: 'upsert', at: t(3), record: expect.objectContaining({ observedAt: t(3), source: 'bus' }) });
    for (const o of out) o.settle?.({ ok: true });
    expect(settled).toEqual(['fail:state is missing', 'fail:mapping failed: boom', 'fail:mapping failed: 42', 'ok:undefined', 'ok:m', 'ok:d']);
    expect(invalid.map((i) => [i.reason, i.key])).toEqual([
      ['state is missing', 'nova.instance:x'],
      ['mapping failed: boom', undefined],
      ['mapping failed: 42', undefined],
    ]);
  });

  it('passes a change on without settle when it has none', () => {
    const { out } = run([{ kind: 'change', source: 'bus', action: 'upsert', at: t(0), record: { id: 'm', many: 2 } }]);
    expect(out.map((o) => Object.keys(o))).toEqual([
      ['kind', 'source', 'action', 'at', 'record'],
      ['kind', 'source', 'action', 'at', 'record'],
    ]);
  });

  it('keeps raw records when asked to', () => {
    const out: Observation[] = [];
    const rawMap = (r: { id: string }): EntityDraft => ({ type: 'x.y', id: r.id, state: 'on', raw: r });
    normalizeEntity(rawMap, { keepRaw: true })(of<Observation<{ id: string }>>({ kind: 'snapshot', source: 's', types: ['x.y'], at: t(0), records: [{ id: 'a' }] })).subscribe((o) =>
      out.push(o),
    );
    normalizeEntity(rawMap)(of<Observation<{ id: string }>>({ kind: 'change', source: 's', action: 'upsert', at: t(0), record: { id: 'b' } })).subscribe((o) => out.push(o));
    normalizeEntity(rawMap, { keepRaw: true })(of<Observation<{ id: string }>>({ kind: 'change', source: 's', action: 'upsert', at: t(0), record: { id: 'c' } })).subscribe((o) =>
      out.push(o),
    );
    expect(out[0]!.kind === 'snapshot' && out[0]!.records[0]!.raw).toEqual({ id: 'a' });
    expect(out[1]!.kind === 'change' && out[1]!.record).not.toHaveProperty('raw');
    expect(out[2]!.kind === 'change' && out[2]!.record.raw).toEqual({ id: 'c' });
  });

  it('errors and completes with its source, and works without onInvalid', () => {
    const source = new Subject<Observation<Raw>>();
    const seen: string[] = [];
    normalizeEntity(mapRaw)(source).subscribe({ next: () => seen.push('next'), error: (e: Error) => seen.push(`error:${e.message}`), complete: () => seen.push('complete') });
    source.next({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(0), records: [{ id: 'b' }] });
    source.next({ kind: 'change', source: 's', action: 'upsert', at: 'x', record: {} });
    source.error(new Error('gone'));
    expect(seen).toEqual(['next', 'error:gone']);
    const done: string[] = [];
    const other = new Subject<Observation<Raw>>();
    normalizeEntity(mapRaw)(other).subscribe({ complete: () => done.push('complete') });
    other.complete();
    expect(done).toEqual(['complete']);
  });
});

describe('normalizeEntity in slices', () => {
  const records = (n: number): EntityDraft[] => Array.from({ length: n }, (_, i) => draft({ id: `r${i}` }));
  const snapshotOf = (n: number): Observation<EntityDraft> => ({ kind: 'snapshot', source: 's', types: ['nova.instance'], at: t(1), records: records(n) });

  it('normalizes a snapshot of at most one slice at once, and a bigger one with a pause between two slices only', async () => {
    let pauses = 0;
    const slice = { records: 2, pause: async (): Promise<void> => void pauses++ };
    const out: Observation<Entity>[] = [];
    let complete = false;
    of(snapshotOf(2))
      .pipe(normalizeEntity((d: EntityDraft) => d, { slice }))
      .subscribe({ next: (o) => out.push(o), complete: () => (complete = true) });
    // Synchronously, without a pause.
    expect(out).toHaveLength(1);
    expect(complete).toBe(true);
    expect(pauses).toBe(0);
    // Five records in slices of two: three slices, two pauses.
    const big = await lastValueFrom(of(snapshotOf(5)).pipe(normalizeEntity((d: EntityDraft) => d, { slice })));
    expect(big.kind === 'snapshot' && big.records.map((e) => e.id)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(pauses).toBe(2);
  });
});

describe('toPatch', () => {
  it('leaves the raw record out when there is none, even when asked to keep it, and takes an attribute set to undefined as a removal', () => {
    const patch = toPatch({ type: 'nova.instance', id: 'a', attributes: { gone: undefined, kept: { b: 1, a: 2 } } }, 's', t(0), true);
    expect(patch).not.toHaveProperty('raw');
    expect(patch.attributes).toHaveProperty('gone', undefined);
    expect(JSON.stringify(patch.attributes!.kept)).toBe('{"a":2,"b":1}');
  });

  it('sets the parents and children a patch names, sorted, and leaves out those it does not name', () => {
    const refs = [
      { type: 'nova.host', id: 'h2' },
      { type: 'nova.host', id: 'h1' },
    ];
    const patch = toPatch({ type: 'nova.instance', id: 'a', parents: refs, children: [{ type: 'neutron.port', id: 'p' }] }, 's', t(0));
    expect(patch.parents).toEqual([
      { type: 'nova.host', id: 'h1' },
      { type: 'nova.host', id: 'h2' },
    ]);
    expect(patch.children).toEqual([{ type: 'neutron.port', id: 'p' }]);
    const bare = toPatch({ type: 'nova.instance', id: 'a', state: 'active' }, 's', t(0));
    expect(bare).not.toHaveProperty('parents');
    expect(bare).not.toHaveProperty('children');
  });

  it('leaves the raw record out unless asked to keep it', () => {
    expect(toPatch({ type: 'nova.instance', id: 'a', raw: { r: 1 } }, 's', t(0))).not.toHaveProperty('raw');
    expect(toPatch({ type: 'nova.instance', id: 'a', raw: { r: 1 } }, 's', t(0), true)).toHaveProperty('raw', { r: 1 });
  });
});

describe('inSlices', () => {
  const run = async (length: number, slice: { records: number; ms?: number; now?: () => number }, stopped?: () => boolean) => {
    const parts: Array<[number, number]> = [];
    let pauses = 0;
    const done = await inSlices(length, { ...slice, pause: async () => void (pauses += 1) }, (from, to) => void parts.push([from, to]), stopped);
    return { done, parts, pauses };
  };

  it('ends a slice once its time is up, looking at the clock every SLICE_CHECK items, and not while it is exactly due', async () => {
    // A clock that never moves and a budget of 0 ms: the deadline is now, so every look ends the slice.
    const { done, parts, pauses } = await run(3 * SLICE_CHECK, { records: 1000, ms: 0, now: () => 0 });
    expect(done).toBe(true);
    expect(parts).toEqual([
      [0, SLICE_CHECK],
      [SLICE_CHECK, 2 * SLICE_CHECK],
      [2 * SLICE_CHECK, 3 * SLICE_CHECK],
    ]);
    expect(pauses).toBe(2);
  });

  it('without a time budget, works a whole slice of records at once', async () => {
    const { parts, pauses } = await run(2500, { records: 1000 });
    expect(parts).toEqual([
      [0, 1000],
      [1000, 2000],
      [2000, 2500],
    ]);
    expect(pauses).toBe(2);
  });

  it('says false and stops when it is stopped during a pause', async () => {
    let looks = 0;
    const { done, parts } = await run(3000, { records: 1000 }, () => ++looks >= 1);
    expect(done).toBe(false);
    expect(parts).toEqual([[0, 1000]]);
  });
});
