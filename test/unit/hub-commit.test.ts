import { describe, expect, it } from 'vitest';
import { type BaselineStep, applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { createCommitLine } from '../../src/hub/commit.js';
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
    writes,
    dir: '/nowhere',
    load: () => ({ state: emptyBaseline(), owners: new Map() }),
    write: async (delta: BaselineDelta) => {
      if (store.failing) throw new Error('ENOSPC: no space left on device');
      writes.push(delta);
    },
    close: async () => undefined,
  } satisfies BaselineStore & { failing: boolean; writes: BaselineDelta[] };
  return store;
}

function line(store: ReturnType<typeof fakeStore>) {
  const health = createHealthBoard([], () => new Date().toISOString(), silentLogger);
  const commits = createCommitLine({ store, persisted: emptyBaseline(), owners: () => new Map(), health, log: silentLogger });
  let state = emptyBaseline();
  let seq = 0;
  const settled: string[] = [];
  /** Applies an observation as the hub does: the step, its events numbered, then pushed. */
  const push = (name: string, o: Observation): BaselineStep => {
    const step = applyObservation(state, { ...o, settle: () => settled.push(name) });
    state = step.state;
    const first = seq + 1;
    for (const e of step.events) commits.tag(e, ++seq);
    commits.push(step, first);
    return step;
  };
  return { commits, health, push, settled };
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('the commit line', () => {
  it('settles in order, only after every gate passed the events and the write is done; a gate of other types holds nothing', async () => {
    const store = fakeStore();
    const { commits, push, settled } = line(store);
    const all = commits.gate();
    const hosts = commits.gate(['nova.host']);
    const a = push('a', snapshot(t(0), [entity('a'), entity('b')]));
    const c = push('c', upsert(t(1), entity('c')));
    await flush();
    expect(settled).toEqual([]);
    all.accept(a.events[1]!); // both of a's events (in order: the last covers the first)
    await flush();
    expect(settled).toEqual(['a']);
    expect(commits.pending()).toBe(1);
    all.accept(c.events[0]!);
    await commits.idle();
    expect(settled).toEqual(['a', 'c']);
    expect(store.writes.at(-1)!.keys).toEqual(new Set(['nova.instance:c'])); // a change writes its key only
    hosts.close();
  });

  it('a failing write acks nothing and reports the state down, then writes everything once it can', async () => {
    const store = fakeStore();
    const { commits, health, push, settled } = line(store);
    store.failing = true;
    push('a', snapshot(t(0), [entity('a')]));
    await waitFor('the state reported down', () => health.value().state?.status === 'down');
    expect(health.value().state?.error).toMatch(/writing the state store in \/nowhere: ENOSPC/);
    push('b', upsert(t(1), entity('b')));
    await flush();
    expect(settled).toEqual([]);
    expect(commits.pending()).toBe(2);
    store.failing = false;
    await waitFor('the retry', () => settled.length === 2, 10_000);
    expect(settled).toEqual(['a', 'b']);
    expect(health.value().state?.status).toBe('up');
    // One transaction for both: the snapshot and the change written together.
    expect(store.writes).toHaveLength(1);
    expect(store.writes[0]!.next.entities.size).toBe(2);
  });
});
