import { from, lastValueFrom, map, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { applyObservation, baselineSteps, diffAgainstBaseline, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { entityHash } from '../../src/hash.js';
import type { EntityEvent, Observation } from '../../src/model.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';
import { marbles } from '../support/marbles.js';

/** An event in a form marbles can compare at a glance: `create nova.instance:a ACTIVE`. */
const brief = (e: EntityEvent): string => `${e.action} ${e.entity.key} ${e.entity.state}${e.changed ? ' [' + e.changed.join(',') + ']' : ''}`;

const host = (id: string) => entity(id, 'UP', { type: 'nova.host' });

async function eventsOf(observations: Observation[], options = {}): Promise<string[]> {
  return lastValueFrom(from(observations).pipe(diffAgainstBaseline(options), map(brief), toArray()));
}

describe('diffAgainstBaseline', () => {
  it(
    'emits creates, whole-entity updates with the changed fields, and deletes for what a snapshot lacks',
    marbles((m) => {
      const a = entity('a');
      const b = entity('b');
      const b2 = entity('b', 'SHUTOFF', { attributes: { vm_state: 'stopped' } });
      const source = m.cold('-x----y-z|', {
        x: snapshot(t(0), [a, b]),
        y: snapshot(t(30), [a, b2]),
        z: snapshot(t(60), [b2]),
      });
      m.expect(source.pipe(diffAgainstBaseline(), map(brief))).toBeObservable('-(pq)-r-s|', {
        p: 'create nova.instance:a ACTIVE',
        q: 'create nova.instance:b ACTIVE',
        r: 'update nova.instance:b SHUTOFF [state,attributes.vm_state]',
        s: 'delete nova.instance:a ACTIVE',
      });
    }),
  );

  it('rule 1: equal meaning gives equal hash whatever the key order, and no event', async () => {
    const one = entity('a', 'ACTIVE', { attributes: { flavor: 'm1', zone: 'nova', nested: { y: 1, x: [1, 2] } } });
    const two = entity('a', 'active', { attributes: { zone: 'nova', nested: { x: [1, 2], y: 1 }, flavor: 'm1' } });
    expect(entityHash(two)).toBe(entityHash(one));
    const refsAB = entity('p', 'UP', { parents: [{ type: 'nova.host', id: 'h1' }, { type: 'neutron.network', id: 'n1' }] });
    const refsBA = entity('p', 'UP', { parents: [{ type: 'neutron.network', id: 'n1' }, { type: 'nova.host', id: 'h1' }] });
    expect(entityHash(refsAB)).toBe(entityHash(refsBA));
    // observedAt and source are not part of the meaning.
    expect(entityHash({ ...one, observedAt: t(99), source: 'other' })).toBe(entityHash(one));
    expect(entityHash(entity('a', 'SHUTOFF'))).not.toBe(entityHash(entity('a', 'ACTIVE')));
    expect(await eventsOf([snapshot(t(0), [one]), snapshot(t(30), [two]), upsert(t(40), two)])).toEqual(['create nova.instance:a ACTIVE']);
  });

  it('rule 2: a snapshot deletes only missing entities of its own types', async () => {
    const events = await eventsOf([
      snapshot(t(0), [host('h1'), host('h2')], ['nova.host']),
      snapshot(t(1), [entity('a')], ['nova.instance']),
      snapshot(t(30), [], ['nova.instance']),
    ]);
    expect(events).toEqual(['create nova.host:h1 UP', 'create nova.host:h2 UP', 'create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE']);
  });

  it('rule 3: a change upserts or deletes one entity; an unchanged one makes no event; an unknown delete makes none', async () => {
    const a = entity('a');
    expect(
      await eventsOf([upsert(t(1), a), upsert(t(2), a), upsert(t(3), entity('a', 'SHUTOFF')), remove(t(4), a), remove(t(5), entity('zzz'))]),
    ).toEqual(['create nova.instance:a ACTIVE', 'update nova.instance:a SHUTOFF [state]', 'delete nova.instance:a SHUTOFF']);
  });

  it('rule 4: a snapshot that started before a notification leaves the entity alone (no flapping)', async () => {
    const a = entity('a');
    const events = await eventsOf([
      snapshot(t(0), [a]),
      upsert(t(10), entity('a', 'SHUTOFF')), // the notification
      snapshot(t(5), [a]), // a poll that started before it, arriving after
      upsert(t(11), entity('b')), // created by a notification after the next poll started…
      snapshot(t(8), [a]), // …which therefore lacks it: not a deletion
      snapshot(t(30), [entity('a', 'SHUTOFF'), entity('b')]),
    ]);
    expect(events).toEqual(['create nova.instance:a ACTIVE', 'update nova.instance:a SHUTOFF [state]', 'create nova.instance:b ACTIVE']);
  });

  it('rule 4: an older notification never overrides a newer one', async () => {
    expect(await eventsOf([upsert(t(10), entity('a', 'SHUTOFF')), upsert(t(5), entity('a', 'ACTIVE'))])).toEqual([
      'create nova.instance:a SHUTOFF',
    ]);
  });

  it('rule 4: a tombstone keeps a deleted entity from coming back by a late or redelivered notification', async () => {
    const a = entity('a');
    expect(await eventsOf([upsert(t(1), a), remove(t(10), a), upsert(t(1), a), upsert(t(9), a), snapshot(t(5), [a])])).toEqual([
      'create nova.instance:a ACTIVE',
      'delete nova.instance:a ACTIVE',
    ]);
    // A delete that overtook its create: the create arrives later but is older.
    expect(await eventsOf([remove(t(10), a), upsert(t(2), a)])).toEqual([]);
    // A snapshot deletion leaves a tombstone too.
    expect(await eventsOf([snapshot(t(0), [a]), snapshot(t(30), []), upsert(t(20), a)])).toEqual([
      'create nova.instance:a ACTIVE',
      'delete nova.instance:a ACTIVE',
    ]);
    // A real re-creation after the deletion is welcome.
    expect(await eventsOf([snapshot(t(0), [a]), snapshot(t(30), []), upsert(t(31), a)])).toEqual([
      'create nova.instance:a ACTIVE',
      'delete nova.instance:a ACTIVE',
      'create nova.instance:a ACTIVE',
    ]);
  });

  it('rule 4: tombstones expire after tombstoneMs', async () => {
    const a = entity('a');
    const observations = [upsert(t(1), a), remove(t(10), a), snapshot(t(100), [], ['nova.host']), upsert(t(5), a)];
    expect(await eventsOf(observations, { tombstoneMs: 60_000 })).toEqual([
      'create nova.instance:a ACTIVE',
      'delete nova.instance:a ACTIVE',
      'create nova.instance:a ACTIVE',
    ]);
    expect(await eventsOf(observations, { tombstoneMs: 600_000 })).toEqual(['create nova.instance:a ACTIVE', 'delete nova.instance:a ACTIVE']);
    const steps = await lastValueFrom(from(observations).pipe(baselineSteps({ tombstoneMs: 60_000 }), toArray()));
    expect(steps[1]!.state.tombstones.size).toBe(1);
    expect(steps[2]!.state.tombstones.size).toBe(0);
  });

  it('rule 5: deletion hysteresis deletes after N complete snapshots in a row missed the entity', async () => {
    const a = entity('a');
    const b = entity('b');
    const s = (at: number, records = [b]) => snapshot(t(at), records, ['nova.instance'], { missesBeforeDelete: 3 });
    expect(await eventsOf([s(0, [a, b]), s(30), s(60), s(90, [a, b]), s(120), s(150), s(180)])).toEqual([
      'create nova.instance:a ACTIVE',
      'create nova.instance:b ACTIVE',
      'delete nova.instance:a ACTIVE',
    ]);
  });

  it('keeps entities whose record was invalid in this snapshot (keep)', async () => {
    const a = entity('a');
    expect(await eventsOf([snapshot(t(0), [a]), snapshot(t(30), [], ['nova.instance'], { keep: [a.key] }), snapshot(t(60), [])])).toEqual([
      'create nova.instance:a ACTIVE',
      'delete nova.instance:a ACTIVE',
    ]);
  });

  it('rule 6: every state is an immutable value; applying an observation leaves the previous one as it was', () => {
    const s0 = emptyBaseline();
    const s1 = applyObservation(s0, snapshot(t(0), [entity('a'), entity('b')])).state;
    const step2 = applyObservation(s1, snapshot(t(30), [entity('a', 'ERROR')]));
    expect(s0.entities.size).toBe(0);
    expect(s1.entities.size).toBe(2);
    expect(s1.entities.get('nova.instance:a')!.entity.state).toBe('ACTIVE');
    expect(step2.state.entities.size).toBe(1);
    expect(step2.state.entities.get('nova.instance:a')!.entity.state).toBe('ERROR');
    // An unchanged snapshot gives back the very same map: nothing was rewritten.
    const again = applyObservation(s1, snapshot(t(30), [entity('a'), entity('b')]));
    expect(again.events).toEqual([]);
    expect(again.state.entities).toBe(s1.entities);
  });

  it('carries the last known entity and its hash on deletes, the new hash on updates', async () => {
    const steps = await lastValueFrom(
      from([snapshot(t(0), [entity('a')]), upsert(t(1), entity('a', 'ERROR')), remove(t(2), entity('a'))]).pipe(diffAgainstBaseline(), toArray()),
    );
    expect(steps.map((e) => [e.action, e.origin, e.entity.state])).toEqual([
      ['create', 'snapshot', 'ACTIVE'],
      ['update', 'notification', 'ERROR'],
      ['delete', 'notification', 'ERROR'],
    ]);
    expect(steps[1]!.hash).toBe(entityHash(steps[1]!.entity));
    expect(steps[2]!.hash).toBe(steps[1]!.hash);
  });

  it('computes an event hash only when read, as an own enumerable field that JSON, spread and structuredClone carry', () => {
    const first = applyObservation(emptyBaseline(), snapshot(t(0), [entity('a')]));
    const created = first.events[0]!;
    const updated = applyObservation(first.state, upsert(t(1), entity('a', 'ERROR'))).events[0]!;
    const hash = entityHash(entity('a'));
    expect(Object.keys(created)).toEqual(['action', 'origin', 'entity', 'hash']);
    expect(Object.keys(updated)).toEqual(['action', 'origin', 'entity', 'changed', 'hash']);
    expect(JSON.parse(JSON.stringify(created))).toMatchObject({ action: 'create', hash });
    expect({ ...created }.hash).toBe(hash);
    expect(structuredClone(created).hash).toBe(hash);
    expect(updated.hash).toBe(entityHash(entity('a', 'ERROR')));
  });

  it(
    'completes and errors with its source',
    marbles((m) => {
      m.expect(m.cold('-a-#', { a: snapshot(t(0), []) }).pipe(diffAgainstBaseline())).toBeObservable('---#');
      m.expect(m.cold('-a-|', { a: snapshot(t(0), []) }).pipe(diffAgainstBaseline())).toBeObservable('---|');
    }),
  );
});

describe('diffAgainstBaseline with a record repeated in one snapshot (a page that shifted)', () => {
  it('makes one create with the last state, and keeps the entity', async () => {
    expect(await eventsOf([snapshot(t(0), [entity('a'), entity('b'), entity('a', 'ERROR')]), snapshot(t(30), [entity('a', 'ERROR'), entity('b')])])).toEqual([
      'create nova.instance:a ERROR',
      'create nova.instance:b ACTIVE',
    ]);
    expect(await eventsOf([snapshot(t(0), [entity('a')]), snapshot(t(30), [entity('a'), entity('a')]), snapshot(t(60), [entity('a')])])).toEqual([
      'create nova.instance:a ACTIVE',
    ]);
  });
});
