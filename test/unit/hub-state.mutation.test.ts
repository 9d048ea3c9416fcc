import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_UNWRITTEN_SNAPSHOTS, STATE_HEALTH } from '../../src/hub/commit.js';
import type { LogFields, Logger } from '../../src/log.js';
import type { EntityDraft, EntityEvent, Observation, Settlement } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { type Synchronizer, type SynchronizerOptions, createSynchronizer } from '../../src/synchronizer.js';
import { entity, snapshot, t, upsert } from '../support/entities.js';
import { waitFor } from '../support/wait.js';

/**
 * The commit line's gates through createSynchronizer, with and without a state store (a real
 * LMDB folder): backpressure, what a gate holds back, unsettled(), drain() and close(). Through
 * the public API, so that these tests outlive a rewrite of src/hub/commit.ts. Written to kill
 * mutants (docs/testing.md, "Mutation testing").
 */

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

const closing: Synchronizer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sync-state-mutation-'));
  dirs.push(dir);
  return dir;
}

/** A hub over one hand-fed source, not started (a gate may be opened first). */
function hub(options: Omit<SynchronizerOptions, 'sources'>) {
  const signal$ = new Subject<SourceSignal<unknown>>();
  const source = { name: 'nova', types: ['nova.instance'], signal$, map: (r: unknown) => r as EntityDraft } as Source<unknown>;
  const sync = createSynchronizer({ sources: [source], ...options });
  closing.push(sync);
  const events: EntityEvent[] = [];
  sync.entity$.subscribe((e) => events.push(e));
  const settled: string[] = [];
  /** Sends an observation named `name`; its settlement is recorded in `settled`. */
  const send = (name: string, o: Observation): void => signal$.next({ ...o, settle: (s: Settlement) => void settled.push(s.ok ? name : `${name}:refused`) });
  return { sync, events, settled, send, signal$ };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('the commit line through createSynchronizer({ state })', () => {
  it(`leaves snapshots out past ${MAX_UNWRITTEN_SNAPSHOTS} unwritten ones (changes do not count), says so once, and takes them again once written`, async () => {
    const { log, lines } = recordingLogger();
    const h = hub({ state: { dir: tempDir() }, log });
    h.sync.start();
    const burst = (from: number) => {
      // All at once: the first is being written while the others wait.
      h.send(`s${from}`, snapshot(t(from), [entity(`a${from}`)]));
      h.send(`c${from}`, upsert(t(from), entity(`c${from}`)));
      for (let i = from + 1; i < from + 6; i++) h.send(`s${i}`, snapshot(t(i), [entity(`a${i}`)]));
    };
    burst(0);
    // s0 in the write, s1–s3 waiting: s4 and s5 left out, unsettled (the next poll brings them again).
    expect(h.sync.health()[STATE_HEALTH]).toStrictEqual({
      source: STATE_HEALTH,
      status: 'down',
      since: expect.any(String),
      failures: 0,
      error: `${MAX_UNWRITTEN_SNAPSHOTS} snapshots wait to be written, newer ones are not taken until they are (2 left out so far)`,
    });
    expect(lines.filter(([level]) => level === 'warn')).toEqual([
      ['warn', 'state: snapshots wait to be written, newer ones are not taken until they are', { waiting: MAX_UNWRITTEN_SNAPSHOTS, unfoldedBytes: 0, source: 'nova' }],
      ['warn', 'source is down', expect.objectContaining({ source: STATE_HEALTH })],
      ['warn', 'source still down', expect.objectContaining({ source: STATE_HEALTH })],
    ]);
    expect(lines.find(([level, m]) => level === 'debug' && m === 'state: committing')).toEqual(['debug', 'state: committing', { observations: 1, outboxDeleted: 0 }]);
    await waitFor('the taken ones settled', () => h.settled.length === 5);
    expect(h.settled).toEqual(['s0', 'c0', 's1', 's2', 's3']);
    expect(lines.filter(([, m]) => m === 'state: taking snapshots again')).toEqual([['info', 'state: taking snapshots again', { leftOut: 2 }]]);
    expect(h.sync.health()[STATE_HEALTH]!.status).toBe('up');
    expect(h.sync.unsettled()).toBe(0);

    // Once everything is written, the count is back at zero: the same burst is cut at the same place.
    lines.length = 0;
    burst(10);
    await waitFor('the second burst settled', () => h.settled.length === 10);
    expect(h.settled.slice(5)).toEqual(['s10', 'c10', 's11', 's12', 's13']);
    expect(lines.filter(([, m]) => m === 'state: taking snapshots again')).toEqual([['info', 'state: taking snapshots again', { leftOut: 2 }]]);
  });

  it('stays down while snapshots are left out, though a write without one went through', async () => {
    const h = hub({ state: { dir: tempDir() } });
    h.sync.start();
    const stateAtSettle: string[] = [];
    const send = (name: string, o: Observation): void => h.signal$.next({ ...o, settle: () => void stateAtSettle.push(`${name}:${h.sync.health()[STATE_HEALTH]!.status}`) });
    send('c0', upsert(t(0), entity('c0')));
    for (let i = 1; i <= MAX_UNWRITTEN_SNAPSHOTS + 1; i++) send(`s${i}`, snapshot(t(i), [entity(`a${i}`)]));
    await waitFor('the taken ones settled', () => stateAtSettle.length === 1 + MAX_UNWRITTEN_SNAPSHOTS);
    // c0's write left the four snapshots unwritten: still down; theirs brought the state up.
    expect(stateAtSettle).toEqual(['c0:down', ...Array.from({ length: MAX_UNWRITTEN_SNAPSHOTS }, (_, i) => `s${i + 1}:up`)]);
  });

  it('close() writes nothing taken after the write in flight: those observations stay unsettled, to be delivered again', async () => {
    const dir = tempDir();
    const one = hub({ state: { dir } });
    one.sync.start();
    one.send('a', upsert(t(0), entity('a')));
    one.send('b', upsert(t(1), entity('b')));
    await one.sync.close();
    expect(one.settled).toEqual(['a']);
    const two = hub({ state: { dir } });
    two.sync.start();
    expect(two.sync.snapshot().map((e) => e.id)).toEqual(['a']);
    expect(two.events).toEqual([]);
  });

  it('counts as unsettled what is being written, what waits to be, and what a sink holds; not events emitted again at start', async () => {
    const dir = tempDir();
    const one = hub({ state: { dir } });
    one.sync.gate(); // never confirms
    one.sync.start();
    one.send('a', upsert(t(0), entity('a')));
    one.send('b', upsert(t(1), entity('b')));
    one.send('c', upsert(t(2), entity('c')));
    // a in the write, b and c waiting for it.
    expect(one.sync.unsettled()).toBe(3);
    await waitFor('the events emitted', () => one.events.length === 3);
    expect(one.sync.unsettled()).toBe(3);
    await one.sync.close();
    expect(one.settled).toEqual([]);

    const two = hub({ state: { dir } });
    const gate = two.sync.gate();
    two.sync.start();
    expect(two.events.map((e) => e.entity.id)).toEqual(['a', 'b', 'c']);
    // Emitted again and held by the gate, but no observation of this run waits for them.
    expect(two.sync.unsettled()).toBe(0);
    for (const e of two.events) gate.accept(e);
  });

  it('holds a step back only for the gates open when it was emitted; a stale accept takes no gate back; a closed gate holds nothing', async () => {
    const h = hub({ state: { dir: tempDir() } });
    const early = h.sync.gate();
    h.sync.start();
    h.send('o1', upsert(t(1), entity('a')));
    await waitFor('o1 emitted', () => h.events.length === 1);
    const late = h.sync.gate();
    early.accept(h.events[0]!);
    await waitFor('o1 settled', () => h.settled.length === 1);

    h.send('o2', upsert(t(2), entity('b')));
    h.send('o3', upsert(t(3), entity('c')));
    await waitFor('o2 and o3 emitted', () => h.events.length === 3);
    early.accept(h.events[2]!);
    early.accept(h.events[1]!); // already passed
    expect(h.settled).toEqual(['o1']);
    late.accept(h.events[2]!);
    expect(h.settled).toEqual(['o1', 'o2', 'o3']);

    h.send('o4', upsert(t(4), entity('d')));
    await waitFor('o4 emitted', () => h.events.length === 4);
    late.close();
    expect(h.settled).toEqual(['o1', 'o2', 'o3']);
    early.accept(h.events[3]!);
    expect(h.settled).toEqual(['o1', 'o2', 'o3', 'o4']);
  });

  it('close() waits for the write in flight and deletes the outbox entries it let through: the next start emits nothing again', async () => {
    const dir = tempDir();
    const one = hub({ state: { dir } });
    one.sync.start();
    one.send('a', upsert(t(0), entity('a')));
    await one.sync.close();
    expect(one.events.map((e) => e.entity.id)).toEqual(['a']);
    expect(one.settled).toEqual(['a']);

    const { log, lines } = recordingLogger();
    const two = hub({ state: { dir }, log });
    two.sync.start();
    expect(two.sync.snapshot().map((e) => e.id)).toEqual(['a']);
    expect(two.events).toEqual([]);
    expect(lines.filter(([, m]) => m.startsWith('state: events emitted again'))).toEqual([]);
  });

  it('writes no outbox entry for a step without events', async () => {
    const dir = tempDir();
    const one = hub({ state: { dir } });
    one.sync.gate(); // never confirms
    one.sync.start();
    one.send('a', upsert(t(0), entity('a')));
    one.send('again', upsert(t(1), entity('a'))); // the same: no event
    await waitFor('written and emitted', () => one.events.length === 1 && one.sync.unsettled() === 2);
    await one.sync.close();

    const { log, lines } = recordingLogger();
    hub({ state: { dir }, log }).sync.start();
    expect(lines.filter(([, m]) => m.startsWith('state: events emitted again')).map(([, , f]) => [f!.events, f!.entries])).toEqual([[1, 1]]);
  });
});

describe('drain() through createSynchronizer', () => {
  it('without a store, settles at once but waits until every sink took every event', async () => {
    const h = hub({});
    const gate = h.sync.gate();
    h.sync.start();
    h.send('o1', upsert(t(1), entity('a')));
    h.send('o2', upsert(t(2), entity('b')));
    expect(h.settled).toEqual(['o1', 'o2']);
    let drained = false;
    const draining = h.sync.drain().then(() => (drained = true));
    await tick();
    await tick();
    expect(drained).toBe(false);
    gate.accept(h.events[0]!);
    await tick();
    await tick();
    expect(drained).toBe(false);
    gate.accept(h.events[1]!);
    await draining;
    expect(h.sync.health().nova!.status).toBe('stopped');
  });

  it('with a store, waits for the write in flight and the settlement', async () => {
    const h = hub({ state: { dir: tempDir() } });
    h.sync.start();
    h.send('o1', upsert(t(1), entity('a')));
    expect(h.settled).toEqual([]);
    await h.sync.drain();
    expect(h.settled).toEqual(['o1']);
    expect(h.events.map((e) => e.entity.id)).toEqual(['a']);
  });
});
