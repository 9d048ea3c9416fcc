/**
 * Unchanged records kept, end to end on the transport's side: the Nova source, lent a lookup over
 * a real baseline stepped here (applyObservation; the hub's own lookup is the hub's part), polls
 * a local OpenStack; the same Nova source without it polls another one; both clouds change alike
 * between polls (an update, a delete that moves every later server up a place, some to the page
 * before, a create, a poll with no change). Both make the same events, and the lent one's polls
 * after the first hand over the unchanged servers kept.
 */
import { filter, map, tap } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { applyObservation, emptyBaseline, entryOf, type BaselineState } from '../../operators/diffAgainstBaseline.js';
import { normalizeEntity } from '../../operators/normalizeEntity.js';
import { createSources, parseConfig } from '../../src/config.js';
import { type BaselineLookup, Kept } from '../../src/kept.js';
import { type EntityEvent, type Observation, type SnapshotObservation, entityKey } from '../../src/model.js';
import type { Source } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { type OpenStackServer, serverId, startOpenStackServer } from '../support/openstack-server.js';
import { waitFor } from '../support/wait.js';

const clouds: OpenStackServer[] = [];
const stops: (() => void)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop();
  for (const os of clouds.splice(0)) await os.close();
});

async function nova(os: OpenStackServer): Promise<Source<unknown>> {
  const config = await parseConfig({ sources: [{ name: 'nova', use: 'openstack.nova', interval: '300ms', timeout: '10s', requestTimeout: '2s', region: 'RegionOne', auth: os.auth }] }, process.cwd());
  return createSources(config.sources)[0]!;
}

interface Run {
  /** Each applied snapshot's events. */
  events: EntityEvent[][];
  /** Each snapshot's kept records, and its generation. */
  kept: number[];
  generations: (number | undefined)[];
}

/**
 * Polls `source` into a baseline stepped here; after the n-th snapshot is applied, `changes[n]`
 * changes the cloud (before the next poll starts, 300 ms later). With `lend`, the source is lent
 * a lookup over that baseline: the base is the last snapshot applied (nothing else writes here),
 * and an entry is vouched for when a snapshot set or confirmed it and no snapshot missed it since.
 */
function drive(source: Source<unknown>, lend: boolean, changes: (() => void)[]): Run {
  let state: BaselineState = emptyBaseline();
  let applied: number | undefined;
  const run: Run = { events: [], kept: [], generations: [] };
  const lookup: BaselineLookup = {
    base: () => applied,
    kept: (type, id, base) => {
      if (base !== applied) return undefined;
      const entry = entryOf(state, entityKey(type, id));
      return entry !== undefined && entry.bySnapshot && entry.misses === 0 ? new Kept(entry.entity) : undefined;
    },
  };
  if (lend) source.useBaseline!(lookup);
  const subscription = source.signal$
    .pipe(
      filter((s): s is SnapshotObservation<unknown> => s.kind === 'snapshot'),
      map((s) => {
        const n = run.kept.push(0) - 1;
        run.generations.push(s.generation);
        return { ...s, ...(s.pages ? { pages: s.pages.pipe(tap((piece) => (run.kept[n] = (run.kept[n] ?? 0) + piece.filter((r) => r instanceof Kept).length))) } : {}) };
      }),
      normalizeEntity(source.map),
    )
    .subscribe((o: Observation) => {
      const step = applyObservation(state, o);
      state = step.state;
      run.events.push([...step.events]);
      if (o.kind === 'snapshot') applied = o.generation;
      changes[run.events.length - 1]?.();
    });
  stops.push(() => subscription.unsubscribe());
  return run;
}

const said = (events: readonly EntityEvent[]): string[] => events.map((e) => `${e.action} ${e.entity.key} ${e.entity.name} ${e.entity.state} ${JSON.stringify(e.entity.attributes)} ${e.hash}`).sort();

