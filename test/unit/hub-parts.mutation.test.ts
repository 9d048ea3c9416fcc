import { type Observable, asyncScheduler, defer, from, take, throwError } from 'rxjs';
import { describe, expect, it, vi } from 'vitest';
import { applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import type { InvalidRecord } from '../../operators/normalizeEntity.js';
import { createHubBaseline } from '../../src/hub/baseline.js';
import { createHealthBoard } from '../../src/hub/health.js';
import { observationsOf } from '../../src/hub/intake.js';
import { createCounters, metricsOf } from '../../src/hub/metrics.js';
import { createOwnership } from '../../src/hub/ownership.js';
import { registerWith } from '../../src/hub/register.js';
import { replayOf } from '../../src/hub/replay.js';
import type { SourceHealth, SyncItem } from '../../src/hub/types.js';
import type { LogFields, Logger } from '../../src/log.js';
import type { Entity, EntityDraft, Observation, Settlement } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';

/**
 * The hub's small parts, each through what it exports: the health board (what /health shows and
 * what is logged on each change), snapshot ownership (DESIGN rule 7) and the metrics copy.
 * Written to kill mutants (docs/testing.md, "Mutation testing").
 */

/** A logger that keeps every line: level, message, fields. */
function recordingLogger(): { log: Logger; lines: [string, string, LogFields | undefined][] } {
  const lines: [string, string, LogFields | undefined][] = [];
  const log: Logger = {
    debug: (m, f) => void lines.push(['debug', m, f]),
    info: (m, f) => void lines.push(['info', m, f]),
    warn: (m, f) => void lines.push(['warn', m, f]),
    error: (m, f) => void lines.push(['error', m, f]),
    child: () => log,
  };
  return { log, lines };
}

describe('the health board', () => {
  const clock = (): { now: () => string; at: (s: number) => void } => {
    let time = t(0);
    return { now: () => time, at: (s) => void (time = t(s)) };
  };

  it('starts every source as starting, and logs each change of status once, with its error and retry', () => {
    const { now, at } = clock();
    const { log, lines } = recordingLogger();
    const board = createHealthBoard(['nova', 'nagios'], now, log);
    const seen: Readonly<Record<string, SourceHealth>>[] = [];
    board.health$.subscribe((h) => seen.push(h));
    expect(board.value()).toEqual({
      nova: { source: 'nova', status: 'starting', since: t(0), failures: 0 },
      nagios: { source: 'nagios', status: 'starting', since: t(0), failures: 0 },
    });

    at(5);
    board.signal('nova', { kind: 'health', status: 'down', error: new Error('GET http://nova/servers: 503'), retryInMs: 1000 });
    expect(board.value().nova).toEqual({ source: 'nova', status: 'down', since: t(5), failures: 1, error: 'GET http://nova/servers: 503', retryInMs: 1000 });
    expect(lines).toHaveLength(1);
    expect(lines[0]![0]).toBe('warn');
    expect(lines[0]![1]).toBe('source is down');
    expect(lines[0]![2]).toMatchObject({ source: 'nova', status: 'down', retryInMs: 1000 });
    // The Error itself goes to the log (its stack at debug); /health gets its message.
    expect(lines[0]![2]!.error).toBeInstanceOf(Error);

    at(6);
    board.signal('nova', { kind: 'health', status: 'down' });
    // Still down: since stays, failures count on, the error defaults, no retry given this time.
    expect(board.value().nova).toStrictEqual({ source: 'nova', status: 'down', since: t(5), failures: 2, error: 'unknown error' });
    expect(lines[1]).toEqual(['warn', 'source still down', { source: 'nova', error: 'unknown error', failures: 2, retryInMs: undefined }]);

    at(7);
    board.signal('nova', { kind: 'health', status: 'up' });
    expect(board.value().nova).toStrictEqual({ source: 'nova', status: 'up', since: t(7), failures: 0 });
    expect(lines[2]).toStrictEqual(['info', 'source is up', { source: 'nova', status: 'up' }]);

    at(8);
    board.signal('nova', { kind: 'health', status: 'up' });
    expect(board.value().nova!.since).toBe(t(7));
    expect(lines).toHaveLength(3);
    // The other source is untouched; every change was published.
    expect(board.value().nagios).toEqual({ source: 'nagios', status: 'starting', since: t(0), failures: 0 });
    expect(seen.map((h) => h.nova!.status)).toEqual(['starting', 'down', 'down', 'up', 'up']);
  });

  it('takes updates: keeps failures unless given, drops error and retry once not down, and knows sources set late', () => {
    const { now, at } = clock();
    const { log, lines } = recordingLogger();
    const board = createHealthBoard([], now, log);
    at(1);
    board.set('state', { status: 'up' });
    expect(board.value().state).toEqual({ source: 'state', status: 'up', since: t(1), failures: 0 });
    expect(lines).toEqual([['info', 'source is up', { source: 'state', status: 'up' }]]);
    at(2);
    board.set('state', { status: 'down', failures: 3, error: 'disk full', retryInMs: 50 });
    expect(board.value().state).toEqual({ source: 'state', status: 'down', since: t(2), failures: 3, error: 'disk full', retryInMs: 50 });
    at(3);
    board.set('state', { status: 'down' });
    // No new error: the last one is logged again, the failures kept.
    expect(board.value().state).toStrictEqual({ source: 'state', status: 'down', since: t(2), failures: 3 });
    expect(lines[2]).toEqual(['warn', 'source still down', { source: 'state', error: undefined, failures: 3, retryInMs: undefined }]);
    at(4);
    board.set('state', { status: 'stopped', error: 'ignored', retryInMs: 9 });
    expect(board.value().state).toStrictEqual({ source: 'state', status: 'stopped', since: t(4), failures: 3 });
    expect(lines[3]).toStrictEqual(['info', 'source is stopped', { source: 'state', status: 'stopped' }]);
    at(5);
    board.set('other', {});
    expect(board.value().other).toEqual({ source: 'other', status: 'starting', since: t(5), failures: 0 });
  });
});

describe('snapshot ownership (rule 7)', () => {
  const snap = (source: string, types: string[], scope?: string): Observation => ({
    ...snapshot(t(0), [], types),
    source,
    ...(scope === undefined ? {} : { scope }),
  });

  it('gives each type to the first source that sends a complete snapshot of it, and refuses the others, saying why', () => {
    const refused: [string, string][] = [];
    const ownership = createOwnership((o, error) => refused.push([o.source, error]), [['nova.host', 'nova']]);
    expect(ownership.admits(snap('nova', ['nova.host', 'nova.instance']))).toBe(true);
    expect(ownership.admits(upsert(t(1), entity('a')))).toBe(true);
    expect(ownership.admits({ ...remove(t(1), entity('a')), source: 'other' })).toBe(true);
    expect(ownership.admits(snap('static', ['nova.instance']))).toBe(false);
    expect(refused).toEqual([
      [
        'static',
        "static and nova both send complete snapshots of nova.instance, so each would delete the other's entities: static's snapshots are refused. " +
          'Give each entity type to one poll source (its types option), or each cloud its own scope.',
      ],
    ]);
    expect([...ownership.owners()]).toEqual([
      ['nova.host', 'nova'],
      ['nova.instance', 'nova'],
    ]);
  });

  it('owns a type per scope: two clouds are two owners, and a refusal names the scope', () => {
    const refused: string[] = [];
    const ownership = createOwnership((_, error) => refused.push(error));
    expect(ownership.admits(snap('nova-a', ['nova.instance'], 'region-a'))).toBe(true);
    expect(ownership.admits(snap('nova-b', ['nova.instance'], 'region-b'))).toBe(true);
    expect(ownership.admits(snap('nova-b', ['nova.instance'], 'region-a'))).toBe(false);
    expect(refused[0]).toMatch(/^nova-b and nova-a both send complete snapshots of nova\.instance in scope region-a, /);
    expect([...ownership.owners()]).toEqual([
      ['region-a/nova.instance', 'nova-a'],
      ['region-b/nova.instance', 'nova-b'],
    ]);
    // A refused snapshot takes none of its types, even those nobody owned yet.
    expect(ownership.admits(snap('nova-b', ['nova.host', 'nova.instance'], 'region-a'))).toBe(false);
    expect(ownership.owners().has('region-a/nova.host')).toBe(false);
  });
});

describe('metricsOf', () => {
  it("copies the counters and adds the baseline's gauges; the copy does not move with the hub", () => {
    const counters = createCounters();
    expect(counters).toEqual({ events: { create: 0, update: 0, delete: 0 }, observations: {}, invalidRecords: {}, resyncs: 0, callbackErrors: 0, clockSkewCorrections: 0, backlog: 0 });
    let state = applyObservation(emptyBaseline(), snapshot(t(0), [entity('a'), entity('b')])).state;
    state = applyObservation(state, remove(t(1), entity('b'))).state;
    counters.events.create = 2;
    counters.observations.nova = 1;
    counters.invalidRecords.nova = 3;
    const metrics = metricsOf(counters, state);
    expect(metrics).toEqual({ ...counters, entities: 1, tombstones: 1 });
    expect(metrics).not.toHaveProperty('pipelineError');
    counters.events.create = 5;
    counters.observations.nova = 2;
    counters.invalidRecords.nova = 4;
    expect(metrics.events.create).toBe(2);
    expect(metrics.observations.nova).toBe(1);
    expect(metrics.invalidRecords.nova).toBe(3);
    expect(metricsOf(counters, state, 'boom').pipelineError).toBe('boom');
  });
});

describe("the hub's baseline and entities$ (replay)", () => {
  const host = (id: string): Entity => entity(id, 'UP', { type: 'nova.host' });

  it('numbers events from 1, takes the state before emitting, and snapshots by type', () => {
    const baseline = createHubBaseline();
    const seen: [string, number, number][] = [];
    baseline.event$.subscribe((e) => seen.push([e.entity.key, baseline.stateSeq(), baseline.state().entities.size]));
    const numbered: [string, number][] = [];
    baseline.apply(applyObservation(baseline.state(), snapshot(t(0), [entity('a'), entity('b')])), (e, seq) => numbered.push([e.entity.key, seq]));
    expect(numbered).toEqual([
      ['nova.instance:a', 1],
      ['nova.instance:b', 2],
    ]);
    // A subscriber called from inside next() sees the state that holds the event, and its number.
    expect(seen).toEqual([
      ['nova.instance:a', 2, 2],
      ['nova.instance:b', 2, 2],
    ]);
    baseline.apply(applyObservation(baseline.state(), snapshot(t(1), [host('h')], ['nova.host'])), () => undefined);
    expect([baseline.emittedSeq(), baseline.stateSeq()]).toEqual([3, 3]);
    expect(baseline.snapshot(['nova.host']).map((e) => e.key)).toEqual(['nova.host:h']);
    expect(baseline.snapshot().map((e) => e.key).sort()).toEqual(['nova.host:h', 'nova.instance:a', 'nova.instance:b']);
  });

  it('replays the current state, then synced, then every later event of its types: none lost, none twice', () => {
    const baseline = createHubBaseline();
    baseline.apply(applyObservation(baseline.state(), snapshot(t(0), [entity('a'), host('h')], ['nova.instance', 'nova.host'])), () => undefined);
    const synced: [unknown, number][] = [];
    const entities$ = replayOf(baseline, (item, seq) => synced.push([item, seq]));
    const items: string[] = [];
    let applied = false;
    entities$(['nova.instance']).subscribe((item) => {
      items.push(
        item.kind === 'synced' ? `synced ${item.count}` : item.kind === 'replay' ? `replay ${item.entity.key}` : item.kind === 'event' ? `${item.event.action} ${item.event.entity.key}` : item.kind,
      );
      // An event while the replay is delivered: it waits for synced, and comes once.
      if (!applied) {
        applied = true;
        baseline.apply(applyObservation(baseline.state(), upsert(t(1), entity('b'))), () => undefined);
        baseline.apply(applyObservation(baseline.state(), upsert(t(1), host('h2'))), () => undefined);
      }
    });
    baseline.apply(applyObservation(baseline.state(), upsert(t(2), entity('c'))), () => undefined);
    expect(items).toEqual(['replay nova.instance:a', 'synced 1', 'create nova.instance:b', 'create nova.instance:c']);
    expect(synced).toEqual([[{ kind: 'synced', count: 1 }, 2]]);
  });

  it('delivers nothing more once the subscriber goes, replay or event', () => {
    const baseline = createHubBaseline();
    baseline.apply(applyObservation(baseline.state(), snapshot(t(0), [entity('a'), entity('b'), entity('c')])), () => undefined);
    const items: string[] = [];
    const subscription = replayOf(baseline)()
      .pipe(take(2))
      .subscribe((item) => items.push(item.kind));
    expect(items).toEqual(['replay', 'replay']);
    expect(subscription.closed).toBe(true);
    baseline.apply(applyObservation(baseline.state(), upsert(t(1), entity('d'))), () => undefined);
    expect(items).toHaveLength(2);
  });
});

describe('register(): a queue per consumer', () => {
  const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  async function settle(): Promise<void> {
    for (let i = 0; i < 20; i++) await tick();
  }
  const briefItem = (item: SyncItem): string =>
    item.kind === 'event' ? `${item.event.action} ${item.event.entity.id}` : item.kind === 'replay' ? `replay ${item.entity.id}` : item.kind === 'synced' ? `synced ${item.count}` : `resync ${item.dropped}`;

  it('counts the events queued until the callback takes them, and gives them back when the consumer goes', async () => {
    const baseline = createHubBaseline();
    const counters = createCounters();
    const register = registerWith({ entities$: replayOf(baseline), bufferSize: 100, counters, log: recordingLogger().log });
    const taken: string[] = [];
    let release: () => void = () => undefined;
    const handle = register(['nova.instance'], async (item) => {
      taken.push(briefItem(item));
      if (item.kind === 'synced') await new Promise<void>((resolve) => (release = resolve));
    });
    for (const id of ['a', 'b', 'c']) baseline.apply(applyObservation(baseline.state(), upsert(t(1), entity(id))), () => undefined);
    expect(counters.backlog).toBe(3);
    await settle();
    // The callback holds `synced`: one event taken off the queue would show here.
    expect(taken).toEqual(['synced 0']);
    expect(counters.backlog).toBe(3);
    release();
    await settle();
    expect(taken).toEqual(['synced 0', 'create a', 'create b', 'create c']);
    expect(counters.backlog).toBe(0);
    // Queued, then the consumer goes: its events leave the backlog with it.
    let hold: () => void = () => undefined;
    const slow = register(undefined, (item) => (item.kind === 'synced' ? new Promise<void>((resolve) => (hold = resolve)) : undefined));
    await settle();
    baseline.apply(applyObservation(baseline.state(), upsert(t(2), entity('d'))), () => undefined);
    expect(counters.backlog).toBe(2);
    slow.unsubscribe();
    hold();
    handle.unsubscribe();
    expect(counters.backlog).toBe(0);
  });

  it('resynchronises a consumer more than its buffer behind: the backlog dropped, a resync, a fresh replay', async () => {
    const baseline = createHubBaseline();
    const counters = createCounters();
    const { log, lines } = recordingLogger();
    const register = registerWith({ entities$: replayOf(baseline), bufferSize: 100, counters, log });
    const taken: string[] = [];
    let release: () => void = () => undefined;
    const handle = register(
      ['nova.instance'],
      async (item) => {
        taken.push(briefItem(item));
        if (item.kind === 'synced' && item.count === 0) await new Promise<void>((resolve) => (release = resolve));
      },
      { bufferSize: 2 },
    );
    await settle();
    for (const id of ['a', 'b']) baseline.apply(applyObservation(baseline.state(), upsert(t(1), entity(id))), () => undefined);
    expect([counters.resyncs, counters.backlog]).toEqual([0, 2]);
    baseline.apply(applyObservation(baseline.state(), upsert(t(1), entity('c'))), () => undefined);
    expect([counters.resyncs, counters.backlog]).toEqual([1, 0]);
    expect(lines).toEqual([['warn', 'consumer fell behind and is resynchronised', { types: ['nova.instance'], dropped: 3, bufferSize: 2 }]]);
    release();
    await settle();
    expect(taken).toEqual(['synced 0', 'resync 3', 'replay a', 'replay b', 'replay c', 'synced 3']);
    // Connected again: the next event comes through.
    baseline.apply(applyObservation(baseline.state(), upsert(t(2), entity('d'))), () => undefined);
    await settle();
    expect(taken.at(-1)).toBe('create d');
    handle.unsubscribe();
  });

  it('counts and logs a callback that throws or rejects, and goes on with the next item', async () => {
    const baseline = createHubBaseline();
    baseline.apply(applyObservation(baseline.state(), snapshot(t(0), [entity('a'), entity('b')])), () => undefined);
    const counters = createCounters();
    const { log, lines } = recordingLogger();
    const taken: string[] = [];
    const handle = registerWith({ entities$: replayOf(baseline), bufferSize: 10, counters, log })(undefined, async (item) => {
      taken.push(briefItem(item));
      if (item.kind === 'replay' && item.entity.id === 'a') throw new Error('consumer broke');
    });
    await settle();
    expect(taken).toEqual(['replay a', 'replay b', 'synced 2']);
    expect(counters.callbackErrors).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]![0]).toBe('error');
    expect(lines[0]![1]).toBe('consumer callback failed');
    expect(lines[0]![2]).toMatchObject({ types: undefined, error: new Error('consumer broke') });
    handle.unsubscribe();
  });
});

