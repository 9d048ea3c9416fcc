import { Subject, type Subscriber } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { concatEach } from '../../operators/concatEach.js';
import { marbles } from '../support/marbles.js';

/** A promise and its settle functions. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve: () => void = () => undefined;
  let reject: (e: Error) => void = () => undefined;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('concatEach', () => {
  it(
    'runs synchronous work at once, each value in order, emitting what it makes; completes and errors with the source, and unsubscribes from it',
    marbles((m) => {
      // a → a twice, b → nothing, c → c once.
      const twice = (v: string, out: Subscriber<string>): undefined => {
        if (v === 'a') {
          out.next('a');
          out.next('A');
        } else if (v === 'c') out.next('c');
        return undefined;
      };
      const source = m.cold('-a-b-c-|');
      m.expect(source.pipe(concatEach(twice))).toBeObservable('-(aA)c-|');
      m.expect(source).toHaveSubscriptions('^------!');
      const failing = m.cold('-a---#');
      m.expect(failing.pipe(concatEach(twice))).toBeObservable('-(aA)#');
      m.expect(failing).toHaveSubscriptions('^----!');
    }),
  );

  it('holds the values after a pending one until its promise resolves, then runs them in order; completes after the last', async () => {
    const source = new Subject<string>();
    const b = deferred();
    const seen: string[] = [];
    let completed = false;
    source
      .pipe(
        concatEach((v: string, out: Subscriber<string>) => {
          seen.push(`run ${v}`);
          if (v === 'b') return b.promise.then(() => out.next('b'));
          out.next(v);
          return undefined;
        }),
      )
      .subscribe({ next: (v) => seen.push(v), complete: () => (completed = true) });
    source.next('a');
    source.next('b');
    source.next('c');
    source.next('d');
    source.complete();
    await flush();
    expect(seen).toEqual(['run a', 'a', 'run b']);
    expect(completed).toBe(false);
    b.resolve();
    await flush();
    expect(seen).toEqual(['run a', 'a', 'run b', 'b', 'run c', 'c', 'run d', 'd']);
    expect(completed).toBe(true);
  });

  it('a value the source emits while a synchronous run is under way (re-entrant) waits for it: no interleaving', () => {
    const source = new Subject<string>();
    const seen: string[] = [];
    source
      .pipe(
        concatEach((v: string, out: Subscriber<string>) => {
          out.next(`${v}1`);
          out.next(`${v}2`);
          return undefined;
        }),
      )
      .subscribe((v) => {
        seen.push(v);
        if (v === 'a1') source.next('b');
      });
    source.next('a');
    expect(seen).toEqual(['a1', 'a2', 'b1', 'b2']);
  });

  it('errors the result when the work throws or its promise rejects, and runs nothing after', async () => {
    const thrown = new Subject<string>();
    const errors: unknown[] = [];
    const ran: string[] = [];
    thrown
      .pipe(
        concatEach((v: string) => {
          ran.push(v);
          if (v === 'x') throw new Error('bad x');
          return undefined;
        }),
      )
      .subscribe({ error: (e: unknown) => errors.push(e) });
    thrown.next('a');
    thrown.next('x');
    thrown.next('c');
    expect(ran).toEqual(['a', 'x']);
    expect(errors).toEqual([new Error('bad x')]);

    const rejected = new Subject<string>();
    const d = deferred();
    rejected.pipe(concatEach((v: string) => (ran.push(v), v === 'p' ? d.promise : undefined))).subscribe({ error: (e: unknown) => errors.push(e) });
    rejected.next('p');
    rejected.next('q');
    d.reject(new Error('p failed'));
    await flush();
    expect(ran).toEqual(['a', 'x', 'p']);
    expect(errors).toEqual([new Error('bad x'), new Error('p failed')]);
  });

  it('passes the source error on at once, though a value is pending', async () => {
    const source = new Subject<string>();
    const errors: unknown[] = [];
    source.pipe(concatEach(() => new Promise<void>(() => undefined))).subscribe({ error: (e: unknown) => errors.push(e) });
    source.next('a');
    source.error(new Error('source down'));
    expect(errors).toEqual([new Error('source down')]);
  });

  it('unsubscribed while a value is pending: the work sees it closed, the line is dropped, the source is left', async () => {
    const source = new Subject<string>();
    const d = deferred();
    const ran: string[] = [];
    let closedAtEnd: boolean | undefined;
    const subscription = source
      .pipe(
        concatEach((v: string, out: Subscriber<string>) => {
          ran.push(v);
          return v === 'a'
            ? d.promise.then(() => {
                closedAtEnd = out.closed;
              })
            : undefined;
        }),
      )
      .subscribe();
    source.next('a');
    source.next('b');
    subscription.unsubscribe();
    expect(source.observed).toBe(false);
    d.resolve();
    await flush();
    expect(closedAtEnd).toBe(true);
    expect(ran).toEqual(['a']);
  });
});
