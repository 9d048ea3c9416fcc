import {
  type ObservableInput,
  type SchedulerLike,
  type Subscription,
  EMPTY,
  Observable,
  asyncScheduler,
  defer,
  expand,
  from,
  map,
  merge,
  mergeMap,
  of,
  reduce,
  throwError,
  timeout,
  timer,
  catchError,
} from 'rxjs';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { errorMessage } from './log.js';
import type { EntityType, Observation } from './model.js';
import type { HealthSignal, SourceSignal } from './source.js';

/**
 * List then watch (the Kubernetes way of following a collection): list everything once — a
 * complete snapshot stamped with the collection's resourceVersion — then watch the changes after
 * that version, one change observation each. When the history the watch needs is gone (410), list
 * again: a relist is one more complete snapshot through the same baseline, so it emits only what
 * changed while the watch was blind, deletions included.
 */

/** One page of a (chunked) list. */
export interface ListPage<R> {
  items: R[];
  /** The collection's version this page (and the whole list) is consistent with. */
  resourceVersion: string;
  /** Token of the next page; absent or empty on the last one. */
  continue?: string | undefined;
}

/** What a watch stream carries, in server order. */
export type WatchEvent<R> =
  /** The server accepted the watch (HTTP 200): nothing may have changed yet, but the source is up. */
  | { type: 'OPENED' }
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: R; resourceVersion: string }
  /** Every change up to this version has been sent: resuming from it loses and repeats nothing. */
  | { type: 'BOOKMARK'; resourceVersion: string }
  /** A Status object in the stream: the watch is over (code 410: the history it needs is gone). */
  | { type: 'ERROR'; code?: number | undefined; reason?: string | undefined; message?: string | undefined };

/** The history a list continuation or a watch needs has been compacted away (HTTP 410 Gone): list again. */
export class ExpiredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpiredError';
  }
}

/** One collection followed by list then watch. */
export interface ListWatchResource<R> {
  /** Names the collection in errors and health, e.g. `GET /api/v1/pods`. */
  name: string;
  /** The entity types a complete list of this collection is complete for. */
  types: readonly EntityType[];
  /** One page; `continue` is the previous page's token. Throws ExpiredError when that token expired. */
  list(request: { continue?: string | undefined; signal: AbortSignal }): ObservableInput<ListPage<R>>;
  /**
   * The changes after `resourceVersion`, with bookmarks. Completes when the server ends the
   * stream, errors when the connection fails (ExpiredError for an HTTP 410); unsubscribing closes it.
   */
  watch(from: { resourceVersion: string }): Observable<WatchEvent<R>>;
}

export interface ListWatchOptions {
  /** The source's name: observations carry it. */
  source: string;
  /** A list page that has not arrived after this long is abandoned, and the list failed, ms. */
  timeoutMs: number;
  /**
   * A watch that has carried nothing (no change, no bookmark) for this long is presumed dead and
   * reopened from the last version, ms. Make it longer than the server's watch timeout.
   */
  idleMs: number;
  /** Between failed lists or watches (exponential, jitter); reset by the next success. */
  backoff?: BackoffOptions;
  scheduler?: SchedulerLike;
}

/** A watch that closed without carrying anything this soon after it opened counts as a failure (no busy loop). */
const MIN_WATCH_MS = 1000;

class WatchIdleError extends Error {
  constructor(idleMs: number) {
    super(`watch carried nothing for ${idleMs} ms`);
    this.name = 'WatchIdleError';
  }
}

/** Every page of one list, items in order, with the version of the first page (the list's). */
function listAll<R>(resource: ListWatchResource<R>, timeoutMs: number, scheduler: SchedulerLike): Observable<{ items: R[]; resourceVersion: string }> {
  const pages = (signal: AbortSignal): Observable<ListPage<R>> =>
    defer(() => from(resource.list({ signal }))).pipe(
      expand((page) => (page.continue ? from(resource.list({ continue: page.continue, signal })) : EMPTY)),
      timeout({ each: timeoutMs, scheduler, with: () => throwError(() => new Error(`a list page took more than ${timeoutMs} ms`)) }),
    );
  const all = (signal: AbortSignal): Observable<{ items: R[]; resourceVersion: string }> =>
    pages(signal).pipe(
      reduce(
        (acc, page) => {
          for (const item of page.items) acc.items.push(item);
          if (acc.resourceVersion === '') acc.resourceVersion = page.resourceVersion;
          return acc;
        },
        { items: [] as R[], resourceVersion: '' },
      ),
    );
  return new Observable((subscriber) => {
    const controller = new AbortController();
    // A continue token that expired mid-list: the list is restarted once from its first page (a
    // consistent list cannot be finished from another version).
    const subscription = all(controller.signal)
      .pipe(catchError((error: unknown) => (error instanceof ExpiredError ? all(controller.signal) : throwError(() => error))))
      .subscribe(subscriber);
    return () => {
      subscription.unsubscribe();
      controller.abort();
    };
  });
}