describe("intake: one source's way into the baseline", () => {
  type Raw = { type: string; id: string; state?: string };
  const signals = (...s: SourceSignal<Raw>[]): Observable<SourceSignal<Raw>> => from(s);
  const mapRaw = (r: Raw): EntityDraft => ({ type: r.type, id: r.id, ...(r.state === undefined ? {} : { state: r.state }) });

  function intake(signal$: Observable<SourceSignal<Raw>>, active: (type: string) => boolean = () => true, scope?: string) {
    const { log, lines } = recordingLogger();
    const health = createHealthBoard(['nova'], () => t(0), log);
    const refused: string[] = [];
    const invalid: InvalidRecord[] = [];
    const source: Source<unknown> = { name: 'nova', types: ['nova.instance'], signal$, map: mapRaw as (r: unknown) => EntityDraft, ...(scope === undefined ? {} : { scope }) };
    const out: Observation[] = [];
    observationsOf(source, {
      health,
      localTypes: [],
      ownership: createOwnership((o) => refused.push(o.source), [['nova.host', 'other']]),
      active,
      onInvalid: (r) => invalid.push(r),
      retry: { initialMs: 1000, jitter: 0 },
      keepRaw: false,
      scheduler: asyncScheduler,
      log,
    }).subscribe((o) => out.push(o));
    return { out, health, lines, refused, invalid };
  }
  const snap = (types: string[], records: Raw[], settle?: (s: Settlement) => void): Observation<Raw> => ({
    kind: 'snapshot',
    source: 'plugin-wrote-this',
    at: t(0),
    types,
    records,
    ...(settle ? { settle } : {}),
  });

  it('names observations after the source, reports its health signals, and logs its completion', () => {
    const { out, health, lines, invalid } = intake(signals({ kind: 'health', status: 'up' }, snap(['nova.instance'], [{ type: 'nova.instance', id: 'a', state: 'active' }])));
    expect(out).toHaveLength(1);
    expect(out[0]!.source).toBe('nova');
    expect(out[0]!.kind === 'snapshot' && out[0]!.records.map((e) => [e.key, e.state, e.source])).toEqual([['nova.instance:a', 'ACTIVE', 'nova']]);
    expect(health.value().nova!.status).toBe('up');
    // The health signal went no further: not mapped as a record.
    expect(invalid).toEqual([]);
    expect(lines.at(-1)).toEqual(['info', 'source completed', { source: 'nova' }]);
  });

  it('normalizes a big snapshot in slices, pausing between two, handing it to `prepare` as it grows', async () => {
    let pauses = 0;
    const prepared: Observation[] = [];
    const source: Source<unknown> = { name: 'nova', types: ['nova.instance'], signal$: signals(snap(['nova.instance'], ['a', 'b', 'c'].map((id) => ({ type: 'nova.instance', id, state: 'up' })))), map: mapRaw as (r: unknown) => EntityDraft };
    const out: Observation[] = [];
    const done = new Promise<void>((resolve) =>
      observationsOf(source, {
        health: createHealthBoard(['nova'], () => t(0), recordingLogger().log),
        localTypes: [],
        ownership: createOwnership(() => undefined),
        active: () => true,
        onInvalid: () => undefined,
        retry: {},
        keepRaw: false,
        slice: { records: 1, pause: () => new Promise<void>((r) => setImmediate(() => r(void pauses++))) },
        prepare: (o) => void prepared.push(o),
        scheduler: asyncScheduler,
        log: recordingLogger().log,
      }).subscribe({ next: (o) => out.push(o), complete: resolve }),
    );
    expect(out).toEqual([]);
    await done;
    expect(pauses).toBeGreaterThan(0);
    // After each record's run (a slice of one here), the snapshot that then comes out.
    expect(prepared).toHaveLength(3);
    for (const o of prepared) expect(o).toBe(out[0]);
    expect(out.map((o) => (o.kind === 'snapshot' ? o.records.map((e) => e.id) : []))).toEqual([['a', 'b', 'c']]);
  });

  it('drops inactive types: the rest of a snapshot goes on, an observation with nothing left is settled ok at once', () => {
    const settled: Settlement[] = [];
    const onlyInstances = (type: string): boolean => type === 'nova.instance';
    const whole = snap(['nova.instance'], [{ type: 'nova.instance', id: 'a', state: 'active' }]);
    const mixed = snap(['nova.instance', 'nova.host'], [{ type: 'nova.instance', id: 'b', state: 'active' }, { type: 'nova.host', id: 'h', state: 'up' }]);
    const hostsOnly = snap(['nova.host'], [{ type: 'nova.host', id: 'h', state: 'up' }], (s) => settled.push(s));
    const change = (type: string): Observation<Raw> => ({ kind: 'change', source: 'nova', at: t(1), action: 'upsert', record: { type, id: 'x', state: 'up' }, settle: (s) => settled.push(s) });
    const patch: Observation<Raw> = { kind: 'patch', source: 'nova', at: t(1), record: { type: 'nova.host', id: 'x', state: 'up' }, settle: (s) => settled.push(s) };
    const { out } = intake(signals(whole, mixed, hostsOnly, change('nova.host'), change('nova.instance'), patch), onlyInstances);
    expect(out.map((o) => (o.kind === 'snapshot' ? `snapshot ${o.types.join(',')}: ${o.records.map((e) => e.id).join(',')}` : `${o.kind} ${o.record.key}`))).toEqual([
      'snapshot nova.instance: a',
      'snapshot nova.instance: b',
      'change nova.instance:x',
    ]);
    expect(settled).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
  });

  it('refuses a snapshot of a type another source owns', () => {
    const { out, refused } = intake(signals(snap(['nova.host'], [{ type: 'nova.host', id: 'h', state: 'up' }])));
    expect(out).toEqual([]);
    expect(refused).toEqual(['nova']);
  });

  it('qualifies the ids of local types in a scoped source, and reports invalid records', () => {
    const { out, invalid } = intake(
      signals(snap(['nova.host', 'nova.instance'], [{ type: 'nova.host', id: 'h', state: 'up' }, { type: 'nova.instance', id: 'bad' }])),
      () => true,
      'region-a',
    );
    expect(out[0]!.kind === 'snapshot' && out[0]!.records.map((e) => e.key)).toEqual(['nova.host:region-a/h']);
    expect(invalid.map((r) => [r.source, r.reason])).toEqual([['nova', 'state is missing']]);
  });

  it('retries a failing source with backoff, reporting it down with the error and the delay', () => {
    vi.useFakeTimers();
    try {
      let attempt = 0;
      const signal$ = defer(() => (++attempt === 1 ? throwError(() => new Error('GET http://nova/servers: 503')) : signals({ kind: 'health', status: 'up' })));
      const { health } = intake(signal$);
      expect(health.value().nova).toMatchObject({ status: 'down', error: 'GET http://nova/servers: 503', retryInMs: 1000, failures: 1 });
      vi.advanceTimersByTime(1000);
      expect(attempt).toBe(2);
      expect(health.value().nova!.status).toBe('up');
    } finally {
      vi.useRealTimers();
    }
  });
});
