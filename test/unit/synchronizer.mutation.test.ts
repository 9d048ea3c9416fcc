import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject, throwError } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { InvalidRecord } from '../../operators/normalizeEntity.js';
import { STATE_HEALTH } from '../../src/hub/commit.js';
import type { LogFields, Logger } from '../../src/log.js';
import type { Entity, EntityDraft, EntityEvent, Observation, Settlement } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { type Synchronizer, type SynchronizerOptions, createSynchronizer } from '../../src/synchronizer.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';
import { waitFor } from '../support/wait.js';

/**
 * createSynchronizer's wiring, through its public API: the options it passes on (keepRaw,
 * tombstoneMs, maxClockSkewMs, localTypes, settleAfterSinks), what it counts and logs, start,
 * drain and the state store's start. Written to kill mutants (docs/testing.md, "Mutation testing").
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

type Signal = SourceSignal<unknown>;

/** A source fed by hand; its map passes drafts through, and refuses a record `{ bad: reason }`. */
function handSource(name: string, extra: Partial<Source<unknown>> = {}): { source: Source<unknown>; signal$: Subject<Signal> } {
  const signal$ = new Subject<Signal>();
  const map = (r: unknown): EntityDraft => {
    const bad = (r as { bad?: string }).bad;
    if (bad !== undefined) throw new Error(bad);
    return r as EntityDraft;
  };
  return { source: { name, types: ['nova.instance'], signal$, map, ...extra } as Source<unknown>, signal$ };
}

/** Sends an observation and resolves with its settlement. */
function send(signal$: Subject<Signal>, o: Observation): Promise<Settlement> {
  return new Promise((resolve) => signal$.next({ ...o, settle: resolve }));
}

const closing: Synchronizer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sync-mutation-'));
  dirs.push(dir);
  return dir;
}

function hub(options: SynchronizerOptions): { sync: Synchronizer; events: EntityEvent[]; brief: () => string[] } {
  const sync = createSynchronizer(options);
  closing.push(sync);
  const events: EntityEvent[] = [];
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
  return { sync, events, brief: () => events.map((e) => `${e.action}:${e.entity.id}:${e.entity.state}`) };
}

