import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { type BaselineState, type DiffOptions, applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { parseConfig } from '../../src/config.js';
import type { Entity, EntityDraft, Observation } from '../../src/model.js';
import { createServiceMetrics } from '../../src/metrics.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';

/** A clock that went wrong: a compute host stamping its notifications in 2099. */
const FUTURE = '2099-01-01T00:00:00.000Z';

/** Applies the observations in order; returns every step's events (brief) and the last state. */
function run(observations: Observation[], options: DiffOptions): { events: string[]; skewed: number; state: BaselineState } {
  let state = emptyBaseline();
  const events: string[] = [];
  let skewed = 0;
  for (const o of observations) {
    const step = applyObservation(state, o, options);
    events.push(...step.events.map((e) => `${e.action} ${e.entity.key} ${e.entity.state} ${e.entity.observedAt}`));
    if (step.skewedAt !== undefined) skewed++;
    state = step.state;
  }
  return { events, skewed, state };
}

describe('rule 8: an observation stamped beyond the allowed clock skew is taken at the local time', () => {
  // The local clock reads t(100) throughout.
  const now = () => Date.parse(t(100));

  it('a notification stamped in 2099 does not pin its entity: a later, correctly stamped one still updates it', () => {
    const { events, skewed } = run([upsert(FUTURE, entity('a', 'SHUTOFF')), upsert(t(110), entity('a', 'ACTIVE'))], { now, maxClockSkewMs: 60_000 });
    expect(events).toEqual([`create nova.instance:a SHUTOFF ${t(100)}`, `update nova.instance:a ACTIVE ${t(110)}`]);
    expect(skewed).toBe(1);
  });

  it('a delete stamped in 2099 leaves a tombstone at the local time, so a real re-creation is welcome', () => {
    const a = entity('a');
    const { events, state } = run([upsert(t(0), a), remove(FUTURE, a), upsert(t(120), a)], { now, maxClockSkewMs: 60_000 });
    expect(events).toEqual([`create nova.instance:a ACTIVE ${t(0)}`, `delete nova.instance:a ACTIVE ${t(0)}`, `create nova.instance:a ACTIVE ${t(120)}`]);
    expect(state.tombstones.size).toBe(0);
  });

  it('a snapshot stamped in 2099 is taken at the local time: an older-looking notification after it still counts', () => {
    const { events, state } = run([snapshot(FUTURE, [entity('a')]), upsert(t(105), entity('a', 'ERROR'))], { now, maxClockSkewMs: 60_000 });
    expect(events).toEqual([`create nova.instance:a ACTIVE ${t(100)}`, `update nova.instance:a ERROR ${t(105)}`]);
    expect(state.syncedAt.get('nova.instance')).toBe(Date.parse(t(100)));
  });

  it('one observation from 2099 does not stop tombstone expiry', () => {
    const a = entity('a');
    let clock = Date.parse(t(100));
    const options: DiffOptions = { now: () => clock, maxClockSkewMs: 60_000, tombstoneMs: 60_000 };
    let state = emptyBaseline();
    for (const o of [upsert(t(90), a), remove(t(95), a), upsert(FUTURE, entity('b'))]) state = applyObservation(state, o, options).state;
    expect(state.tombstones.has(a.key)).toBe(true);
    // Ten minutes later (local clock and stamps agree again), the tombstone has expired.
    clock = Date.parse(t(700));
    state = applyObservation(state, upsert(t(700), entity('c')), options).state;
    expect(state.clock).toBe(Date.parse(t(700)));
    expect(state.tombstones.has(a.key)).toBe(false);
  });

  it("corrects only the entities' observedAt that lie beyond the skew, not those of a skewed observation that are fine", () => {
    // A snapshot stamped in 2099 whose records carry their own times: one in the past, one exactly
    // at the allowed skew (t(100) + 60 s), one in 2099 too. Only the last is taken at the local time.
    const records = [entity('past', 'ACTIVE', {}, t(50)), entity('edge', 'ACTIVE', {}, t(160)), entity('ahead', 'ACTIVE', {}, FUTURE)];
    const skewedSnapshot: Observation = { kind: 'snapshot', source: 'test', types: ['nova.instance'], at: FUTURE, records };
    const { events, skewed } = run([skewedSnapshot], { now, maxClockSkewMs: 60_000 });
    expect(events).toEqual([`create nova.instance:past ACTIVE ${t(50)}`, `create nova.instance:edge ACTIVE ${t(160)}`, `create nova.instance:ahead ACTIVE ${t(100)}`]);
    expect(skewed).toBe(1);
  });

  it('takes an observation stamped exactly at the allowed skew at its own time', () => {
    // Deleted at t(160), the very limit (t(100) + 60 s): the tombstone holds that time, so a
    // notification stamped t(130) is older news; taken at the local time t(100) it would not be.
    const a = entity('a');
    const { events, skewed, state } = run([upsert(t(0), a), remove(t(160), a), upsert(t(130), a)], { now, maxClockSkewMs: 60_000 });
    expect(events).toEqual([`create nova.instance:a ACTIVE ${t(0)}`, `delete nova.instance:a ACTIVE ${t(0)}`]);
    expect(skewed).toBe(0);
    expect(state.tombstones.get(a.key)).toBe(Date.parse(t(160)));
  });

  it('leaves alone observations stamped within the skew, and defaults the skew to five minutes', () => {
    const within = run([upsert(t(150), entity('a'))], { now, maxClockSkewMs: 60_000 });
    expect(within).toMatchObject({ events: [`create nova.instance:a ACTIVE ${t(150)}`], skewed: 0 });
    const byDefault = run([upsert(t(100 + 299), entity('a')), upsert(t(100 + 301), entity('b'))], { now });
    expect(byDefault).toMatchObject({ events: [`create nova.instance:a ACTIVE ${t(399)}`, `create nova.instance:b ACTIVE ${t(100)}`], skewed: 1 });
  });

  it('the hub counts corrections in metrics() and /metrics; maxClockSkew is a config key', async () => {
    const signal$ = new Subject<SourceSignal<Entity>>();
    const source = { name: 'bus', types: ['nova.instance'], signal$, map: (r: unknown) => r as EntityDraft } as Source<unknown>;
    const sync = createSynchronizer({ sources: [source], maxClockSkewMs: 60_000 });
    sync.start();
    signal$.next(upsert(FUTURE, entity('a', 'SHUTOFF')));
    // Taken at the local time: a notification stamped a second later (within the skew) is newer.
    signal$.next(upsert(new Date(Date.now() + 1000).toISOString(), entity('a', 'ACTIVE')));
    expect(sync.snapshot().map((e) => e.state)).toEqual(['ACTIVE']);
    expect(sync.metrics().clockSkewCorrections).toBe(1);
    expect(await createServiceMetrics(() => sync, [], []).text()).toContain('synchronizer_clock_skew_corrections_total 1\n');
    sync.stop();

    expect((await parseConfig({ sources: [{ name: 's', use: 'static', file: 'x.yaml' }] }, '/tmp')).maxClockSkewMs).toBe(300_000);
    expect((await parseConfig({ maxClockSkew: '30s', sources: [{ name: 's', use: 'static', file: 'x.yaml' }] }, '/tmp')).maxClockSkewMs).toBe(30_000);
    await expect(parseConfig({ maxClockSkew: 'soon', sources: [{ name: 's', use: 'static', file: 'x.yaml' }] }, '/tmp')).rejects.toThrow(/^maxClockSkew: expected a duration/);
  });
});
