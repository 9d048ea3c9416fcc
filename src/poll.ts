import {
  type ObservableInput,
  type SchedulerLike,
  Observable,
  Subject,
  type Subscriber,
  asyncScheduler,
  catchError,
  defer,
  finalize,
  from,
  map,
  merge,
  mergeMap,
  of,
  repeat,
  take,
  throwError,
  timeout,
  timer,
} from 'rxjs';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { type BaselineLookup, type Kept, type KeptPaging, nextGeneration } from './kept.js';
import { type Logger, asError, silentLogger } from './log.js';
import type { EntityType, ReadStats, SnapshotObservation } from './model.js';
import type { OptionReader } from './options.js';
import type { HealthSignal, SourceSignal } from './source.js';

/** One poll attempt, as the fetch function sees it. */
export interface PollAttempt {
  /** Aborted when the poll times out or the source stops: pass it to the HTTP client. */
  signal: AbortSignal;
  /** When this attempt started (scheduler time), ISO: the `at` of the snapshot it yields. */
  startedAt: string;
}

/** One attempt of {@link pollSnapshots}: a poll attempt that may hand its records over as it reads them. */
export interface SnapshotAttempt<R> extends PollAttempt {
  /**
   * Hands `records` over as part of this attempt's snapshot, now (a page as read): they are not
   * returned again at the end. The first call emits the snapshot (its `pages`); it is complete
   * once the attempt succeeds, with what it returns as its last piece, and void if it fails.
   * Called after the attempt ended (aborted, timed out), it does nothing.
   */
  deliver: (records: readonly (R | Kept)[]) => void;
  /**
   * Set when the hub lent the source the baseline ({@link PollSnapshotsOptions.baseline}): hand it
   * to the fetch of a collection whose records map alone (fetchAllPages' `kept`), and what its
   * previous poll had as it is comes as the baseline's entities. Undefined otherwise.
   */
  kept: KeptPaging | undefined;
}

export interface PollOptions {
  /** Time between the end of one successful poll and the start of the next, ms. */
  intervalMs: number;
  /** A poll that has not finished after this long is abandoned and counted as a failure, ms. */
  timeoutMs: number;
  /** Backoff between failed polls (exponential, jitter); the interval applies again after a success. */
  backoff?: BackoffOptions;
  scheduler?: SchedulerLike;
}

/** A poll that did not finish in time. */
export class PollTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`poll timed out after ${timeoutMs} ms`);
    this.name = 'PollTimeoutError';
  }
}

/** Turns a fetch that takes an AbortSignal into an Observable that aborts it on unsubscribe. */
function abortable<T>(fetch: (signal: AbortSignal) => ObservableInput<T>): Observable<T> {
  return new Observable<T>((subscriber) => {
    const controller = new AbortController();
    const subscription = defer(() => fetch(controller.signal)).subscribe(subscriber);
    return () => {
      subscription.unsubscribe();
      controller.abort();
    };
  });
}

/**
 * Polls `fetch` for ever: one attempt at a time (never overlapping), each with a timeout, the
 * interval after a success and exponential backoff after a failure. Emits each attempt's outcome:
 * `{ ok: true, value }` or `{ ok: false, error, retryInMs }` — a failure never errors the stream.
 *
 * ```
 * fetch:   -a|           -#           -b|
 * result:  -A---interval--E--backoff--B---interval-- …
 * ```
 *
 * 1. The first attempt starts at subscription.
 * 2. The next attempt starts `intervalMs` after a success, or `backoffDelay(n)` after the n-th
 *    failure in a row.
 * 3. An attempt that takes longer than `timeoutMs` is aborted (its AbortSignal fires) and counts
 *    as a failure with a PollTimeoutError.
 * 4. Unsubscribing aborts the attempt in flight and cancels the pending timer.
 *
 * @param fetch one attempt; resolves (or emits once) with the result.
 * @returns every attempt's outcome, in order.
 */
export function poll<T>(
  fetch: (attempt: PollAttempt) => ObservableInput<T>,
  options: PollOptions,
): Observable<PollOutcome<T>> {
  const { intervalMs, timeoutMs, backoff = {}, scheduler = asyncScheduler } = options;
  return defer(() => {
    // Per subscription: failures in a row, and the delay the last outcome asks for.
    let failures = 0;
    let nextDelayMs = intervalMs;
    return defer(() => {
      const startedAt = new Date(scheduler.now()).toISOString();
      return abortable((signal) => from(fetch({ signal, startedAt })).pipe(take(1))).pipe(
        timeout({ first: timeoutMs, scheduler, with: () => throwError(() => new PollTimeoutError(timeoutMs)) }),
        map((value): PollOutcome<T> => {
          failures = 0;
          nextDelayMs = intervalMs;
          return { ok: true, value };
        }),
        catchError((error: unknown) => {
          failures += 1;
          nextDelayMs = backoffDelay(failures, backoff);
          return of<PollOutcome<T>>({ ok: false, error, retryInMs: nextDelayMs });
        }),
      );
    }).pipe(repeat({ delay: () => timer(nextDelayMs, scheduler) }));
  });
}