describe('createSynchronizer passes its options on', () => {
  it('keeps raw records on entities only with keepRaw', () => {
    const record = { ...entity('a'), raw: { id: 'a', status: 'ACTIVE' } };
    for (const keepRaw of [undefined, false, true]) {
      const { source, signal$ } = handSource('nova');
      const { events } = hub({ sources: [source], ...(keepRaw === undefined ? {} : { keepRaw }) });
      signal$.next(snapshot(t(0), [record as Entity]));
      expect(events).toHaveLength(1);
      expect(events[0]!.entity.raw).toEqual(keepRaw === true ? { id: 'a', status: 'ACTIVE' } : undefined);
    }
  });

  it('holds tombstones for tombstoneMs, and ten minutes by default', () => {
    // A late upsert older than the delete is refused while the tombstone holds (rule 4).
    const run = (tombstoneMs: number | undefined, deletedAt: number, nextAt: number) => {
      const { source, signal$ } = handSource('nova');
      const { sync, brief } = hub({ sources: [source], ...(tombstoneMs === undefined ? {} : { tombstoneMs }) });
      signal$.next(upsert(t(0), entity('a')));
      signal$.next(remove(t(deletedAt), entity('a')));
      expect(sync.metrics().tombstones).toBe(1);
      // Any later observation expires the tombstones past their time.
      signal$.next(upsert(t(nextAt), entity('b')));
      return { tombstones: sync.metrics().tombstones, brief: brief() };
    };
    expect(run(undefined, 1, 1 + 599).tombstones).toBe(1);
    expect(run(undefined, 1, 1 + 601).tombstones).toBe(0);
    expect(run(5_000, 1, 1 + 4).tombstones).toBe(1);
    expect(run(5_000, 1, 1 + 6).tombstones).toBe(0);
  });

  it('corrects observations stamped beyond maxClockSkewMs, five minutes by default; counts and logs the 1st, 2nd, 4th… correction', () => {
    const ahead = (ms: number) => new Date(Date.now() + ms).toISOString();
    const { log, lines } = recordingLogger();
    const { source, signal$ } = handSource('nova');
    const { sync } = hub({ sources: [source], log, maxClockSkewMs: 60_000 });
    signal$.next(upsert(ahead(30_000), entity('a')));
    expect(sync.metrics().clockSkewCorrections).toBe(0);
    // Within the default five minutes, beyond the minute given.
    signal$.next(upsert(ahead(120_000), entity('a', 'S1')));
    expect(sync.metrics().clockSkewCorrections).toBe(1);
    for (let i = 2; i <= 5; i++) signal$.next(upsert(ahead(3_600_000 + i * 1000), entity('a', `S${i}`)));
    expect(sync.metrics().clockSkewCorrections).toBe(5);
    const warnings = lines.filter(([level]) => level === 'warn');
    expect(warnings.map(([, message, fields]) => [message, fields!.corrections, fields!.source])).toEqual([
      ['observation stamped too far in the future, taken at the local time', 1, 'nova'],
      ['observation stamped too far in the future, taken at the local time', 2, 'nova'],
      ['observation stamped too far in the future, taken at the local time', 4, 'nova'],
    ]);
    expect(warnings[0]![2]!.stampedAt).toEqual(expect.any(String));

    const byDefault = handSource('nova');
    const other = hub({ sources: [byDefault.source] });
    byDefault.signal$.next(upsert(ahead(240_000), entity('a')));
    expect(other.sync.metrics().clockSkewCorrections).toBe(0);
    byDefault.signal$.next(upsert(ahead(360_000), entity('a', 'SHUTOFF')));
    expect(other.sync.metrics().clockSkewCorrections).toBe(1);
  });

  it("qualifies the ids of every source's localTypes in a scoped source, its own or another's", () => {
    const plain = handSource('plugin', { localTypes: ['plugin.widget'], types: ['plugin.widget'] });
    const scoped = handSource('other', { scope: 'east', types: ['plugin.widget'] });
    const { events } = hub({ sources: [plain.source, scoped.source] });
    scoped.signal$.next(upsert(t(0), entity('w1', 'UP', { type: 'plugin.widget' })));
    expect(events.map((e) => e.entity.key)).toEqual(['plugin.widget:east/w1']);
  });

  it('settles after every sink only with settleAfterSinks (without a state store); at once by default', async () => {
    for (const settleAfterSinks of [undefined, true]) {
      const { source, signal$ } = handSource('nova');
      const { sync, events } = hub({ sources: [source], ...(settleAfterSinks === undefined ? {} : { settleAfterSinks }) });
      const gate = sync.gate();
      const settled: Settlement[] = [];
      void send(signal$, upsert(t(0), entity('a'))).then((s) => settled.push(s));
      expect(events).toHaveLength(1);
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (settleAfterSinks) {
        expect(settled).toEqual([]);
        expect(sync.unsettled()).toBe(1);
        gate.accept(events[0]!);
        await waitFor('the settlement', () => settled.length === 1);
        expect(sync.unsettled()).toBe(0);
      }
      expect(settled).toEqual([{ ok: true }]);
    }
  });
});