/** One resource's list-then-watch loop: its observations and its own health. */
function followResource<R>(resource: ListWatchResource<R>, options: ListWatchOptions): Observable<SourceSignal<R>> {
  const { source, timeoutMs, idleMs, backoff = {}, scheduler = asyncScheduler } = options;
  return new Observable<SourceSignal<R>>((subscriber) => {
    const now = (): string => new Date(scheduler.now()).toISOString();
    let resourceVersion = '';
    let failures = 0;
    let up = false;
    let current: Subscription | undefined;

    const healthy = (): void => {
      failures = 0;
      if (up) return;
      up = true;
      subscriber.next({ kind: 'health', status: 'up' });
    };
    const fail = (what: string, error: unknown, retry: () => void): void => {
      failures += 1;
      up = false;
      const retryInMs = backoffDelay(failures, backoff);
      subscriber.next({ kind: 'health', status: 'down', error: new Error(`${source}: ${what} ${resource.name}: ${errorMessage(error)}`, { cause: error }), retryInMs });
      current = timer(retryInMs, scheduler).subscribe(retry);
    };

    const relist = (): void => {
      const at = now();
      current = listAll(resource, timeoutMs, scheduler).subscribe({
        next: (list) => {
          resourceVersion = list.resourceVersion;
          healthy();
          subscriber.next({ kind: 'snapshot', source, at, types: [...resource.types], records: list.items });
        },
        error: (error: unknown) => fail('list', error, relist),
        complete: () => watch(),
      });
    };

    const watch = (): void => {
      const openedAt = scheduler.now();
      let carried = false;
      current = resource
        .watch({ resourceVersion })
        .pipe(
          timeout({ each: idleMs, scheduler, with: () => throwError(() => new WatchIdleError(idleMs)) }),
          mergeMap((event) =>
            event.type === 'ERROR'
              ? throwError(() =>
                  event.code === 410
                    ? new ExpiredError(`watch from resourceVersion ${resourceVersion}: ${event.message ?? event.reason ?? 'expired'}`)
                    : new Error(`watch from resourceVersion ${resourceVersion} ended with ${event.code ?? ''} ${event.reason ?? ''}: ${event.message ?? ''}`),
                )
              : of(event),
          ),
        )
        .subscribe({
          next: (event) => {
            // A switch, not ts-pattern: once per change on a busy cluster.
            switch (event.type) {
              case 'OPENED':
                healthy();
                return;
              case 'BOOKMARK':
                carried = true;
                resourceVersion = event.resourceVersion;
                healthy();
                return;
              case 'ADDED':
              case 'MODIFIED':
              case 'DELETED': {
                carried = true;
                // The version first, so a change that fails downstream is not asked for again.
                resourceVersion = event.resourceVersion;
                healthy();
                const change: Observation<R> = { kind: 'change', source, at: now(), action: event.type === 'DELETED' ? 'delete' : 'upsert', record: event.object };
                subscriber.next(change);
                return;
              }
              default:
                return;
            }
          },
          error: (error: unknown) => (error instanceof ExpiredError ? relist() : fail('watch', error, watch)),
          complete: () => {
            if (carried || scheduler.now() - openedAt >= MIN_WATCH_MS) watch();
            else fail('watch', new Error('the server closed the watch at once'), watch);
          },
        });
    };

    relist();
    return () => current?.unsubscribe();
  });
}

/**
 * Follows collections by list then watch, as one source's stream: a complete snapshot per list
 * (the first, and each relist), a change per watch event, and the source's health.
 *
 * ```
 * list:   --L|                       --L'|
 * watch:     -a--b--(410)                 -c--
 * result: --S-A--B-------------------S'---C--     (S, S': snapshots; A, B, C: changes)
 * ```
 *
 * 1. Lists every page (continue tokens) — a list restarts once from its first page when a token
 *    expired — and emits one snapshot, complete for the resource's types, stamped with the time
 *    the list started.
 * 2. Watches from the list's resourceVersion; ADDED and MODIFIED become upserts, DELETED a
 *    delete, stamped with the time they arrived. Each event and each BOOKMARK moves the version on.
 * 3. A watch the server ends is reopened from the last version (no loss, no repeat); one that
 *    fails, or carries nothing for `idleMs`, likewise after backoff; a 410 (history compacted)
 *    lists again at once.
 * 4. A failed list emits no snapshot (an outage is not an empty cluster), only health down, and
 *    is retried after backoff. Health is up once every resource has listed or watched again.
 * 5. Never errors or completes; unsubscribing closes every request.
 *
 * @param resources the collections; each list is complete for its own types only.
 */
export function listWatch<R>(resources: readonly ListWatchResource<R>[], options: ListWatchOptions): Observable<SourceSignal<R>> {
  return defer(() => {
    const status: ('up' | 'down' | undefined)[] = resources.map(() => undefined);
    let reported: 'up' | 'down' | undefined;
    return merge(...resources.map((resource, i) => followResource(resource, options).pipe(map((signal) => [i, signal] as const)))).pipe(
      mergeMap(([i, signal]): SourceSignal<R>[] => {
        if (signal.kind !== 'health') return [signal];
        status[i] = signal.status;
        if (signal.status === 'down') {
          reported = 'down';
          return [signal];
        }
        if (reported === 'up' || !status.every((s) => s === 'up')) return [];
        reported = 'up';
        const up: HealthSignal = { kind: 'health', status: 'up' };
        return [up];
      }),
    );
  });
}
