import type { Observable, SchedulerLike } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ExpiredError, type ListPage, type ListWatchResource, type WatchEvent, listWatch } from '../../src/listWatch.js';
import type { SourceSignal } from '../../src/source.js';
import { marbles } from '../support/marbles.js';

type Rec = { id: string };
const iso = (ms: number): string => new Date(ms).toISOString();
const snapshot = (atMs: number, ids: string[], types = ['t']): SourceSignal<Rec> => ({ kind: 'snapshot', source: 's', at: iso(atMs), types, records: ids.map((id) => ({ id })) });
const upsert = (atMs: number, id: string): SourceSignal<Rec> => ({ kind: 'change', source: 's', at: iso(atMs), action: 'upsert', record: { id } });
const del = (atMs: number, id: string): SourceSignal<Rec> => ({ kind: 'change', source: 's', at: iso(atMs), action: 'delete', record: { id } });
const up: SourceSignal<Rec> = { kind: 'health', status: 'up' };
const ev = (type: 'ADDED' | 'MODIFIED' | 'DELETED', id: string, rv: string): WatchEvent<Rec> => ({ type, object: { id }, resourceVersion: rv });
const options = (scheduler: SchedulerLike) => ({
  source: 's',
  timeoutMs: 50,
  idleMs: 100,
  backoff: { initialMs: 10, jitter: 0 },
  scheduler,
});

/** A resource whose lists and watches are the given cold observables, in order; records what was asked. */
function resource(lists: Observable<ListPage<Rec>>[], watches: Observable<WatchEvent<Rec>>[], types = ['t']) {
  const asked = { lists: [] as (string | undefined)[], watches: [] as string[] };
  const r: ListWatchResource<Rec> = {
    name: 'GET /things',
    types,
    list: ({ continue: token }) => {
      asked.lists.push(token);
      const next = lists.shift();
      if (!next) throw new Error('no more lists');
      return next;
    },
    watch: ({ resourceVersion }) => {
      asked.watches.push(resourceVersion);
      const next = watches.shift();
      if (!next) throw new Error('no more watches');
      return next;
    },
  };
  return { r, asked };
}

/** What the stream emitted, each with its virtual time: easier to read than an output marble with groups. */
function record(signal$: Observable<SourceSignal<Rec>>, scheduler: SchedulerLike, until?: number) {
  const out: [number, SourceSignal<Rec>][] = [];
  // A down signal carries the Error (its stack is for the log): compared here by its message.
  const sub = signal$.subscribe((s) => out.push([scheduler.now(), s.kind === 'health' && s.error instanceof Error ? { ...s, error: s.error.message } : s]));
  if (until !== undefined) scheduler.schedule(() => sub.unsubscribe(), until);
  return out;
}

const down = (retryInMs: number, error: string): SourceSignal<Rec> => ({ kind: 'health', status: 'down', error, retryInMs });