describe('createSynchronizer counts and reports', () => {
  it('counts, logs and publishes each invalid record, by source', () => {
    const { log, lines } = recordingLogger();
    const { source, signal$ } = handSource('nova');
    const { sync } = hub({ sources: [source], log });
    const invalid: InvalidRecord[] = [];
    sync.invalid$.subscribe((r) => invalid.push(r));
    signal$.next(snapshot(t(0), [entity('a'), { bad: 'no flavor' } as unknown as Entity, { bad: 'no image' } as unknown as Entity]));
    expect(sync.metrics().invalidRecords).toEqual({ nova: 2 });
    expect(invalid.map((r) => [r.source, r.reason])).toEqual([
      ['nova', expect.stringContaining('no flavor')],
      ['nova', expect.stringContaining('no image')],
    ]);
    const warned = lines.filter(([level]) => level === 'warn');
    expect(warned).toEqual([
      ['warn', 'invalid record left out', { source: 'nova', reason: invalid[0]!.reason }],
      ['warn', 'invalid record left out', { source: 'nova', reason: invalid[1]!.reason }],
    ]);
    // A record that got as far as a key is logged with it.
    signal$.next(upsert(t(1), { ...entity('b'), state: '' } as Entity));
    expect(sync.metrics().invalidRecords).toEqual({ nova: 3 });
    expect(lines.at(-1)).toEqual(['warn', 'invalid record left out', { source: 'nova', reason: 'state must be a non-empty string, got ""', key: 'nova.instance:b' }]);
  });

  it('counts observations by source; start() twice subscribes once', () => {
    const { source, signal$ } = handSource('nova');
    const { sync } = hub({ sources: [source] });
    sync.start();
    const settled: Settlement[] = [];
    signal$.next({ ...upsert(t(0), entity('a')), settle: (s) => void settled.push(s) });
    signal$.next(upsert(t(1), entity('a', 'SHUTOFF')));
    expect(sync.metrics().observations).toEqual({ nova: 2 });
    expect(settled).toEqual([{ ok: true }]);
    expect(sync.metrics().events).toMatchObject({ create: 1, update: 1 });
  });

  it("tells the time of the observation an event came from, a delete's too, and nothing for another object", () => {
    const { source, signal$ } = handSource('nova');
    const { sync, events } = hub({ sources: [source] });
    signal$.next(snapshot(t(0), [entity('a'), entity('b')]));
    signal$.next(snapshot(t(5), [entity('a')]));
    expect(events.map((e) => `${e.action}:${e.entity.id}@${sync.observedAt(e)}`)).toEqual([`create:a@${t(0)}`, `create:b@${t(0)}`, `delete:b@${t(5)}`]);
    expect(sync.observedAt({ ...events[0]! })).toBeUndefined();
  });

  it('logs and reports in metrics a pipeline that fails (the mirror is not retried)', () => {
    const { log, lines } = recordingLogger();
    const { source } = handSource('nova');
    const { sync } = hub({ sources: [source], log, mirror: throwError(() => new Error('mirror lost')) });
    expect(sync.metrics().pipelineError).toBe('mirror lost');
    expect(lines.filter(([level]) => level === 'error').map(([, m, f]) => [m, (f!.error as Error).message])).toEqual([['pipeline failed', 'mirror lost']]);
  });

  it('logs an onObserved that throws, with the error, and goes on', () => {
    const { log, lines } = recordingLogger();
    const { source, signal$ } = handSource('nova');
    const { events } = hub({
      sources: [source],
      log,
      onObserved: () => {
        throw new Error('metrics broke');
      },
    });
    signal$.next(upsert(t(0), entity('a')));
    signal$.next(upsert(t(1), entity('b')));
    expect(events).toHaveLength(2);
    expect(lines.map(([level, m, f]) => [level, m, (f?.error as Error | undefined)?.message])).toEqual([
      ['error', 'onObserved failed', 'metrics broke'],
      ['error', 'onObserved failed', 'metrics broke'],
    ]);
  });
});

describe('createSynchronizer drains', () => {
  it('takes nothing while it drains, waits for the sinks, then stops the sources', async () => {
    const { source, signal$ } = handSource('nova');
    const { sync, events } = hub({ sources: [source], settleAfterSinks: true });
    const gate = sync.gate();
    const settled: string[] = [];
    void send(signal$, upsert(t(0), entity('a'))).then(() => settled.push('a'));
    expect(events).toHaveLength(1);
    let drained = false;
    const draining = sync.drain().then(() => (drained = true));
    // Arrives while draining: left unsettled (a push message is redelivered), not emitted.
    void send(signal$, upsert(t(1), entity('b'))).then(() => settled.push('b'));
    expect(events).toHaveLength(1);
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(drained).toBe(false);
    expect(sync.health().nova!.status).not.toBe('stopped');
    gate.accept(events[0]!);
    await draining;
    expect(settled).toEqual(['a']);
    expect(sync.health().nova!.status).toBe('stopped');
    expect(signal$.observed).toBe(false);
  });
});

