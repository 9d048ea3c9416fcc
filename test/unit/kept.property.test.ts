/**
 * Unchanged records kept (src/kept.ts, src/hub/kept.ts, operators/standIns.ts) are exact: a run
 * of random observations in which the polls of one source have every record the hub's lookup
 * vouches for replaced by its Kept emits the same events (action, origin, every entity field,
 * observedAt and source included, changed) and ends in the same baseline (entries with their
 * time, bySnapshot and misses; tombstones; syncedAt) as the same run with every record mapped.
 *
 * The transport is emulated: a poll's element is sent as an id when it is the element (the same
 * JSON) the poll of generation `base` read for that type and id, as the parse worker's digests
 * say; `base` is read when the poll starts, the lookup is asked when its records are read, and
 * both may come several observations before its step (changes, patches, other sources'
 * snapshots, the source's own earlier poll, slices of the snapshot's preparation in between).
 */
import fc from 'fast-check';
import { of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { type BaselineState, type DiffOptions, applyObservation, emptyBaseline, prepareSnapshot } from '../../operators/diffAgainstBaseline.js';
import { normalizeEntity } from '../../operators/normalizeEntity.js';
import { createBaselineLookup } from '../../src/hub/kept.js';
import type { Kept } from '../../src/kept.js';
import type { EntityDraft, Observation, SnapshotObservation } from '../../src/model.js';
import { type EntityScope, entityScope } from '../../src/scope.js';
import { type ModelEvent } from '../support/baseline-model.js';
import { t } from '../support/entities.js';
import { NOW, arbChange, arbDraft, arbPatch, arbTime, asModelEvent, sorted } from '../support/baseline-model-checks.js';

const TYPES = ['nova.instance', 'nova.host', 'neutron.port'];
const SOURCE = 'nova';

/** One poll of the source under test. */
interface Poll {
  kind: 'poll';
  /** Its time: mostly in order (8 s per position), now and then any (late, or far ahead). */
  at: string | undefined;
  types: string[];
  /**
   * Its elements: a new draft, or (a number) an element of the poll before again; with `carry`,
   * the poll before's elements, the drafts here replacing some of them (churn).
   */
  elements: (EntityDraft | number)[];
  carry: boolean;
  /** Elements made invalid (an empty state: reported, their key kept). */
  invalid: number[];
  /** Elements repeated (a page shifted). */
  repeat: number[];
  missesBeforeDelete: number | undefined;
  /** Lent the baseline (a generation), or not. */
  generation: boolean;
  /** Its pages failed: read, never stepped. */
  fails: boolean;
  /** Observations stepped between its lookups and its step. */
  lead: number;
  /** And between reading `base` and its lookups. */
  baseLead: number;
  /** Its preparation's slices (one before each observation from its lookups to its step). */
  budgets: number[];
  /** Prepared to the end right before its step, as the hub does a big snapshot (hub/slicing.ts). */
  complete: boolean;
}

/** A snapshot of another source, in another scope (one owner per type and scope, rule 7). */
interface Other {
  kind: 'other';
  at: string;
  types: string[];
  drafts: EntityDraft[];
}

type Plan = Poll | Other | { kind: 'observation'; o: Observation };

const arbPoll: fc.Arbitrary<Poll> = fc.record({
  kind: fc.constant('poll' as const),
  at: fc.oneof({ weight: 10, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arbTime }),
  types: fc.oneof({ weight: 2, arbitrary: fc.constant(TYPES) }, { weight: 1, arbitrary: fc.subarray(TYPES, { minLength: 1 }) }),
  elements: fc.array(fc.oneof({ weight: 1, arbitrary: arbDraft }, { weight: 3, arbitrary: fc.nat() }), { maxLength: 7 }),
  carry: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  invalid: fc.array(fc.nat(), { maxLength: 1 }),
  repeat: fc.array(fc.nat(), { maxLength: 2 }),
  missesBeforeDelete: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  generation: fc.oneof({ weight: 8, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  fails: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  lead: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) }),
  baseLead: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) }),
  budgets: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }),
  complete: fc.boolean(),
});

const arbOther: fc.Arbitrary<Other> = fc.record({
  kind: fc.constant('other' as const),
  at: arbTime,
  types: fc.subarray(TYPES, { minLength: 1 }),
  drafts: fc.array(arbDraft, { maxLength: 4 }),
});

const arbPlans: fc.Arbitrary<Plan[]> = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: arbPoll },
    { weight: 1, arbitrary: arbOther },
    { weight: 3, arbitrary: fc.oneof(arbChange, arbPatch).map((o) => ({ kind: 'observation' as const, o })) },
  ),
  { maxLength: 24 },
);

/** The scope of the source under test and the other source's (never the same). */
const arbScopes: fc.Arbitrary<[EntityScope | undefined, EntityScope | undefined]> = fc.constantFrom(
  [undefined, entityScope('b')],
  [entityScope('a'), undefined],
  [entityScope('a'), entityScope('b')],
);