describe('listWatch (virtual time)', () => {
  it(
    'lists every page into one snapshot, then watches from its version: a change per event',
    marbles((m) => {
      const { r, asked } = resource(
        [m.cold('-a|', { a: { items: [{ id: 'x' }], resourceVersion: '10', continue: 'p2' } }), m.cold('-b|', { b: { items: [{ id: 'y' }], resourceVersion: '10' } })],
        [m.cold('o-a-b-d', { o: { type: 'OPENED' }, a: ev('ADDED', 'z', '11'), b: { type: 'BOOKMARK', resourceVersion: '14' }, d: ev('DELETED', 'x', '15') })],
      );
      const out = record(listWatch([r], options(m.scheduler)), m.scheduler, 50);
      m.flush();
      // Page 2 ends at 3: the snapshot is stamped 0, when the list started; the watch opens at 3.
      expect(out).toEqual([
        [3, up],
        [3, snapshot(0, ['x', 'y'])],
        [5, upsert(5, 'z')],
        [9, del(9, 'x')],
      ]);
      expect(asked.lists).toEqual([undefined, 'p2']);
      expect(asked.watches).toEqual(['10']);
    }),
  );

  it(
    'relists at once on a 410 in the watch: one more complete snapshot, then watches from its version',
    marbles((m) => {
      const watch2 = m.cold<WatchEvent<Rec>>('-');
      const { r, asked } = resource(
        [m.cold('-a|', { a: { items: [{ id: 'x' }], resourceVersion: '10' } }), m.cold('-b|', { b: { items: [{ id: 'y' }], resourceVersion: '30' } })],
        [m.cold('-a-e', { a: ev('MODIFIED', 'x', '12'), e: { type: 'ERROR', code: 410, reason: 'Expired', message: 'too old resource version: 12 (25)' } }), watch2],
      );
      const out = record(listWatch([r], options(m.scheduler)), m.scheduler, 50);
      m.flush();
      expect(out).toEqual([
        [2, up],
        [2, snapshot(0, ['x'])],
        [3, upsert(3, 'x')],
        // The 410 at 5 relists at once (no health change, no backoff): the snapshot of 5 at 7.
        [7, snapshot(5, ['y'])],
      ]);
      expect(asked.watches).toEqual(['10', '30']);
      m.expect(watch2).toHaveSubscriptions(['7ms ^ 42ms !']);
    }),
  );

  it(
    'resumes a failed watch after backoff from the last version an event or a bookmark gave',
    marbles((m) => {
      const { r, asked } = resource(
        [m.cold('-a|', { a: { items: [], resourceVersion: '10' } })],
        [m.cold('-a-b-#', { a: ev('ADDED', 'x', '11'), b: { type: 'BOOKMARK', resourceVersion: '20' } }, new Error('socket hang up')), m.cold('-a', { a: ev('MODIFIED', 'x', '21') })],
      );
      const out = record(listWatch([r], options(m.scheduler)), m.scheduler, 60);
      m.flush();
      expect(out).toEqual([
        [2, up],
        [2, snapshot(0, [])],
        [3, upsert(3, 'x')],
        [7, down(10, 's: watch GET /things: socket hang up')],
        // Reopened at 17 from the bookmark's version; its first event brings the source up again.
        [18, up],
        [18, upsert(18, 'x')],
      ]);
      expect(asked.watches).toEqual(['10', '20']);
    }),
  );

  it(
    'a failed list emits no snapshot, only health down, and is retried with growing backoff',
    marbles((m) => {
      const { r } = resource(
        [m.cold('-#', undefined, new Error('503 Service Unavailable')), m.cold('-#', undefined, new Error('503 Service Unavailable')), m.cold('-a|', { a: { items: [{ id: 'x' }], resourceVersion: '5' } })],
        [m.cold('-')],
      );
      const out = record(listWatch([r], options(m.scheduler)), m.scheduler, 60);
      m.flush();
      expect(out).toEqual([
        [1, down(10, 's: list GET /things: 503 Service Unavailable')],
        [12, down(20, 's: list GET /things: 503 Service Unavailable')],
        [34, up],
        [34, snapshot(32, ['x'])],
      ]);
    }),
  );

  it(
    'restarts a list whose continue token expired from its first page, once',
    marbles((m) => {
      const { r, asked } = resource(
        [
          m.cold('-a|', { a: { items: [{ id: 'x' }], resourceVersion: '10', continue: 'p2' } }),
          m.cold('-#', undefined, new ExpiredError('continue token too old')),
          m.cold('-a|', { a: { items: [{ id: 'x' }], resourceVersion: '40', continue: 'q2' } }),
          m.cold('-b|', { b: { items: [{ id: 'y' }], resourceVersion: '40' } }),
        ],
        [m.cold('-')],
      );
      const out = record(listWatch([r], options(m.scheduler)), m.scheduler, 50);
      m.flush();
      expect(out).toEqual([
        [5, up],
        [5, snapshot(0, ['x', 'y'])],
      ]);
      expect(asked.lists).toEqual([undefined, 'p2', undefined, 'q2']);
      expect(asked.watches).toEqual(['40']);
    }),
  );

  it(
    'reopens a watch that carried nothing for idleMs, and one the server ended',
    marbles((m) => {
      const silent = m.cold<WatchEvent<Rec>>('-');
      const ended = m.cold<WatchEvent<Rec>>('-b 50ms |', { b: { type: 'BOOKMARK', resourceVersion: '12' } });
      const last = m.cold<WatchEvent<Rec>>('-');
      const { r, asked } = resource([m.cold('-a|', { a: { items: [], resourceVersion: '10' } })], [silent, ended, last]);
      const out = record(listWatch([r], options(m.scheduler)), m.scheduler, 200);
      m.flush();
      expect(out.map(([t, s]) => [t, s.kind === 'health' ? `${s.status} ${s.error ?? ''}`.trim() : s.kind])).toEqual([
        [2, 'up'],
        [2, 'snapshot'],
        [102, 'down s: watch GET /things: watch carried nothing for 100 ms'],
        [113, 'up'],
      ]);
      m.expect(silent).toHaveSubscriptions(['2ms ^ 99ms !']);
      // The server ended it at 164: reopened at once from the bookmark's version.
      m.expect(last).toHaveSubscriptions(['164ms ^ 35ms !']);
      expect(asked.watches).toEqual(['10', '10', '12']);
    }),
  );

  it(
    'is up only once every resource is, and stops every request on unsubscribe',
    marbles((m) => {
      const nodesWatch = m.cold<WatchEvent<Rec>>('o', { o: { type: 'OPENED' } });
      const podsWatch = m.cold<WatchEvent<Rec>>('o', { o: { type: 'OPENED' } });
      const nodes = resource([m.cold('-a|', { a: { items: [{ id: 'n' }], resourceVersion: '3' } })], [nodesWatch], ['node']);
      const pods = resource([m.cold('-#', undefined, new Error('403 Forbidden')), m.cold('-a|', { a: { items: [{ id: 'p' }], resourceVersion: '3' } })], [podsWatch], ['pod']);
      const out = record(listWatch([nodes.r, pods.r], options(m.scheduler)), m.scheduler, 50);
      m.flush();
      expect(out).toEqual([
        [1, down(10, 's: list GET /things: 403 Forbidden')],
        [2, snapshot(0, ['n'], ['node'])],
        [13, up],
        [13, snapshot(11, ['p'], ['pod'])],
      ]);
      m.expect(nodesWatch).toHaveSubscriptions(['2ms ^ 47ms !']);
      m.expect(podsWatch).toHaveSubscriptions(['13ms ^ 36ms !']);
    }),
  );

  it(
    'backs off from a server that closes every watch at once, instead of reopening in a loop',
    marbles((m) => {
      const { r, asked } = resource([m.cold('-a|', { a: { items: [], resourceVersion: '10' } })], [m.cold('-|'), m.cold('-|'), m.cold('-')]);
      const out = record(listWatch([r], options(m.scheduler)), m.scheduler, 60);
      m.flush();
      expect(out.map(([t, s]) => [t, s.kind === 'health' ? `${s.status} ${s.retryInMs ?? ''}`.trim() : s.kind])).toEqual([
        [2, 'up'],
        [2, 'snapshot'],
        [3, 'down 10'],
        [14, 'down 20'],
      ]);
      expect(asked.watches).toEqual(['10', '10', '10']);
    }),
  );
});