describe('createSynchronizer with a state store, at start', () => {
  it('refuses a source named like the store\'s health entry, and reports the store up', () => {
    const { source } = handSource(STATE_HEALTH);
    expect(() => createSynchronizer({ sources: [source], state: { dir: tempDir() } })).toThrow(
      `a source is named "${STATE_HEALTH}": with a state store that name is the store's health entry`,
    );
    // Without a store the name is free.
    expect(hub({ sources: [source] }).sync.health()).toEqual({ [STATE_HEALTH]: expect.objectContaining({ status: 'starting' }) });
    const other = handSource('nova');
    expect(hub({ sources: [other.source], state: { dir: tempDir() } }).sync.health()[STATE_HEALTH]).toMatchObject({ status: 'up' });
  });

  it('logs what it loaded, and emits the unconfirmed outbox again once, saying so', async () => {
    const dir = tempDir();
    const { log, lines } = recordingLogger();
    const first = handSource('nova');
    const one = hub({ sources: [first.source], state: { dir }, log });
    expect(lines.filter(([, m]) => m === 'state loaded').map(([level, , f]) => [level, f!.dir, f!.entities, f!.tombstones])).toEqual([['info', dir, 0, 0]]);
    const loadMs = lines.find(([, m]) => m === 'state loaded')![2]!.ms as number;
    expect(loadMs).toBeGreaterThanOrEqual(0);
    expect(loadMs).toBeLessThan(60_000);
    expect(lines.some(([, m]) => m.startsWith('state: events emitted again'))).toBe(false);
    one.sync.gate(); // a sink that never confirms
    first.signal$.next(snapshot(t(0), [entity('a'), entity('b')]));
    first.signal$.next(remove(t(1), entity('b')));
    await waitFor('the events emitted', () => one.events.length === 3);
    await one.sync.close();

    lines.length = 0;
    const second = handSource('nova');
    const two = hub({ sources: [second.source], state: { dir }, log });
    expect(lines.filter(([, m]) => m === 'state loaded').map(([, , f]) => [f!.entities, f!.tombstones])).toEqual([[1, 1]]);
    expect(lines.filter(([, m]) => m.startsWith('state: events emitted again')).map(([level, m, f]) => [level, m, f!.events, f!.entries])).toEqual([
      ['info', 'state: events emitted again (written before the last stop, not confirmed by every sink)', 2, 2],
    ]);
    expect(two.brief()).toEqual(['create:a:ACTIVE', 'delete:b:ACTIVE']);
    two.sync.stop();
    two.sync.start();
    expect(two.events).toHaveLength(2);
  });

  it('keeps the owners of types across a restart, and frees those of sources no longer configured', async () => {
    const dir = tempDir();
    const a = handSource('nova-a');
    const one = hub({ sources: [a.source], state: { dir } });
    expect(await send(a.signal$, snapshot(t(0), [entity('x')]))).toEqual({ ok: true });
    await one.sync.close();

    // nova-a still configured: its type stays its own, nova-b is refused.
    const a2 = handSource('nova-a');
    const b = handSource('nova-b');
    const two = hub({ sources: [a2.source, b.source], state: { dir } });
    expect(await send(b.signal$, snapshot(t(1), [entity('y')]))).toMatchObject({ ok: false });
    expect(two.sync.health()['nova-b']).toMatchObject({ status: 'down', error: expect.stringMatching(/nova-b and nova-a/) });
    await two.sync.close();

    // nova-a gone: nova-b takes the type over.
    const b2 = handSource('nova-b');
    const three = hub({ sources: [b2.source], state: { dir } });
    expect(await send(b2.signal$, snapshot(t(2), [entity('y')]))).toEqual({ ok: true });
    expect(three.brief()).toEqual(['create:y:ACTIVE', 'delete:x:ACTIVE']);
  });
});