export type PollOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown; retryInMs: number };

/**
 * What a source's requests have received so far, counted up for ever (HttpClient.received): a
 * poll's share is the difference between its end and its start.
 */
export interface ReadCount {
  /** Successful responses (pages). */
  responses: number;
  /** Their body bytes. */
  bytes: number;
  /** Records taken from them, where the reader counts them (fetchAllPages does). */
  records: number;
}

export interface PollSnapshotsOptions extends PollOptions {
  /** The entity types every snapshot is complete for. */
  types: readonly EntityType[];
  source: string;
  missesBeforeDelete?: number;
  /**
   * What the source's HTTP clients have received so far (their `received`, summed). With it each
   * snapshot says what its poll read (`read`), and a long poll logs its progress.
   */
  received?: () => ReadCount;
  /** Where a long poll's progress goes (the source's logger). */
  log?: Logger;
  /** A poll still running logs `still reading` (pages, records, bytes so far) at info this often, ms (default 5000). */
  progressEveryMs?: number;
  /**
   * What the hub lent the source ({@link Source.useBaseline}), read at each attempt: with it, each
   * attempt's snapshot carries its `generation`, and its fetch is given `kept`.
   */
  baseline?: () => BaselineLookup | undefined;
}

const NOTHING_READ: ReadCount = { responses: 0, bytes: 0, records: 0 };

/**
 * A snapshot's `pages` on their way to its one reader: held until it subscribes (its turn comes
 * once the source's observations before it are normalized), then handed over as they come. A
 * reader that leaves, or an end, lets go of everything held.
 */
export interface PageChannel<R> {
  readonly pages$: Observable<readonly R[]>;
  push(piece: readonly R[]): void;
  complete(): void;
  fail(error: unknown): void;
}

export function pageChannel<R>(): PageChannel<R> {
  let held: (readonly R[])[] = [];
  let end: { error: unknown } | 'complete' | undefined;
  let reader: Subscriber<readonly R[]> | undefined;
  let taken = false;
  const finish = (r: Subscriber<readonly R[]>, e: { error: unknown } | 'complete'): void => (e === 'complete' ? r.complete() : r.error(e.error));
  return {
    pages$: new Observable<readonly R[]>((subscriber) => {
      if (taken) {
        subscriber.error(new Error("a snapshot's pages are read once"));
        return undefined;
      }
      taken = true;
      const before = held;
      held = [];
      for (const piece of before) {
        if (subscriber.closed) return undefined;
        subscriber.next(piece);
      }
      if (end !== undefined) finish(subscriber, end);
      else reader = subscriber;
      return () => {
        reader = undefined;
        held = [];
      };
    }),
    push(piece) {
      if (end !== undefined) return;
      if (reader !== undefined) reader.next(piece);
      // Not taken yet: held for the reader. Taken and left: nobody's.
      else if (!taken) held.push(piece);
    },
    complete() {
      if (end !== undefined) return;
      end = 'complete';
      reader?.complete();
    },
    fail(error) {
      if (end !== undefined) return;
      end = { error };
      held = [];
      reader?.error(error);
    },
  };
}

/**
 * The poll source's stream: a snapshot per successful attempt and a health signal whenever the
 * health changes (down on every failure, with the reason and the time to the next attempt; up on
 * the first success after a failure or at start). A failed attempt emits no snapshot (DESIGN
 * rule 5): an outage never looks like an empty source.
 *
 * ```
 * fetch:    ---r|              ----#             -p--p--r|   (p: deliver, r: the records returned)
 * result:   ---(uS)---------   ----d-----------  -P-------u  (P: a snapshot whose pages are p, p, r)
 * ```
 *
 * An attempt that hands records over as it reads them (`attempt.deliver`, a page at a time)
 * emits its snapshot at the first of them, with `records` empty and the records in `pages`:
 * what it returns at the end is the last piece, and the pages complete when it succeeds (`read`
 * set first) or error when it fails, times out or is stopped — the snapshot then never was. Its
 * health `up` (after a failure) comes when it has succeeded, after the snapshot.
 *
 * With `received`, every snapshot carries what its poll read (pages, bytes, time), and while an
 * attempt runs longer than `progressEveryMs` a `still reading` line says how far it got: a first
 * sync of 100,000 servers takes minutes, and an operator should see it move.
 */
