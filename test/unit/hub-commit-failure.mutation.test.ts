import { afterEach, describe, expect, it, vi } from 'vitest';
import { type BaselineStep, applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { MAX_UNWRITTEN_SNAPSHOTS, STATE_HEALTH, createCommitLine } from '../../src/hub/commit.js';
import { createHealthBoard } from '../../src/hub/health.js';
import type { LogFields, Logger } from '../../src/log.js';
import type { Observation } from '../../src/model.js';
import type { BaselineDelta, BaselineStore } from '../../src/store/lmdb.js';
import { entity, snapshot, t, upsert } from '../support/entities.js';

/**
 * What the commit line reports while the state store's writes fail: a failing LMDB write (a full
 * disk) cannot be made in a test, so the store here is a stand-in whose writes reject on demand.
 * createSynchronizer takes only a folder, which is why this one part is driven through
 * createCommitLine. Written to kill mutants (docs/testing.md, "Mutation testing").
 */

const ENOSPC = new Error('ENOSPC: no space left on device');

function failingStore() {
  const store = {
    failing: true as boolean,
    dir: '/var/lib/synchronizer',
    load: () => ({ state: emptyBaseline(), owners: new Map(), outbox: [], lastOutboxId: 0 }),
    write: async (_delta: BaselineDelta) => {
      if (store.failing) throw ENOSPC;
    },
    close: async () => undefined,
  } satisfies BaselineStore & { failing: boolean };
  return store;
}

function line() {
  const store = failingStore();
  const lines: [string, string, LogFields | undefined][] = [];
  const log: Logger = {
    debug: () => undefined,
    info: (m, f) => void lines.push(['info', m, f]),
    warn: (m, f) => void lines.push(['warn', m, f]),
    error: (m, f) => void lines.push(['error', m, f]),
    child: () => log,
  };
  const health = createHealthBoard([], () => t(0), log);
  let seq = 0;
  const emit = (step: BaselineStep): number => {
    const first = seq + 1;
    for (const e of step.events) commits.tag(e, ++seq);
    return first;
  };
  const commits = createCommitLine({ store, persisted: emptyBaseline(), lastOutboxId: 0, owners: () => new Map(), emit, health, log });
  let state = emptyBaseline();
  const push = (o: Observation): boolean => {
    if (!commits.admits(o)) return false;
    const step = applyObservation(state, o);
    state = step.state;
    commits.push(step);
    return true;
  };
  return { store, commits, health, lines, push };
}

/** Lets the store's rejected write reach the commit line. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

afterEach(() => void vi.useRealTimers());

describe('the commit line while the store fails', () => {
  it('reports the state down with the write error, counts the failures and backs off from a second', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { store, health, lines, push } = line();
    push(upsert(t(0), entity('a')));
    await settle();
    const first = health.value()[STATE_HEALTH]!;
    expect(first).toMatchObject({ status: 'down', failures: 1, error: 'writing the state store in /var/lib/synchronizer: ENOSPC: no space left on device' });
    expect(first.retryInMs).toBeGreaterThanOrEqual(800);
    expect(first.retryInMs).toBeLessThanOrEqual(1000);
    // The log gets the Error, its cause the store's own.
    const down = lines.find(([, m]) => m === 'source is down')!;
    expect((down[2]!.error as Error).cause).toBe(ENOSPC);

    vi.advanceTimersByTime(1000);
    await settle();
    const second = health.value()[STATE_HEALTH]!;
    expect(second).toMatchObject({ status: 'down', failures: 2 });
    expect(second.retryInMs).toBeGreaterThanOrEqual(1600);
    expect(second.retryInMs).toBeLessThanOrEqual(2000);

    store.failing = false;
    vi.advanceTimersByTime(2000);
    await settle();
    expect(health.value()[STATE_HEALTH]).toStrictEqual({ source: STATE_HEALTH, status: 'up', since: t(0), failures: 0 });
  });

  it('names both the write error and the snapshots left out', async () => {
    const { health, push } = line();
    for (let i = 0; i < MAX_UNWRITTEN_SNAPSHOTS; i++) expect(push(snapshot(t(i), [entity(`a${i}`)]))).toBe(true);
    await settle();
    expect(push(snapshot(t(9), [entity('late')]))).toBe(false);
    expect(health.value()[STATE_HEALTH]).toMatchObject({
      status: 'down',
      error: `writing the state store in /var/lib/synchronizer: ENOSPC: no space left on device; ${MAX_UNWRITTEN_SNAPSHOTS} snapshots wait to be written, newer ones are not taken until they are (1 left out so far)`,
    });
  });
  it('backs off at most 30 s between two writes, however long the store fails', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { health, push } = line();
    push(upsert(t(0), entity('a')));
    await settle();
    // 1, 2, 4, 8, 16 s, then 30 s (not 32) and 30 s again (not 60: the default bound of a retry).
    const delays: number[] = [];
    for (let failures = 1; failures <= 7; failures++) {
      const down = health.value()[STATE_HEALTH]!;
      expect(down.failures).toBe(failures);
      delays.push(down.retryInMs!);
      vi.advanceTimersByTime(down.retryInMs!);
      await settle();
    }
    expect(delays.slice(5).every((d) => d >= 24_000 && d <= 30_000)).toBe(true);
  });

  it('closing while a write fails: tries the deletion of the confirmed outbox entries once in each of its three rounds, then gives up and closes the store', async () => {
    const { store, commits, push } = line();
    const writes: { add: number[]; remove: number[] }[] = [];
    let closedStore = false;
    store.failing = false;
    // Writes that add succeed; every deletion of an outbox entry fails (a disk that filled up).
    store.write = async (delta: BaselineDelta) => {
      writes.push({ add: delta.outbox!.add.map((e) => e.id), remove: [...delta.outbox!.remove] });
      if (closedStore) throw new Error('written after close');
      if (delta.outbox!.remove.length > 0) throw ENOSPC;
    };
    store.close = async () => {
      closedStore = true;
    };
    push(upsert(t(0), entity('a')));
    // Closing while the step's write is in flight: its entry, confirmed once emitted, is deleted in a write that fails.
    await commits.close();
    expect(closedStore).toBe(true);
    expect(writes).toEqual([
      { add: [1], remove: [] },
      { add: [], remove: [1] },
      { add: [], remove: [1] },
      { add: [], remove: [1] },
    ]);
  });
});
