/**
 * What the hub tells the service for metrics and probes: `onObserved` after each observation's
 * events, `backlog` of register() consumers, `pipelineError`.
 */
import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { Entity, EntityDraft, EntityEvent, Observation } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { entity, snapshot, t, upsert } from '../support/entities.js';
import { waitFor } from '../support/wait.js';

function sourceOf(signal$: Subject<SourceSignal<Entity>>): Source<unknown> {
  return { name: 'nova', types: ['nova.instance', 'nova.host'], signal$, map: (r) => r as EntityDraft } as Source<unknown>;
}

describe('hub hooks for the service', () => {
  it('calls onObserved once per observation, after its events were emitted, with those events', () => {
    const signal$ = new Subject<SourceSignal<Entity>>();
    const seen: string[] = [];
    const sync = createSynchronizer({
      sources: [sourceOf(signal$)],
      onObserved: (o: Observation, events: readonly EntityEvent[]) => seen.push(`${o.kind}:${events.map((e) => `${e.action} ${e.entity.id}`).join(',')}`),
    });
    sync.entity$.subscribe((e) => seen.push(`event ${e.entity.id}`));
    sync.start();
    signal$.next(snapshot(t(0), [entity('x'), entity('y')]));
    signal$.next(upsert(t(1), entity('x'))); // same meaning: no event, still observed
    expect(seen).toEqual(['event x', 'event y', 'snapshot:create x,create y', 'change:']);
    sync.stop();
  });

  it('a throwing onObserved is logged and changes nothing', () => {
    const signal$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf(signal$)], onObserved: () => { throw new Error('boom'); } });
    sync.start();
    signal$.next(snapshot(t(0), [entity('x')]));
    signal$.next(snapshot(t(1), [entity('x'), entity('y')]));
    expect(sync.metrics()).toMatchObject({ entities: 2, events: { create: 2 } });
    sync.stop();
  });

  it('counts events queued for register() consumers until their callbacks take them', async () => {
    const signal$ = new Subject<SourceSignal<Entity>>();
    const sync = createSynchronizer({ sources: [sourceOf(signal$)] });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const taken: string[] = [];
    const handle = sync.register(undefined, async (item) => {
      await gate;
      if (item.kind === 'event') taken.push(item.event.entity.id);
    });
    const other = sync.register(undefined, () => undefined);
    sync.start();
    signal$.next(snapshot(t(0), [entity('a'), entity('b'), entity('c')]));
    // The quick consumer takes its 3 at the next turn; the gated one holds its 3.
    await waitFor('the quick consumer to drain', () => sync.metrics().backlog === 3);
    release();
    await waitFor('the gated consumer to drain', () => taken.length === 3);
    expect(sync.metrics().backlog).toBe(0);
    signal$.next(upsert(t(1), entity('d')));
    handle.unsubscribe(); // a consumer that leaves takes its queue with it
    other.unsubscribe();
    expect(sync.metrics().backlog).toBe(0);
    sync.stop();
  });
});
