import { describe, expect, it } from 'vitest';
import { type BaselineStep, applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { MAX_UNFOLDED_BYTES, MAX_UNWRITTEN_SNAPSHOTS, createCommitLine } from '../../src/hub/commit.js';
import { createHealthBoard } from '../../src/hub/health.js';
import { silentLogger } from '../../src/log.js';
import type { Observation } from '../../src/model.js';
import type { BaselineDelta, BaselineStore } from '../../src/store/lmdb.js';
import { entity, snapshot, t, upsert } from '../support/entities.js';
import { waitFor } from '../support/wait.js';

/** A store whose writes fail while `failing` is set (a full disk, which a test cannot easily make). */
function fakeStore() {
  const writes: BaselineDelta[] = [];
  const store = {
    failing: false as boolean,
    unfolded: 0,
    unfoldedBytes: (): number => store.unfolded,
    writes,
    dir: '/nowhere',
    load: () => ({ state: emptyBaseline(), owners: new Map(), outbox: [], lastOutboxId: 0 }),
    write: async (delta: BaselineDelta) => {
      if (store.failing) throw new Error('ENOSPC: no space left on device');
      writes.push(delta);
    },
    close: async () => undefined,
  } satisfies BaselineStore & { failing: boolean; unfolded: number; writes: BaselineDelta[] };
  return store;
}

function line(store: ReturnType<typeof fakeStore>) {
  const health = createHealthBoard([], () => new Date().toISOString(), silentLogger);
  let seq = 0;
  /** What happened, in order: `emit:<event keys>` and `settle:<name>`. */
  const log: string[] = [];
  const emit = (step: BaselineStep): number => {
    const first = seq + 1;
    for (const e of step.events) commits.tag(e, ++seq);
    log.push(`emit:${step.events.map((e) => `${e.action[0]}${e.entity.id}`).join(',')}`);
    return first;
  };
  const commits = createCommitLine({ store, persisted: emptyBaseline(), lastOutboxId: 0, owners: () => new Map(), emit, health, log: silentLogger });
  let state = emptyBaseline();
  const settled: string[] = [];
  /** Applies an observation as the hub does: the reducer's step, pushed on the line. */
  const push = (name: string, o: Observation): BaselineStep => {
    const step = applyObservation(state, {
      ...o,
      settle: () => {
        settled.push(name);
        log.push(`settle:${name}`);
      },
    });
    state = step.state;
    commits.push(step);
    return step;
  };
  return { commits, health, push, settled, log };
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('the commit line', () => {
  it('writes a step with its events as an outbox entry before emitting them; settles in order once every gate passed them; then deletes the entry', async () => {
    const store = fakeStore();
    const { commits, push, settled, log } = line(store);
    const all = commits.gate();
    const hosts = commits.gate(['nova.host']);
    const a = push('a', snapshot(t(0), [entity('a'), entity('b')]));
    const c = push('c', upsert(t(1), entity('c')));
    expect(log).toEqual([]); // nothing emitted before the write
    await flush();
    expect(log).toEqual(['emit:ca,cb', 'emit:cc']);
    // a alone in the first write (c came while it was in flight), then c with the outbox entry of its event.
    expect(store.writes.map((w) => w.outbox)).toEqual([
      { add: [{ id: 1, events: a.events }], remove: [] },
      { add: [{ id: 2, events: c.events }], remove: [] },
    ]);
    // A snapshot writes the keys its step touched, a change its own key only.
    expect([...store.writes[0]!.keys!].sort()).toEqual(['nova.instance:a', 'nova.instance:b']);
    expect([...store.writes[1]!.keys!]).toEqual(['nova.instance:c']);
    expect(settled).toEqual([]);
    all.accept(a.events[1]!); // both of a's events (in order: the last covers the first)
    await flush();
    expect(settled).toEqual(['a']);
    expect(commits.pending()).toBe(1);
    all.accept(c.events[0]!);
    await commits.idle();
    expect(settled).toEqual(['a', 'c']);
    // The entries are deleted once confirmed, without a step (the state is the one written).
    const deletions = store.writes.slice(2);
    expect(deletions.flatMap((w) => w.outbox!.remove)).toEqual([1, 2]);
    expect(deletions.every((w) => w.outbox!.add.length === 0 && w.next === store.writes[1]!.next)).toBe(true);
    hosts.close();
  });

  it('a failing write emits and acks nothing, reports the state down, then writes everything in one transaction once it can', async () => {
    const store = fakeStore();
    const { commits, health, push, settled, log } = line(store);
    store.failing = true;
    push('a', snapshot(t(0), [entity('a')]));
    await waitFor('the state reported down', () => health.value().state?.status === 'down');
    expect(health.value().state?.error).toMatch(/writing the state store in \/nowhere: ENOSPC/);
    push('b', upsert(t(1), entity('b')));
    await flush();
    expect(log).toEqual([]);
    expect(commits.pending()).toBe(2);
    store.failing = false;
    await waitFor('the retry', () => settled.length === 2, 10_000);
    expect(log).toEqual(['emit:ca', 'emit:cb', 'settle:a', 'settle:b']);
    expect(health.value().state?.status).toBe('up');
    // One transaction for both: the snapshot and the change written together, with both outbox entries.
    expect(store.writes[0]!.next.entities.size).toBe(2);
    expect(store.writes[0]!.outbox!.add.map((e) => e.id)).toEqual([1, 2]);
  });

  it('leaves snapshots out while MAX_UNWRITTEN_SNAPSHOTS wait to be written (backpressure), says so in health, and takes them again once written', async () => {
    const store = fakeStore();
    const { commits, health, push, settled } = line(store);
    store.failing = true;
    const polls = Array.from({ length: MAX_UNWRITTEN_SNAPSHOTS + 2 }, (_, i) => snapshot(t(i), [entity('a', i % 2 ? 'SHUTOFF' : 'ACTIVE')]));
    const taken: string[] = [];
    for (const [i, o] of polls.entries()) if (commits.admits(o)) taken.push(`poll${i}`), push(`poll${i}`, o);
    expect(taken).toEqual(Array.from({ length: MAX_UNWRITTEN_SNAPSHOTS }, (_, i) => `poll${i}`));
    // Changes are still taken: their transport bounds them (unacked until written).
    expect(commits.admits(upsert(t(9), entity('b')))).toBe(true);
    await waitFor('the write failure reported', () => /ENOSPC/.test(health.value().state?.error ?? ''));
    expect(health.value().state).toMatchObject({ status: 'down', error: expect.stringMatching(/4 snapshots wait to be written, newer ones are not taken until they are \(2 left out so far\)/) });
    expect(commits.pending()).toBe(MAX_UNWRITTEN_SNAPSHOTS);
    store.failing = false;
    await waitFor('the backlog written and settled', () => settled.length === MAX_UNWRITTEN_SNAPSHOTS, 10_000);
    expect(health.value().state?.status).toBe('up');
    expect(commits.admits(polls[0]!)).toBe(true);
  });

  it('leaves snapshots out while MAX_UNFOLDED_BYTES of the log wait to be folded into the table, and takes them again once folded', async () => {
    const store = fakeStore();
    const { commits, health } = line(store);
    store.unfolded = MAX_UNFOLDED_BYTES;
    expect(commits.admits(snapshot(t(0), [entity('a')]))).toBe(false);
    expect(commits.admits(upsert(t(1), entity('b')))).toBe(true); // changes still: their transport bounds them
    expect(health.value().state).toMatchObject({ status: 'down', error: expect.stringMatching(/0 snapshots wait to be written \(and 512 MiB of the log wait to be folded\), newer ones are not taken/) });
    store.unfolded = MAX_UNFOLDED_BYTES - 1;
    expect(commits.admits(snapshot(t(2), [entity('a')]))).toBe(true);
  });

  it('emits the outbox of the last run again, numbers new entries after it, and deletes each once every gate passed it', async () => {
    const store = fakeStore();
    const health = createHealthBoard([], () => new Date().toISOString(), silentLogger);
    const emitted: string[] = [];
    let seq = 0;
    const commits = createCommitLine({
      store,
      persisted: emptyBaseline(),
      lastOutboxId: 7,
      owners: () => new Map(),
      emit: (step) => {
        for (const e of step.events) {
          commits.tag(e, ++seq);
          emitted.push(e.entity.id);
        }
        return seq - step.events.length + 1;
      },
      health,
      log: silentLogger,
    });
    const gate = commits.gate();
    const old = applyObservation(emptyBaseline(), snapshot(t(0), [entity('x'), entity('y')]));
    expect(commits.reemit([{ id: 6, events: old.events.slice(0, 1) }, { id: 7, events: old.events.slice(1) }])).toBe(2);
    expect(emitted).toEqual(['x', 'y']);
    const step = applyObservation(old.state, upsert(t(1), entity('z')));
    commits.push(step);
    await flush();
    expect(store.writes[0]!.outbox).toEqual({ add: [{ id: 8, events: step.events }], remove: [] });
    gate.accept(old.events[0]!);
    await flush();
    expect(store.writes.flatMap((w) => w.outbox!.remove)).toEqual([6]);
    gate.accept(step.events[0]!);
    await commits.idle();
    expect(store.writes.flatMap((w) => w.outbox!.remove)).toEqual([6, 7, 8]);
  });
});