/** Each poll's elements, drafts all (the poll before's elements again where the plan says). */
function elementsOf(plans: readonly Plan[]): Map<number, EntityDraft[]> {
  let before: EntityDraft[] = [];
  const out = new Map<number, EntityDraft[]>();
  plans.forEach((plan, j) => {
    if (plan.kind !== 'poll') return;
    let elements: EntityDraft[];
    if (plan.carry) {
      elements = [...before];
      plan.elements.forEach((e, k) => {
        if (typeof e === 'number') return;
        if (k < elements.length) elements[k] = e;
        else elements.push(e);
      });
    } else elements = plan.elements.map((e) => (typeof e === 'number' ? before[e % before.length] : e)).filter((e): e is EntityDraft => e !== undefined);
    for (const i of plan.invalid) if (elements.length > 0) elements[i % elements.length] = { ...elements[i % elements.length]!, state: '' };
    for (const i of plan.repeat) if (elements.length > 0) elements.push(elements[i % elements.length]!);
    before = elements;
    out.set(j, elements);
  });
  return out;
}

interface Outcome {
  events: ModelEvent[][];
  state: BaselineState;
  /** Records kept, and events of a kept record (its step wrote it: the entry changed since the lookup). */
  kept: number;
  keptWritten: number;
}

const digest = (e: EntityDraft): string => JSON.stringify(e);
const idOf = (type: string, id: string): string => `${type} ${id}`;

/** Runs the plans, the polls' records kept where the lookup vouches for them (`keep`) or all mapped. */
function run(plans: readonly Plan[], elements: ReadonlyMap<number, EntityDraft[]>, scopes: [EntityScope | undefined, EntityScope | undefined], options: DiffOptions, keep: boolean): Outcome {
  const [scope, otherScope] = scopes;
  let state = emptyBaseline();
  const lookup = createBaselineLookup(SOURCE, scope, () => state);
  /** What the parse worker remembers: per generation, each element's digest by type and id. */
  const remembered = new Map<number, Map<string, string>>();
  const polls = new Map<number, { base?: number | undefined; snapshot?: SnapshotObservation; keptKeys: Set<string> }>();
  const outcome: Outcome = { events: [], state, kept: 0, keptWritten: 0 };
  const lookupAt = (j: number, p: Poll): number => Math.max(0, j - p.lead);
  plans.forEach((_, i) => {
    plans.forEach((p, j) => {
      if (p.kind !== 'poll') return;
      const poll = polls.get(j) ?? { keptKeys: new Set<string>() };
      polls.set(j, poll);
      if (Math.max(0, lookupAt(j, p) - p.baseLead) === i) poll.base = lookup.base();
      if (lookupAt(j, p) === i) {
        const base = poll.base;
        const generation = p.generation ? j + 1 : undefined;
        const records = elements.get(j)!.map((e): EntityDraft | Kept => {
          if (!keep || base === undefined || remembered.get(base)?.get(idOf(e.type, e.id)) !== digest(e)) return e;
          const k = lookup.kept(e.type, e.id, base);
          if (k === undefined) return e;
          outcome.kept++;
          poll.keptKeys.add(k.entity.key);
          return k;
        });
        if (generation !== undefined) remembered.set(generation, new Map(elements.get(j)!.map((e) => [idOf(e.type, e.id), digest(e)])));
        const raw: SnapshotObservation<EntityDraft | Kept> = {
          kind: 'snapshot',
          source: SOURCE,
          at: p.at ?? t(8 * j),
          types: p.types,
          records,
          ...(generation !== undefined ? { generation } : {}),
          ...(p.missesBeforeDelete !== undefined ? { missesBeforeDelete: p.missesBeforeDelete } : {}),
        };
        of(raw)
          .pipe(normalizeEntity((d: EntityDraft) => d, scope === undefined ? {} : { scope }))
          .subscribe((o) => (poll.snapshot = o as SnapshotObservation));
      }
      // A slice of its preparation before each observation from its lookups to its own step.
      if (poll.snapshot !== undefined && i >= lookupAt(j, p) && i <= j) prepareSnapshot(state, poll.snapshot, p.budgets[(i - lookupAt(j, p)) % p.budgets.length]!, { drop: true });
    });
    const plan = plans[i]!;
    let o: Observation | undefined;
    if (plan.kind === 'observation') o = plan.o;
    else if (plan.kind === 'other') {
      const records = plan.drafts.filter((d) => plan.types.includes(d.type)).map((d) => ({ ...d, state: d.state ?? 'UP' }));
      of<Observation<EntityDraft>>({ kind: 'snapshot', source: 'static', at: plan.at, types: plan.types, records })
        .pipe(normalizeEntity((d: EntityDraft) => d, otherScope === undefined ? {} : { scope: otherScope }))
        .subscribe((n) => (o = n));
    } else if (!plan.fails) {
      o = polls.get(i)!.snapshot!;
      if (plan.complete) while (!prepareSnapshot(state, o, plan.budgets[0]!, { drop: true })) continue;
    }
    if (o === undefined) return void outcome.events.push([]);
    const step = applyObservation(state, o, options);
    if (plan.kind === 'poll') {
      lookup.applied(step);
      const keptKeys = polls.get(i)!.keptKeys;
      outcome.keptWritten += step.events.filter((e) => keptKeys.has(e.entity.key)).length;
    }
    outcome.events.push(step.events.map(asModelEvent));
    state = step.state;
  });
  outcome.state = state;
  return outcome;
}

