import { Observable, type OperatorFunction, type Subscriber } from 'rxjs';

/**
 * What {@link concatEach} runs for one value: emits to `out` what the value becomes, and returns
 * undefined when it is done, or a promise when it goes on asynchronously (the values after it
 * wait until it settles). `out` is the result's subscriber: `out.closed` says the result was
 * unsubscribed; a subscription added to it is torn down with the result at the latest.
 */
export type EachProject<T, O> = (value: T, out: Subscriber<O>) => Promise<void> | undefined;

/**
 * `concatMap` for work that is synchronous but for a few values, without its inner Observable:
 * each value is handed to `project` with the result's subscriber, in order.
 *
 * ```
 * source:  --a--b------c--|          a, c: synchronous; b: a promise settled at `r`
 * project:   A  B...r   C
 * result:  --A--B---(r)C--|          c waits for b; the result completes after the last
 * ```
 *
 * 1. A value whose `project` returns undefined is done once it returns; the next value is taken
 *    at once. A value that arrives while one is in progress (a pending promise, or a synchronous
 *    run of `project` that made the source emit again) waits in line, in order.
 * 2. A promise that rejects, or a `project` that throws, errors the result; the source's error
 *    errors it at once, whatever waits in line.
 * 3. Completes once the source completed and every value is done.
 * 4. Unsubscribing unsubscribes from the source; values in line are dropped and a pending
 *    promise is left to settle (`project` sees `out.closed` and may stop early).
 *
 * Per value, `concatMap` subscribes an inner Observable and tears it down again (a Subscriber,
 * its subscription, an array entry): on the push path, where nearly every value is a
 * notification done at once, each notification paid that twice (normalizeEntity and the hub's
 * preparedInSlices; docs/scale.md, "The notification path's cost").
 *
 * @example
 * ```ts
 * of(1, 2, 3).pipe(concatEach((n: number, out) => (n === 2 ? Promise.resolve().then(() => out.next(n)) : (out.next(n), undefined))))
 *   .subscribe((n) => console.log(n)); // 1, 2, 3
 * ```
 * @param project the work of one value.
 * @returns what the values became, in their order.
 */
export function concatEach<T, O>(project: EachProject<T, O>): OperatorFunction<T, O> {
  return (source$) =>
    new Observable<O>((subscriber) => {
      const line: T[] = [];
      /** A value's work is under way (synchronous, or a pending promise): later ones wait in line. */
      let busy = false;
      let ended = false;
      /** Runs one value's work; true when it is done already. */
      const step = (value: T): boolean => {
        busy = true;
        let pending: Promise<void> | undefined;
        try {
          pending = project(value, subscriber);
        } catch (e) {
          subscriber.error(e);
          return false;
        }
        if (pending !== undefined) {
          pending.then(
            () => {
              busy = false;
              run();
            },
            (e: unknown) => subscriber.error(e),
          );
          return false;
        }
        busy = false;
        return true;
      };
      const run = (): void => {
        while (line.length > 0) {
          if (subscriber.closed || !step(line.shift()!)) return;
        }
        if (ended) subscriber.complete();
      };
      return source$.subscribe({
        next(value) {
          // The common case, nothing in line: no array traffic.
          if (busy) line.push(value);
          else if (step(value)) run();
        },
        error: (e: unknown) => subscriber.error(e),
        complete() {
          ended = true;
          if (!busy && line.length === 0) subscriber.complete();
        },
      });
    });
}