describe('the Nova source keeping unchanged servers (a lookup over a real baseline)', () => {
  it('makes the same events over several polls as the same source reading every server', async () => {
    const lent = await startOpenStackServer({ servers: 2500, pageSize: 1000 });
    const plain = await startOpenStackServer({ servers: 2500, pageSize: 1000 });
    clouds.push(lent, plain);
    const changesOf = (os: OpenStackServer): (() => void)[] => [
      () => {
        os.state.servers[2200]!.status = 'SHUTOFF';
        // Every server after the sixth moves up a place: the first of each page to the one before.
        os.state.servers.splice(5, 1);
        os.state.servers.push({ ...os.state.servers[0]!, id: serverId(90_000), name: 'vm-new' });
      },
      () => undefined,
      () => {
        os.state.servers[100]!.name = 'renamed';
        os.state.servers.splice(2400, 1);
      },
    ];
    const withKept = drive(await nova(lent), true, changesOf(lent));
    const without = drive(await nova(plain), false, changesOf(plain));
    await waitFor('four polls each', () => withKept.events.length >= 4 && without.events.length >= 4, { context: () => `${withKept.events.length} and ${without.events.length}` });
    for (let n = 0; n < 4; n += 1) expect(said(withKept.events[n]!), `poll ${n + 1}`).toEqual(said(without.events[n]!));
    // What changed, to be sure the polls saw it.
    expect(withKept.events.slice(0, 4).map((e) => e.filter((x) => x.entity.type === 'nova.instance').length)).toEqual([2500, 3, 0, 2]);
    expect(withKept.events[1]!.map((e) => `${e.action} ${e.entity.id}`).sort()).toEqual([`create ${serverId(90_000)}`, `delete ${serverId(5)}`, `update ${serverId(2200)}`]);
    // Kept: none at first, then every server the poll before had as it is.
    expect(withKept.kept.slice(0, 4)).toEqual([0, 2498, 2500, 2498]);
    expect(without.kept.slice(0, 4)).toEqual([0, 0, 0, 0]);
    expect(withKept.generations.slice(0, 4).every((g) => typeof g === 'number')).toBe(true);
    expect(without.generations.slice(0, 4)).toEqual([undefined, undefined, undefined, undefined]);
  });
});

describe('the Nova source keeping unchanged servers through the hub', () => {
  it("the hub lends its baseline: later polls are vouched for but for what changed, and the events are the poll's", async () => {
    const os = await startOpenStackServer({ servers: 2500, pageSize: 1000 });
    clouds.push(os);
    const source = await nova(os);
    // What the hub's lookup answered, poll after poll (counted around the lookup the hub lends).
    let vouched = 0;
    let refused = 0;
    const lend = source.useBaseline!.bind(source);
    source.useBaseline = (lookup) =>
      lend({
        base: () => lookup.base(),
        kept: (type, id, base) => {
          const kept = lookup.kept(type, id, base);
          if (kept === undefined) refused += 1;
          else vouched += 1;
          return kept;
        },
      });
    const sync = createSynchronizer({ sources: [source] });
    stops.push(() => sync.stop());
    const events: EntityEvent[] = [];
    sync.entity$.subscribe((e) => events.push(e));
    sync.start();
    await waitFor('the first snapshot', () => sync.snapshot(['nova.instance']).length === 2500);
    expect(vouched).toBe(0);
    // Some polls with no change: every server vouched for (but those of a first page opened
    // before the hub applied the poll before it, which the hub refuses and which come in full).
    const polls = os.requestsTo('/servers/detail').length;
    await waitFor('three more polls', () => os.requestsTo('/servers/detail').length >= polls + 9);
    expect(vouched).toBeGreaterThan(2 * 2500);
    expect(events.filter((e) => e.action !== 'create')).toEqual([]);
    // A change: one update, made by the poll that read it, with that poll's time and source.
    const before = sync.snapshot(['nova.instance']).find((e) => e.id === serverId(1500))!;
    os.state.servers[1500]!.status = 'SHUTOFF';
    await waitFor('the update', () => events.some((e) => e.action === 'update'));
    const update = events.find((e) => e.action === 'update')!;
    expect(update.entity).toMatchObject({ id: serverId(1500), state: 'SHUTOFF', source: 'nova' });
    expect(Date.parse(update.entity.observedAt)).toBeGreaterThan(Date.parse(before.observedAt));
    expect(events.filter((e) => e.action !== 'create')).toHaveLength(1);
    // The unchanged servers are still the baseline's entities of the first poll.
    expect(sync.snapshot(['nova.instance']).find((e) => e.id === serverId(7))!.observedAt).toBe(events.find((e) => e.entity.id === serverId(7))!.entity.observedAt);
    expect(sync.snapshot(['nova.instance'])).toHaveLength(2500);
  });
});