/** Runs `plans` twice, records mapped and records kept, and compares what they emit and where they end. */
function sameOutcome(plans: Plan[], scopes: [EntityScope | undefined, EntityScope | undefined], tombstoneMs: number | undefined, totals: { runs: number; kept: number; keptWritten: number }): void {
  const options: DiffOptions = { now: () => NOW, ...(tombstoneMs !== undefined ? { tombstoneMs } : {}) };
  const elements = elementsOf(plans);
  const mapped = run(plans, elements, scopes, options, false);
  const kept = run(plans, elements, scopes, options, true);
  totals.runs++;
  totals.kept += kept.kept;
  totals.keptWritten += kept.keptWritten;
  kept.events.forEach((events, i) => expect(events, `events of observation #${i}`).toStrictEqual(mapped.events[i]));
  const entries = (s: BaselineState) => sorted([...s.entities].map(([k, v]) => [k, { entity: v.entity, at: v.at, bySnapshot: v.bySnapshot, misses: v.misses }]));
  expect(entries(kept.state)).toStrictEqual(entries(mapped.state));
  expect(sorted(kept.state.tombstones)).toEqual(sorted(mapped.state.tombstones));
  expect(sorted(kept.state.syncedAt)).toEqual(sorted(mapped.state.syncedAt));
  expect(kept.state.clock).toBe(mapped.state.clock);
}

const arbTombstoneMs = fc.option(fc.constantFrom(1_000, 30_000, 300_000), { nil: undefined });

/**
 * A poll, then changes (upserts, deletes, patches: stamped before the next poll and after it),
 * then the next poll with the same elements (some repeated), whose lookups come before the changes:
 * each kept record's entry is changed, deleted or left alone before its step.
 */
const arbTouched: fc.Arbitrary<Plan[]> = fc
  .tuple(
    arbPoll.map((p) => ({ ...p, at: undefined, fails: false, generation: true, carry: false, elements: p.elements.map((e) => (typeof e === 'number' ? { type: 'nova.instance', id: 'a', state: 'ACTIVE' } : e)) })),
    fc.array(fc.oneof({ weight: 3, arbitrary: arbChange }, { weight: 1, arbitrary: arbPatch }), { minLength: 1, maxLength: 6 }),
    arbPoll,
  )
  .map(([first, changes, next]) => {
    // The first poll at t(0), the next at t(8·(changes + 1)); the changes around the next one's time.
    const at = 8 * (changes.length + 1);
    const touching: Plan[] = changes.map((o, i) => ({ kind: 'observation', o: { ...o, at: t((Date.parse(o.at) / 1000 + i) % (2 * at)) } as Observation }));
    // Mostly prepared to the end before its step, so that the step built ahead meets them too.
    return [first, ...touching, { ...next, at: undefined, fails: false, generation: true, carry: true, elements: [], lead: changes.length, baseLead: 0, complete: next.complete || next.repeat.length === 0 }];
  });

describe('unchanged records kept (properties)', () => {
  it('a run whose polls keep every record the lookup vouches for emits the same events and ends in the same baseline as with every record mapped', () => {
    const totals = { runs: 0, kept: 0, keptWritten: 0 };
    fc.assert(
      fc.property(arbPlans, arbScopes, arbTombstoneMs, (plans, scopes, tombstoneMs) => sameOutcome(plans, scopes, tombstoneMs, totals)),
      { numRuns: 2000 },
    );
    // The runs met what they are about: many records kept, and some written by their step.
    expect(totals.kept).toBeGreaterThan(totals.runs / 2);
    expect(totals.keptWritten).toBeGreaterThan(totals.runs / 50);
  });

  it('a kept record whose entry a change wrote or deleted between its lookup and its step is stepped as the record it stands for', () => {
    const totals = { runs: 0, kept: 0, keptWritten: 0 };
    fc.assert(
      fc.property(arbTouched, arbScopes, arbTombstoneMs, (plans, scopes, tombstoneMs) => sameOutcome(plans, scopes, tombstoneMs, totals)),
      { numRuns: 2000 },
    );
    expect(totals.keptWritten).toBeGreaterThan(totals.runs / 10);
  });
});