export function pollSnapshots<R>(
  fetch: (attempt: SnapshotAttempt<R>) => ObservableInput<R[]>,
  options: PollSnapshotsOptions,
): Observable<SourceSignal<R>> {
  const { types, source, missesBeforeDelete, received, log = silentLogger, progressEveryMs = 5000, scheduler = asyncScheduler, baseline } = options;
  const count = received ?? ((): ReadCount => NOTHING_READ);
  const snapshotOf = (at: string, records: (R | Kept)[], kept: KeptPaging | undefined): SnapshotObservation<R | Kept> => ({
    kind: 'snapshot',
    source,
    types: [...types],
    at,
    records,
    ...(missesBeforeDelete !== undefined ? { missesBeforeDelete } : {}),
    ...(kept !== undefined ? { generation: kept.generation } : {}),
  });
  return defer(() => {
    let up = false;
    /** Snapshots emitted while their attempt still reads (their pages). */
    const early = new Subject<SourceSignal<R>>();
    /** The attempt in flight's, once it delivered (attempts never overlap). */
    let paged: { snapshot: SnapshotObservation<R | Kept>; channel: PageChannel<R | Kept> } | undefined;
    const read = (attempt: PollAttempt): Observable<{ records: R[]; at: string; read?: ReadStats; kept: KeptPaging | undefined }> =>
      defer(() => {
        const lookup = baseline?.();
        const kept: KeptPaging | undefined = lookup === undefined ? undefined : { generation: nextGeneration(), family: source, lookup };
        const before = { ...count() };
        const started = scheduler.now();
        let over = false;
        const sofar = (): ReadCount => {
          const now = count();
          return { responses: now.responses - before.responses, bytes: now.bytes - before.bytes, records: now.records - before.records };
        };
        const progress = received
          ? timer(progressEveryMs, progressEveryMs, scheduler).subscribe(() => {
              const { responses, bytes, records } = sofar();
              log.info('still reading', { source, pages: responses, ...(records > 0 ? { records } : {}), bytes, elapsedMs: scheduler.now() - started });
            })
          : undefined;
        const deliver = (records: readonly (R | Kept)[]): void => {
          if (over) return;
          if (paged === undefined) {
            paged = { snapshot: snapshotOf(attempt.startedAt, [], kept), channel: pageChannel<R | Kept>() };
            paged.snapshot.pages = paged.channel.pages$;
            early.next(paged.snapshot);
          }
          paged.channel.push(records);
        };
        return from(fetch({ ...attempt, deliver, kept })).pipe(
          map((records) => {
            const { responses, bytes } = sofar();
            return { records, at: attempt.startedAt, kept, ...(received ? { read: { pages: responses, bytes, readMs: scheduler.now() - started } } : {}) };
          }),
          // Done, failed, timed out or stopped: the attempt's progress and deliveries end with it.
          finalize(() => {
            over = true;
            progress?.unsubscribe();
          }),
        );
      });
    const outcomes = poll(read, options).pipe(
      map((outcome): SourceSignal<R>[] => {
        const pages = paged;
        paged = undefined;
        if (!outcome.ok) {
          up = false;
          // The Error itself: the hub logs its message, and its stack at debug.
          const error = asError(outcome.error);
          pages?.channel.fail(error);
          const down: HealthSignal = { kind: 'health', status: 'down', error, retryInMs: outcome.retryInMs };
          return [down];
        }
        const { records, at, read: stats, kept } = outcome.value;
        const signals: SourceSignal<R>[] = [];
        if (!up) signals.push({ kind: 'health', status: 'up' });
        up = true;
        if (pages === undefined) {
          signals.push(stats ? { ...snapshotOf(at, records, kept), read: stats } : snapshotOf(at, records, kept));
          return signals;
        }
        if (stats) pages.snapshot.read = stats;
        if (records.length > 0) pages.channel.push(records);
        pages.channel.complete();
        return signals;
      }),
      mergeMap((signals) => signals),
    );
    // Stopped mid-poll: a reader of its pages (outside this subscription) learns it never was.
    return merge(early, outcomes).pipe(finalize(() => paged?.channel.fail(new Error(`${source}: stopped before its poll was complete`))));
  });
}

/** The keys every poll source is timed with. */
export interface PollTiming {
  intervalMs: number;
  timeoutMs: number;
  missesBeforeDelete: number;
  /** A poll still running logs its progress this often, ms (`progressInterval`). */
  progressEveryMs: number;
}

/**
 * Reads `interval` (default 30s), `timeout` (default `timeoutMs`), `missesBeforeDelete`
 * (default 1) and `progressInterval` (default 5s) — the same keys, with the same checks, for
 * every poll source.
 */
export function readPollTiming(read: OptionReader, timeoutMs: number): PollTiming {
  const timing = {
    intervalMs: read.duration('interval', 30_000),
    timeoutMs: read.duration('timeout', timeoutMs),
    missesBeforeDelete: read.number('missesBeforeDelete', 1, { min: 1, integer: true }),
    progressEveryMs: read.duration('progressInterval', 5000),
  };
  if (timing.intervalMs <= 0) read.fail('interval', 'must be more than 0');
  if (timing.progressEveryMs <= 0) read.fail('progressInterval', 'must be more than 0');
  if (timing.timeoutMs <= 0) read.fail('timeout', 'must be more than 0');
  return timing;
}
