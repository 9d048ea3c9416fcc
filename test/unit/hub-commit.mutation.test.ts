import { afterEach, describe, expect, it, vi } from 'vitest';
import { type BaselineStep, applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { toEntity } from '../../operators/normalizeEntity.js';
import { MAX_UNWRITTEN_SNAPSHOTS, STATE_HEALTH, createCommitLine } from '../../src/hub/commit.js';
import { createHealthBoard } from '../../src/hub/health.js';
import { silentLogger } from '../../src/log.js';
import type { Observation } from '../../src/model.js';
import type { BaselineDelta, BaselineStore } from '../../src/store/lmdb.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';

/**
 * The commit line's writes, one at a time: the store here holds each write until the test ends
 * it (`release`), so what is written while another write is in flight, and what closing does to
 * it, can be followed step by step. Written to kill mutants (docs/testing.md, "Mutation testing").
 */

function heldStore() {
  const writes: BaselineDelta[] = [];
  const held: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const store = {
    dir: '/held',
    writes,
    closed: false as boolean,
    load: () => ({ state: emptyBaseline(), owners: new Map(), outbox: [], lastOutboxId: 0 }),
    write: (delta: BaselineDelta) => {
      writes.push(delta);
      if (store.closed) return Promise.reject(new Error('written after the store was closed'));
      return new Promise<void>((resolve, reject) => held.push({ resolve, reject }));
    },
    close: async () => {
      store.closed = true;
    },
    /** Ends the oldest write in flight (with `error`: it fails), and lets the commit line react. */
    release: async (error?: Error): Promise<void> => {
      const w = held.shift();
      if (!w) throw new Error('no write in flight');
      if (error) w.reject(error);
      else w.resolve();
      await settle();
    },
  } satisfies BaselineStore & Record<string, unknown>;
  return store;
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

function line() {
  const store = heldStore();
  const health = createHealthBoard([], () => t(0), silentLogger);
  let seq = 0;
  const emit = (step: BaselineStep): number => {
    const first = seq + 1;
    for (const e of step.events) commits.tag(e, ++seq);
    return first;
  };
  const commits = createCommitLine({ store, persisted: emptyBaseline(), lastOutboxId: 0, owners: () => new Map(), emit, health, log: silentLogger });
  let state = emptyBaseline();
  const settled: string[] = [];
  const push = (name: string, o: Observation): boolean => {
    if (!commits.admits(o)) return false;
    const step = applyObservation(state, { ...o, settle: () => void settled.push(name) });
    state = step.state;
    commits.push(step);
    return true;
  };
  return { store, commits, health, push, settled };
}

const outboxes = (writes: BaselineDelta[]) => writes.map((w) => ({ add: w.outbox!.add.map((e) => e.id), remove: [...w.outbox!.remove] }));

afterEach(() => void vi.useRealTimers());

describe('the commit line, one write at a time', () => {
  it('writes the keys of every step of a grouped write: a change and a snapshot after it', async () => {
    const { store, push } = line();
    push('first', snapshot(t(0), [entity('a')]));
    // Both taken while the first write is in flight: one write for the two.
    push('change', upsert(t(1), entity('c')));
    push('hosts', snapshot(t(2), [toEntity({ type: 'nova.host', id: 'h1', state: 'UP' }, 'test', t(2))], ['nova.host']));
    await store.release();
    expect(store.writes).toHaveLength(2);
    expect([...store.writes[1]!.keys!].sort()).toEqual(['nova.host:h1', 'nova.instance:c']);
  });

  it('names no key for a change whose step left the entries as they were (the store writes every key named, without comparing)', async () => {
    const { store, push } = line();
    push('first', snapshot(t(0), [entity('a')]));
    // Taken while the first write is in flight: a change; the deletion of an entity never seen (a
    // tombstone, the entries unchanged); a change the tombstone makes late (unchanged too); a change.
    push('change', upsert(t(1), entity('c')));
    push('unknown', remove(t(3), entity('x')));
    push('late', upsert(t(2), entity('x')));
    push('other', upsert(t(2), entity('d')));
    await store.release();
    expect(store.writes).toHaveLength(2);
    expect([...store.writes[1]!.keys!]).toEqual(['nova.instance:c', 'nova.instance:d']);
  });

  it('keeps the state down after a write that held no snapshot, while the snapshots it left out still wait', async () => {
    const { store, health, push } = line();
    push('change', upsert(t(0), entity('c')));
    for (let i = 0; i < MAX_UNWRITTEN_SNAPSHOTS; i++) expect(push(`poll${i}`, snapshot(t(i + 1), [entity('a', i % 2 ? 'SHUTOFF' : 'ACTIVE')]))).toBe(true);
    expect(push('late', snapshot(t(9), [entity('a')]))).toBe(false);
    expect(health.value()[STATE_HEALTH]?.status).toBe('down');
    // The change is written: the snapshots still wait, so the backpressure holds and the state stays down.
    await store.release();
    expect(health.value()[STATE_HEALTH]).toMatchObject({ status: 'down', error: expect.stringMatching(/4 snapshots wait to be written/) });
    await store.release();
    expect(health.value()[STATE_HEALTH]?.status).toBe('up');
  });

  it('closing: writes nothing taken after the write in flight, only the deletion of what that write let through', async () => {
    const { store, commits, push, settled } = line();
    push('a', upsert(t(0), entity('a')));
    push('b', upsert(t(1), entity('b')));
    const closing = commits.close();
    await store.release(); // a written, emitted, settled: its entry is deleted next
    expect(settled).toEqual(['a']);
    await store.release();
    // b was taken after the write in flight: neither written nor settled (its message comes again), and nothing else is written.
    expect(store.writes).toHaveLength(2);
    await closing;
    expect(outboxes(store.writes)).toEqual([
      { add: [1], remove: [] },
      { add: [], remove: [1] },
    ]);
    expect(store.closed).toBe(true);
  });

  it('closing while a retry waits: the retry writes nothing once the store is closed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { store, commits, push, health } = line();
    push('a', upsert(t(0), entity('a')));
    await store.release();
    // The deletion of a's entry fails: retried in about a second.
    await store.release(new Error('ENOSPC: no space left on device'));
    expect(health.value()[STATE_HEALTH]?.status).toBe('down');
    await commits.close();
    expect(store.closed).toBe(true);
    vi.advanceTimersByTime(60_000);
    await settle();
    expect(outboxes(store.writes)).toEqual([
      { add: [1], remove: [] },
      { add: [], remove: [1] },
    ]);
  });
});
